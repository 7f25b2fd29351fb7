# dev: ephemeral and cheap, easy to destroy. Local state (terraform.tfstate here, git-ignored).
terraform {
  required_version = ">= 1.7"

  required_providers {
    databricks = {
      source  = "databricks/databricks"
      version = "~> 1.138"
    }
  }

  backend "local" {
    path = "terraform.tfstate"
  }
}
