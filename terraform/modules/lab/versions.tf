terraform {
  required_version = ">= 1.7"

  required_providers {
    databricks = {
      source  = "databricks/databricks"
      version = "~> 1.138"
      # The roots (environments/dev, environments/prod) configure both: the workspace, and the
      # account API for account groups and their workspace assignment.
      configuration_aliases = [databricks.account]
    }
  }
}
