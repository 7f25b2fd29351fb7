# Both environment roots link here. handoff.json records `terraform output -json` of the root
# that TEACHINGLAB_ENV names.
output "cluster_ids" {
  description = "Group name => cluster id."
  value       = module.lab.cluster_ids
}

output "group_ids" {
  description = "Group name => Databricks group id (plus the all-students group)."
  value       = module.lab.group_ids
}

output "cluster_names" {
  description = "group_key => cluster name."
  value       = module.lab.cluster_names
}

output "catalog" {
  description = "The course's Unity Catalog catalog."
  value       = module.lab.catalog
}

output "schemas" {
  description = "The course's schemas, with who each is for."
  value       = module.lab.schemas
}

output "notebooks_folder" {
  description = "Where the course's notebooks are."
  value       = module.lab.notebooks_folder
}

output "cluster_settings" {
  description = "What every group cluster gets in this environment."
  value       = module.lab.cluster_settings
}

output "data_protected" {
  description = "Whether the catalog and schemas carry prevent_destroy."
  value       = module.lab.data_protected
}
