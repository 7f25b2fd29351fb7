# A course provisioned with the old single root (terraform/dbr) keeps its objects: point this
# root at that state (backend.hcl with the same key, or copy terraform.tfstate here) and these
# moves put each resource under module.lab instead of destroying and re-creating it.
moved {
  from = databricks_user.student
  to   = module.lab.databricks_user.student
}
moved {
  from = databricks_group.team
  to   = module.lab.databricks_group.team
}
moved {
  from = databricks_group.all_students
  to   = module.lab.databricks_group.all_students
}
moved {
  from = databricks_group_member.team
  to   = module.lab.databricks_group_member.team
}
moved {
  from = databricks_group_member.all_students
  to   = module.lab.databricks_group_member.all_students
}
moved {
  from = databricks_group.team_account
  to   = module.lab.databricks_group.team_account
}
moved {
  from = databricks_group.all_students_account
  to   = module.lab.databricks_group.all_students_account
}
moved {
  from = databricks_mws_permission_assignment.team
  to   = module.lab.databricks_mws_permission_assignment.team
}
moved {
  from = databricks_group_member.team_account
  to   = module.lab.databricks_group_member.team_account
}
moved {
  from = databricks_group_member.all_students_account
  to   = module.lab.databricks_group_member.all_students_account
}
moved {
  from = databricks_cluster.team
  to   = module.lab.databricks_cluster.team
}
moved {
  from = databricks_permissions.cluster
  to   = module.lab.databricks_permissions.cluster
}
moved {
  from = databricks_directory.group_home
  to   = module.lab.databricks_directory.group_home
}
moved {
  from = databricks_permissions.group_home
  to   = module.lab.databricks_permissions.group_home
}
moved {
  from = terraform_data.workspace_guard
  to   = module.lab.terraform_data.workspace_guard
}
moved {
  from = terraform_data.stop_clusters
  to   = module.lab.terraform_data.stop_clusters
}

# The old root's per-group schemas (create_group_schemas: <catalog_name>.<course>_<group_key>) hold
# students' tables and have no counterpart here (the new ones are <uc_catalog>.<group_key>):
# forgotten by Terraform, never destroyed. Drop them by hand once their data is saved.
removed {
  from = databricks_schema.team
  lifecycle {
    destroy = false
  }
}

removed {
  from = databricks_grants.team_schema
  lifecycle {
    destroy = false
  }
}
