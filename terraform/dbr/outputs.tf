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
