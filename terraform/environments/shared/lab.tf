# The module call of both environment roots (dev/lab.tf and prod/lab.tf link here). Each root's
# environment.tf sets local.env: the sizes it defaults to and whether its data is protected.
module "lab" {
  source = "../../modules/lab"
  providers = {
    databricks         = databricks
    databricks.account = databricks.account
  }

  course                     = var.course
  target_workspace           = var.target_workspace
  users_csv                  = "${path.root}/${var.users_csv}"
  spark_version              = var.spark_version
  node_type_id               = coalesce(var.node_type_id, local.env.node_type_id)
  driver_node_type_id        = var.driver_node_type_id
  min_workers                = coalesce(var.min_workers, local.env.min_workers)
  max_workers                = coalesce(var.max_workers, local.env.max_workers)
  autotermination_minutes    = coalesce(var.autotermination_minutes, local.env.autotermination_minutes)
  pypi_packages              = var.pypi_packages
  maven_packages             = var.maven_packages
  manager_group              = var.manager_group
  access_mode                = var.access_mode
  max_pinned                 = var.max_pinned
  stop_clusters_after_create = var.stop_clusters_after_create
  account_id                 = var.account_id
  workspace_id               = var.workspace_id
  manage_memberships         = var.manage_memberships
  uc_catalog                 = var.uc_catalog
  create_catalog             = var.create_catalog
  catalog_storage_root       = var.catalog_storage_root
  notebooks_dir              = var.notebooks_dir == null ? null : abspath(startswith(var.notebooks_dir, "/") ? var.notebooks_dir : "${path.root}/${var.notebooks_dir}")
  protect_data               = local.env.protect_data
}
