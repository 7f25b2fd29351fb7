terraform {
  required_version = ">= 1.7"

  required_providers {
    databricks = {
      source  = "databricks/databricks"
      version = "~> 1.138"
    }
  }

  # Remote state on Azure Storage (optional): copy backend.tf.example to backend.tf.
}

# Host and token from variables, or a profile in ~/.databrickscfg (databricks_profile).
provider "databricks" {
  host    = var.databricks_host
  token   = var.databricks_token
  profile = var.databricks_profile
}

# The account API, for account groups and their workspace assignment (account_id set). Auth: a
# profile in ~/.databrickscfg (account_profile), or the environment (ARM_CLIENT_ID/_SECRET/
# ARM_TENANT_ID or DATABRICKS_CLIENT_ID/_SECRET for a service principal).
provider "databricks" {
  alias      = "account"
  host       = var.account_host
  account_id = var.account_id
  profile    = var.account_profile
}
