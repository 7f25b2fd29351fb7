output "cluster_ids" {
  description = "Group name => cluster id."
  value       = { for k, name in local.groups : name => databricks_cluster.team[k].id }
}

output "group_ids" {
  description = "Group name => Databricks group id (plus the all-students group)."
  value = merge(
    { for k, name in local.groups : name => local.group_ids[k] },
    { (local.students_group) = local.students_group_id },
  )
}

output "cluster_names" {
  description = "group_key => cluster name."
  value       = { for k, c in databricks_cluster.team : k => c.cluster_name }
}

output "catalog" {
  description = "The course's Unity Catalog catalog (null without uc_catalog)."
  value       = var.uc_catalog
}

output "schemas" {
  description = "schema name => full name and who it is for (the groups' and shared)."
  value       = { for k, s in local.schemas : k => { full_name = "${var.uc_catalog}.${k}", principal = s.principal } }
}

output "notebooks_folder" {
  description = "Where the course's notebooks are (null without notebooks_dir)."
  value       = var.notebooks_dir == null ? null : local.notebooks_home
}

output "cluster_settings" {
  description = "What every group cluster gets: the environment's sizes and access mode."
  value = {
    node_type_id            = var.node_type_id
    min_workers             = var.min_workers
    max_workers             = var.max_workers
    autotermination_minutes = var.autotermination_minutes
    access_mode             = local.access_mode
  }
}

output "data_protected" {
  description = "Whether the catalog and schemas carry prevent_destroy (prod)."
  value       = var.protect_data
}
