# prod: the live course: its sizes, and prevent_destroy on what holds the students' data. (Plan
# only: an apply here could not be torn down, which is the point of prevent_destroy.)
variables {
  course                     = "bigdata"
  users_csv                  = "tests/users.sample.csv"
  databricks_host            = "https://adb-1.azuredatabricks.net"
  databricks_token           = "dapi-test"
  stop_clusters_after_create = false
  account_id                 = "00000000-0000-4000-8000-000000000001"
  workspace_id               = 1234567890123456
  uc_catalog                 = "bigdata_2026"
}

run "prod_protects_the_students_data" {
  command = plan

  assert {
    condition     = module.lab.cluster_names["g1043"] == "bigdata-g1043"
    error_message = "prod's clusters carry the course name"
  }
  assert {
    condition     = output.cluster_settings.autotermination_minutes == 30 && output.cluster_settings.max_workers == 2
    error_message = "prod: two workers, and clusters stop after 30 idle minutes"
  }
  assert {
    condition     = output.data_protected == true
    error_message = "prod puts prevent_destroy on the catalog and the schemas"
  }
  assert {
    condition     = output.schemas["shared"].full_name == "bigdata_2026.shared" && length(output.schemas) == 5
    error_message = "the course catalog gets a schema per group and a shared one"
  }
}
