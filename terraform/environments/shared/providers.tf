# Both environment roots link here: the workspace, and the account API for account groups.
provider "databricks" {
  host    = var.databricks_host
  token   = var.databricks_token
  profile = var.databricks_profile
}

# Auth: a profile (account_profile), or the environment (ARM_CLIENT_ID/_SECRET/ARM_TENANT_ID or
# DATABRICKS_CLIENT_ID/_SECRET for a service principal).
provider "databricks" {
  alias      = "account"
  host       = var.account_host
  account_id = var.account_id
  profile    = var.account_profile
}
