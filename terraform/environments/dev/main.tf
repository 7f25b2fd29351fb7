# dev: small nodes, one worker, a short auto-termination, nothing protected from destroy. Try a
# change here (make plan ENV=dev, make apply ENV=dev) before it reaches the live course, and
# make destroy ENV=dev when done.
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
  node_type_id               = coalesce(var.node_type_id, "Standard_DS3_v2")
  driver_node_type_id        = var.driver_node_type_id
  min_workers                = coalesce(var.min_workers, 1)
  max_workers                = coalesce(var.max_workers, 1)
  autotermination_minutes    = coalesce(var.autotermination_minutes, 10)
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
  protect_data               = false
}
