locals {
  rows = csvdecode(file(var.users_csv))

  # group_key => group name; keys come from the converter and never renumber.
  groups = { for key, names in { for r in local.rows : r.group_key => r.group_name... } : key => names[0] }

  # email => roster row, for every student (an empty group has a row with an empty email).
  students = { for email, rs in { for r in local.rows : lower(r.email) => r... if r.email != "" } : email => rs[0] }

  # "<group_key>/<email>" => row, one per membership
  memberships = { for r in local.rows : "${r.group_key}/${lower(r.email)}" => r if r.email != "" }

  # A workspace pins at most 100 clusters; the first var.max_pinned group keys (sorted) are pinned.
  pinned = toset(slice(sort(keys(local.groups)), 0, min(length(local.groups), var.max_pinned)))

  # CLUSTER_ACCESS_MODE of the SDK path: dedicated (to the group), standard, or none (legacy);
  # unset, dedicated where the groups are account groups and standard where they cannot be.
  access_mode = coalesce(var.access_mode, var.account_id != null ? "dedicated" : "standard")
  data_security_mode = {
    dedicated = "DATA_SECURITY_MODE_DEDICATED"
    standard  = "DATA_SECURITY_MODE_STANDARD"
    none      = null
  }[local.access_mode]

  # Staff CAN_MANAGE entries; never "admins" (the provider refuses it, and admins inherit
  # CAN_MANAGE on every cluster anyway).
  staff = var.manager_group == null ? [] : [var.manager_group]

  # "15.4.x-scala2.12" -> 1504; the runtime each access mode needs (Databricks docs: dedicated
  # group access needs 15.4 LTS+, standard access mode with Unity Catalog 13.3 LTS+).
  runtime     = try(tonumber(regex("^(\\d+)\\.", var.spark_version)[0]) * 100 + tonumber(regex("^\\d+\\.(\\d+)", var.spark_version)[0]), 0)
  min_runtime = { dedicated = 1504, standard = 1303, none = 0 }[local.access_mode]
  runtime_ok  = local.runtime >= local.min_runtime

  # With account_id, groups are account groups (identity federation), assigned to the workspace,
  # so they can be granted Unity Catalog privileges; otherwise workspace-local groups.
  account_groups = var.account_id != null
  local_groups   = local.account_groups ? {} : local.groups
  acct_groups    = local.account_groups ? local.groups : {}
  students_group = "${var.course}-students"
  group_ids = merge(
    { for k, g in databricks_group.team : k => g.id },
    { for k, g in databricks_group.team_account : k => g.id },
  )
  students_group_id = local.account_groups ? databricks_group.all_students_account[0].id : databricks_group.all_students[0].id
  # Members of account groups are managed here unless they come from Entra ID (manage_memberships).
  local_memberships = local.account_groups ? {} : local.memberships
  acct_memberships  = local.account_groups && var.manage_memberships ? local.memberships : {}
  local_students    = local.account_groups ? {} : local.students
  acct_students     = local.account_groups && var.manage_memberships ? local.students : {}
}

# Stops a plan made in the wrong Terraform workspace before it can touch another course.
resource "terraform_data" "workspace_guard" {
  input = terraform.workspace

  lifecycle {
    precondition {
      condition     = terraform.workspace == var.target_workspace
      error_message = "Selected Terraform workspace is \"${terraform.workspace}\" but this course expects \"${var.target_workspace}\": run terraform workspace select ${var.target_workspace}."
    }
  }
}

resource "databricks_user" "student" {
  for_each         = local.students
  user_name        = each.key
  display_name     = trimspace("${each.value.first_name} ${each.value.last_name}")
  workspace_access = true
  depends_on       = [terraform_data.workspace_guard]
}

resource "databricks_group" "team" {
  for_each         = local.local_groups
  display_name     = each.value
  workspace_access = true
  depends_on       = [terraform_data.workspace_guard]
}

resource "databricks_group" "all_students" {
  count            = local.account_groups ? 0 : 1
  display_name     = local.students_group
  workspace_access = true
  depends_on       = [terraform_data.workspace_guard]
}

moved {
  from = databricks_group.all_students
  to   = databricks_group.all_students[0]
}

resource "databricks_group_member" "team" {
  for_each  = local.local_memberships
  group_id  = databricks_group.team[each.value.group_key].id
  member_id = databricks_user.student[lower(each.value.email)].id
}

resource "databricks_group_member" "all_students" {
  for_each  = local.local_students
  group_id  = databricks_group.all_students[0].id
  member_id = databricks_user.student[each.key].id
}

# Account groups (account_id set). An account group of the same name that already exists is
# reused, never shadowed: import it first, e.g.
#   terraform import 'databricks_group.team_account["g1043"]' <account group id>
resource "databricks_group" "team_account" {
  provider     = databricks.account
  for_each     = local.acct_groups
  display_name = each.value
  depends_on   = [terraform_data.workspace_guard]
}

