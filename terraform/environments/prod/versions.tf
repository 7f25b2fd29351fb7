# prod: the live course. Remote state on Azure Storage, one state per course: copy
# backend.hcl.example to backend.hcl (make plan ENV=prod passes it to terraform init).
terraform {
  required_version = ">= 1.7"

  required_providers {
    databricks = {
      source  = "databricks/databricks"
      version = "~> 1.138"
    }
  }

  backend "azurerm" {}
}
