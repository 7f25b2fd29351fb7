# dev: small and short-lived, nothing protected, local state.
variables {
  course                     = "bigdata-dev"
  users_csv                  = "tests/users.sample.csv"
  databricks_host            = "https://adb-1.azuredatabricks.net"
  databricks_token           = "dapi-test"
  stop_clusters_after_create = false
  account_id                 = "00000000-0000-4000-8000-000000000001"
  workspace_id               = 1234567890123456
  uc_catalog                 = "bigdata_dev"
}

run "dev_is_small_short_lived_and_destroyable" {
  command = plan

  assert {
    condition     = module.lab.cluster_names["g1043"] == "bigdata-dev-g1043"
    error_message = "dev's clusters carry dev's course name"
  }
  assert {
    condition     = output.cluster_settings.autotermination_minutes == 10 && output.cluster_settings.max_workers == 1
    error_message = "dev: one worker, and clusters stop after 10 idle minutes"
  }
  assert {
    condition     = output.data_protected == false
    error_message = "dev protects nothing from destroy"
  }
  assert {
    condition     = output.schemas["shared"].full_name == "bigdata_dev.shared" && length(output.schemas) == 5
    error_message = "dev gets its own catalog's schemas"
  }
}

run "dev_defaults_reach_the_clusters" {
  command = apply

  providers = {
    databricks         = databricks.mock
    databricks.account = databricks.mock_account
  }

  assert {
    condition     = output.cluster_ids["Solo"] == "0101-000000-mock0000"
    error_message = "the outputs name every group's cluster"
  }
}

mock_provider "databricks" {
  alias = "mock"
  mock_resource "databricks_cluster" {
    defaults = {
      id = "0101-000000-mock0000"
    }
  }
}

mock_provider "databricks" {
  alias = "mock_account"
  mock_resource "databricks_group" {
    defaults = {
      id = "2000001"
    }
  }
}
