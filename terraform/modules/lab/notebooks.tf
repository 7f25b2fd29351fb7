# The course's notebooks (notebooks_dir), once, in a folder every course group may read. Per-group
# copies are the SDK path's (--deploy_notebooks): Terraform would put an edited copy back to the
# course's version at the next apply, and a group's work must never be overwritten.

locals {
  notebook_ext   = { py = "PYTHON", sql = "SQL", scala = "SCALA", r = "R", ipynb = null }
  notebook_files = var.notebooks_dir == null ? [] : sort([for f in fileset(var.notebooks_dir, "**") : f if contains(keys(local.notebook_ext), lower(element(split(".", f), length(split(".", f)) - 1))) && !startswith(basename(f), ".")])
  notebooks_home = "/Workspace/Groups/${local.students_group}/course-notebooks"
  notebooks = { for f in local.notebook_files : f => {
    path     = "${local.notebooks_home}/${trimsuffix(f, ".${element(split(".", f), length(split(".", f)) - 1)}")}"
    language = local.notebook_ext[lower(element(split(".", f), length(split(".", f)) - 1))]
  } }
}

resource "databricks_directory" "course_notebooks" {
  count = var.notebooks_dir == null ? 0 : 1
  path  = local.notebooks_home
}

resource "databricks_permissions" "course_notebooks" {
  count          = var.notebooks_dir == null ? 0 : 1
  directory_path = databricks_directory.course_notebooks[0].path

  access_control {
    group_name       = local.students_group
    permission_level = "CAN_READ"
  }

  depends_on = [databricks_group.team, databricks_group.all_students, databricks_mws_permission_assignment.team]
}

resource "databricks_notebook" "course" {
  for_each   = local.notebooks
  path       = each.value.path
  source     = "${var.notebooks_dir}/${each.key}"
  language   = each.value.language
  depends_on = [databricks_directory.course_notebooks]
}