resource "databricks_group" "all_students_account" {
  provider     = databricks.account
  count        = local.account_groups ? 1 : 0
  display_name = local.students_group
  depends_on   = [terraform_data.workspace_guard]
}

resource "databricks_mws_permission_assignment" "team" {
  provider     = databricks.account
  for_each     = merge(local.acct_groups, local.account_groups ? { students = local.students_group } : {})
  workspace_id = var.workspace_id
  principal_id = each.key == "students" ? databricks_group.all_students_account[0].id : databricks_group.team_account[each.key].id
  permissions  = ["USER"]
}

# Under identity federation a workspace user is an account user with the same id.
resource "databricks_group_member" "team_account" {
  provider  = databricks.account
  for_each  = local.acct_memberships
  group_id  = databricks_group.team_account[each.value.group_key].id
  member_id = databricks_user.student[lower(each.value.email)].id
}

resource "databricks_group_member" "all_students_account" {
  provider  = databricks.account
  for_each  = local.acct_students
  group_id  = databricks_group.all_students_account[0].id
  member_id = databricks_user.student[each.key].id
}

resource "databricks_cluster" "team" {
  for_each                = local.groups
  cluster_name            = "${var.course}-${each.key}"
  spark_version           = var.spark_version
  node_type_id            = var.node_type_id
  driver_node_type_id     = var.driver_node_type_id
  autotermination_minutes = var.autotermination_minutes
  is_pinned               = contains(local.pinned, each.key)
  data_security_mode      = local.data_security_mode
  # Dedicated to the group: only its members can attach, and they act with the group's rights.
  single_user_name = local.access_mode == "dedicated" ? each.value : null

  autoscale {
    min_workers = var.min_workers
    max_workers = var.max_workers
  }

  # The quota tool maps a cluster to its group by this tag.
  custom_tags = {
    group  = each.value
    course = var.course
  }

  dynamic "library" {
    for_each = var.pypi_packages
    content {
      pypi {
        package = library.value
      }
    }
  }

  dynamic "library" {
    for_each = var.maven_packages
    content {
      maven {
        coordinates = library.value
      }
    }
  }

  lifecycle {
    precondition {
      condition     = local.runtime_ok
      error_message = "spark_version ${var.spark_version} is too old for access_mode ${local.access_mode}: dedicated group compute needs Databricks Runtime 15.4 or later, standard needs 13.3 or later."
    }
  }

  depends_on = [terraform_data.workspace_guard, databricks_group.team, databricks_mws_permission_assignment.team]
}

# Permissions are authored once. The quota poll lowers a group to CAN_ATTACH_TO when it reaches its
# hard quota and the nightly close raises it again, so later applies must not put CAN_RESTART back
# in the middle of a blocked day: access_control drift is ignored. (The poll also re-checks the ACL
# of every cluster blocked today and lowers it again if anything raised it.)
resource "databricks_permissions" "cluster" {
  for_each   = local.groups
  cluster_id = databricks_cluster.team[each.key].id

  access_control {
    group_name       = each.value
    permission_level = "CAN_RESTART"
  }

  dynamic "access_control" {
    for_each = local.staff
    content {
      group_name       = access_control.value
      permission_level = "CAN_MANAGE"
    }
  }

  lifecycle {
    ignore_changes = [access_control]
  }
}

# Dedicated group compute works on the group's own folder: /Workspace/Groups/<group>, which the
# group may manage (Databricks docs, "Dedicated group access": best practices).
resource "databricks_directory" "group_home" {
  for_each = local.access_mode == "dedicated" ? local.groups : {}
  path     = "/Workspace/Groups/${each.value}"
}

resource "databricks_permissions" "group_home" {
  for_each       = databricks_directory.group_home
  directory_path = each.value.path

  access_control {
    group_name       = local.groups[each.key]
    permission_level = "CAN_MANAGE"
  }

  depends_on = [databricks_group.team, databricks_mws_permission_assignment.team]
}

# Create -> install -> stop, in one apply: the provider starts each new cluster and installs its
# libraries on it; this then stops them, so nobody pays for idle clusters until students start them.
resource "terraform_data" "stop_clusters" {
  count            = var.stop_clusters_after_create ? 1 : 0
  triggers_replace = [for k in sort(keys(local.groups)) : databricks_cluster.team[k].id]

  provisioner "local-exec" {
    working_dir = "${path.module}/../../.."
    command     = "${path.module}/../../../.venv/bin/python -m databricks.main --terminate_clusters --course ${var.course}"
  }

  depends_on = [databricks_permissions.cluster]
}
