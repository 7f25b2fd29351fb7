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
