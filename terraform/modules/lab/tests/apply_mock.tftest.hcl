# One apply against a mocked provider: the outputs map groups to clusters and groups to ids.
mock_provider "databricks" {
  mock_resource "databricks_cluster" {
    defaults = {
      id = "0101-000000-mock0000"
    }
  }
  mock_resource "databricks_group" {
    defaults = {
      id = "1000001"
    }
  }
}

mock_provider "databricks" {
  alias = "account"
  mock_resource "databricks_group" {
    defaults = {
      id = "2000001"
    }
  }
}

variables {
  course                     = "bigdata"
  target_workspace           = "default"
  users_csv                  = "tests/users.sample.csv"
  stop_clusters_after_create = false
  account_id                 = "00000000-0000-4000-8000-000000000001"
  workspace_id               = 1234567890123456
  uc_catalog                 = "bigdata_2026"
  protect_data               = false
}

run "apply_with_mocks" {
  command = apply

  assert {
    condition     = length(output.cluster_ids) == 4 && output.cluster_ids["Solo"] == "0101-000000-mock0000"
    error_message = "cluster_ids maps every group name to its cluster id"
  }
  assert {
    condition     = length(output.group_ids) == 5 && contains(keys(output.group_ids), "bigdata-students")
    error_message = "group_ids has every group and the all-students group"
  }
  assert {
    condition     = length(databricks_schema.group) == 5 && output.schemas["g1043"].full_name == "bigdata_2026.g1043"
    error_message = "with uc_catalog, each group gets a schema, and the course a shared one"
  }
}
