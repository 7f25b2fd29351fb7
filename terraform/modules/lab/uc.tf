# A Unity Catalog home for every group (uc_catalog): the catalog, one schema per group where the
# group may create and modify, and `shared`, which every course group may read. The SDK path
# (UC_CATALOG) makes the same objects with the same names, grants and properties.
#
# Grants are databricks_grant (one principal each, never authoritative): whoever else holds
# privileges on the catalog or a schema keeps them. prevent_destroy must be a literal, so each
# object that holds data has a protected twin, chosen by var.protect_data (prod: true).

locals {
  uc = var.uc_catalog != null
  # schema name => (principal, privileges); the group keys come from the converter.
  schemas = local.uc ? merge(
    { for key, name in local.groups : key => { principal = name, privileges = local.group_privileges } },
    { shared = { principal = local.students_group, privileges = local.shared_privileges } },
  ) : {}
  group_privileges  = ["USE_SCHEMA", "CREATE_TABLE", "CREATE_VOLUME", "CREATE_FUNCTION", "CREATE_MATERIALIZED_VIEW", "SELECT", "MODIFY", "READ_VOLUME", "WRITE_VOLUME", "EXECUTE"]
  shared_privileges = ["USE_SCHEMA", "SELECT", "READ_VOLUME", "EXECUTE"]
  catalog_created   = local.uc && var.create_catalog
  catalog_name = local.catalog_created ? (
    var.protect_data ? databricks_catalog.course_protected[0].name : databricks_catalog.course[0].name
  ) : var.uc_catalog
  schema_ids = merge(
    { for k, s in databricks_schema.group : k => s.id },
    { for k, s in databricks_schema.group_protected : k => s.id },
  )
}

resource "terraform_data" "shared_key_free" {
  count = local.uc ? 1 : 0
  lifecycle {
    precondition {
      condition     = !contains(keys(local.groups), "shared")
      error_message = "A group has the key \"shared\", the name of the course's shared schema: give it another group_key in the roster."
    }
  }
}

resource "databricks_catalog" "course" {
  count        = local.catalog_created && !var.protect_data ? 1 : 0
  name         = var.uc_catalog
  comment      = "Course ${var.course} (teachinglab)"
  storage_root = var.catalog_storage_root
  properties   = { "teachinglab.course" = var.course }
  depends_on   = [terraform_data.workspace_guard]
}

resource "databricks_catalog" "course_protected" {
  count        = local.catalog_created && var.protect_data ? 1 : 0
  name         = var.uc_catalog
  comment      = "Course ${var.course} (teachinglab)"
  storage_root = var.catalog_storage_root
  properties   = { "teachinglab.course" = var.course }
  depends_on   = [terraform_data.workspace_guard]

  lifecycle {
    prevent_destroy = true
  }
}

resource "databricks_schema" "group" {
  for_each     = var.protect_data ? {} : local.schemas
  catalog_name = local.catalog_name
  name         = each.key
  comment      = "${each.value.principal} in course ${var.course}"
  properties   = { "teachinglab.course" = var.course }
  depends_on   = [terraform_data.shared_key_free]
}

resource "databricks_schema" "group_protected" {
  for_each     = var.protect_data ? local.schemas : {}
  catalog_name = local.catalog_name
  name         = each.key
  comment      = "${each.value.principal} in course ${var.course}"
  properties   = { "teachinglab.course" = var.course }
  depends_on   = [terraform_data.shared_key_free]

  lifecycle {
    prevent_destroy = true
  }
}

resource "databricks_grant" "catalog_students" {
  count      = local.uc ? 1 : 0
  catalog    = local.catalog_name
  principal  = local.students_group
  privileges = ["USE_CATALOG"]
  depends_on = [databricks_group.team, databricks_group.all_students, databricks_mws_permission_assignment.team]
}

resource "databricks_grant" "catalog_staff" {
  for_each   = local.uc ? toset(local.staff) : toset([])
  catalog    = local.catalog_name
  principal  = each.value
  privileges = ["ALL_PRIVILEGES"]
}

resource "databricks_grant" "schema" {
  for_each   = local.schemas
  schema     = local.schema_ids[each.key]
  principal  = each.value.principal
  privileges = each.value.privileges
  depends_on = [databricks_group.team, databricks_group.all_students, databricks_mws_permission_assignment.team]
}
