# Plan-level checks from the sample roster: N groups give N clusters, memberships, permissions, tags.
# The module takes both provider configurations from its root (configuration_aliases).
provider "databricks" {}

provider "databricks" {
  alias = "account"
}

variables {
  course                     = "bigdata"
  target_workspace           = "default"
  users_csv                  = "tests/users.sample.csv"
  pypi_packages              = ["nltk==3.9.1"]
  maven_packages             = ["com.example:lib:1.0"]
  stop_clusters_after_create = false
}

run "one_cluster_per_group" {
  command = plan

  assert {
    condition     = length(databricks_cluster.team) == 4
    error_message = "4 groups (one empty) must give 4 clusters"
  }
  assert {
    condition     = databricks_cluster.team["g1044"].custom_tags["group"] == "קבוצה שלוש" && databricks_cluster.team["g1044"].custom_tags["course"] == "bigdata"
    error_message = "cluster tags must carry the group name and the course"
  }
  assert {
    condition     = databricks_cluster.team["g1043"].cluster_name == "bigdata-g1043" && databricks_cluster.team["g1043"].is_pinned
    error_message = "clusters are named <course>-<group_key> and pinned"
  }
  assert {
    condition     = databricks_cluster.team["g1043"].data_security_mode == "DATA_SECURITY_MODE_STANDARD" && databricks_cluster.team["g1043"].single_user_name == null
    error_message = "without account groups (no account_id) the default is standard: a workspace-local group cannot own a dedicated Unity Catalog cluster"
  }
  assert {
    condition     = databricks_cluster.team["g1043"].autoscale[0].max_workers == 2 && databricks_cluster.team["g1043"].autotermination_minutes == 30
    error_message = "autoscale and autotermination come from the variables"
  }
  assert {
    condition     = length(databricks_cluster.team["g1045"].library) == 2
    error_message = "one PyPI and one Maven library on every cluster"
  }
}

run "memberships_and_permissions" {
  command = plan

  assert {
    condition     = length(databricks_user.student) == 4 && length(databricks_group_member.team) == 4
    error_message = "4 students in 4 memberships (the empty group has none)"
  }
  assert {
    condition     = length(databricks_group_member.all_students) == 4 && databricks_group.all_students[0].display_name == "bigdata-students"
    error_message = "every student is in the all-students group"
  }
  assert {
    condition     = length(databricks_group.team) == 4 && databricks_group.team["g1046"].display_name == "Empty"
    error_message = "an empty group still gets its group"
  }
  assert {
    condition = alltrue([for k, p in databricks_permissions.cluster :
      !contains([for ac in p.access_control : ac.group_name], "admins")
    ])
    error_message = "no admins entry: the provider refuses it, and admins inherit CAN_MANAGE"
  }
  assert {
    condition = contains([for ac in databricks_permissions.cluster["g1043"].access_control : "${ac.group_name}=${ac.permission_level}"],
    "Team Rocket=CAN_RESTART")
    error_message = "each group gets CAN_RESTART on its own cluster"
  }
  assert {
    condition     = length(databricks_schema.group) + length(databricks_schema.group_protected) + length(databricks_catalog.course_protected) == 0
    error_message = "Unity Catalog objects are off by default"
  }
}

run "wrong_workspace_is_refused" {
  command = plan

  variables {
    target_workspace = "another-course"
  }

  expect_failures = [terraform_data.workspace_guard]
}

run "pinning_stops_at_max_pinned" {
  command = plan

  variables {
    max_pinned = 2
  }

  assert {
    condition     = length([for k, c in databricks_cluster.team : k if c.is_pinned]) == 2
    error_message = "only max_pinned clusters are pinned"
  }
}

run "standard_access_mode" {
  command = plan

  variables {
    access_mode   = "standard"
    manager_group = "course-staff"
  }

  assert {
    condition     = databricks_cluster.team["g1043"].data_security_mode == "DATA_SECURITY_MODE_STANDARD" && databricks_cluster.team["g1043"].single_user_name == null
    error_message = "standard mode shares the cluster and names no single user"
  }
  assert {
    condition     = contains([for ac in databricks_permissions.cluster["g1043"].access_control : "${ac.group_name}=${ac.permission_level}"], "course-staff=CAN_MANAGE")
    error_message = "a staff group gets CAN_MANAGE"
  }
  assert {
    condition     = length(databricks_directory.group_home) == 0
    error_message = "group folders are for dedicated mode"
  }
}

run "admins_as_manager_group_is_refused" {
  command = plan

  variables {
    manager_group = "admins"
  }

  expect_failures = [var.manager_group]
}

run "old_runtime_for_dedicated_is_refused" {
  command = plan

  variables {
    spark_version = "14.3.x-scala2.12"
    account_id    = "00000000-0000-4000-8000-000000000001"
    workspace_id  = 1234567890123456
  }

  expect_failures = [databricks_cluster.team]
}

run "dedicated_without_account_groups_is_refused" {
  command = plan

  variables {
    access_mode = "dedicated"
  }

  expect_failures = [var.access_mode]
}

run "account_groups_with_an_account_id" {
  command = plan

  variables {
    account_id   = "00000000-0000-4000-8000-000000000001"
    workspace_id = 1234567890123456
  }

  assert {
    condition     = length(databricks_group.team) == 0 && length(databricks_group.all_students) == 0
    error_message = "no workspace-local groups: they would shadow the account groups"
  }
  assert {
    condition     = length(databricks_group.team_account) == 4 && length(databricks_mws_permission_assignment.team) == 5
    error_message = "4 account groups plus the students group, each assigned to the workspace"
  }
  assert {
    condition     = length(databricks_group_member.team_account) == 4 && length(databricks_group_member.all_students_account) == 4
    error_message = "memberships are managed in the account"
  }
  assert {
    condition     = contains([for ac in databricks_permissions.cluster["g1043"].access_control : ac.group_name], "Team Rocket")
    error_message = "the cluster ACL names the account group"
  }
  assert {
    condition     = databricks_cluster.team["g1043"].data_security_mode == "DATA_SECURITY_MODE_DEDICATED" && databricks_cluster.team["g1043"].single_user_name == "Team Rocket"
    error_message = "with account groups each cluster is dedicated to its group by default"
  }
  assert {
    condition     = length(databricks_directory.group_home) == 4 && databricks_directory.group_home["g1043"].path == "/Workspace/Groups/Team Rocket"
    error_message = "dedicated group compute gets /Workspace/Groups/<group>"
  }
}

run "entra_synced_groups_keep_their_members" {
  command = plan

  variables {
    account_id         = "00000000-0000-4000-8000-000000000001"
    workspace_id       = 1234567890123456
    manage_memberships = false
  }

  assert {
    condition     = length(databricks_group_member.team_account) == 0 && length(databricks_group_member.all_students_account) == 0
    error_message = "memberships of Entra-synced groups are never changed"
  }
}

run "account_id_needs_a_workspace_id" {
  command = plan

  variables {
    account_id = "00000000-0000-4000-8000-000000000001"
  }

  expect_failures = [var.workspace_id]
}

run "a_unity_catalog_home_for_every_group" {
  command = plan

  variables {
    account_id   = "00000000-0000-4000-8000-000000000001"
    workspace_id = 1234567890123456
    uc_catalog   = "bigdata_2026"
  }

  assert {
    condition     = length(databricks_catalog.course_protected) == 1 && length(databricks_catalog.course) == 0
    error_message = "the catalog is created, protected from destroy by default"
  }
  assert {
    condition     = length(databricks_schema.group_protected) == 5 && databricks_schema.group_protected["g1043"].name == "g1043" && databricks_schema.group_protected["shared"].catalog_name == "bigdata_2026"
    error_message = "one schema per group (<catalog>.<group_key>) and a shared one"
  }
  assert {
    condition     = databricks_grant.schema["g1043"].principal == "Team Rocket" && contains(databricks_grant.schema["g1043"].privileges, "CREATE_TABLE") && contains(databricks_grant.schema["g1043"].privileges, "MODIFY")
    error_message = "each group may create and modify in its own schema"
  }
  assert {
    condition     = databricks_grant.schema["shared"].principal == "bigdata-students" && !contains(databricks_grant.schema["shared"].privileges, "MODIFY") && contains(databricks_grant.schema["shared"].privileges, "SELECT")
    error_message = "every course group may read the shared schema, and not change it"
  }
  assert {
    condition     = databricks_grant.catalog_students[0].principal == "bigdata-students" && databricks_grant.catalog_students[0].privileges == toset(["USE_CATALOG"])
    error_message = "the students reach the catalog"
  }
}

run "an_existing_catalog_is_reused_and_dev_is_unprotected" {
  command = plan

  variables {
    account_id     = "00000000-0000-4000-8000-000000000001"
    workspace_id   = 1234567890123456
    uc_catalog     = "main"
    create_catalog = false
    protect_data   = false
  }

  assert {
    condition     = length(databricks_catalog.course) + length(databricks_catalog.course_protected) == 0 && databricks_schema.group["g1044"].catalog_name == "main"
    error_message = "an existing catalog is used as it is, never created or replaced"
  }
  assert {
    condition     = length(databricks_schema.group) == 5 && length(databricks_schema.group_protected) == 0
    error_message = "protect_data = false: the schemas can be destroyed (dev)"
  }
}

run "course_notebooks_once_for_every_group_to_read" {
  command = plan

  variables {
    notebooks_dir = "tests/notebooks"
  }

  assert {
    condition     = length(databricks_notebook.course) == 2 && databricks_notebook.course["week1/intro.py"].path == "/Workspace/Groups/bigdata-students/course-notebooks/week1/intro" && databricks_notebook.course["week1/intro.py"].language == "PYTHON"
    error_message = "each notebook in source format goes to the shared course folder, without its extension"
  }
  assert {
    condition     = [for ac in databricks_permissions.course_notebooks[0].access_control : "${ac.group_name}=${ac.permission_level}"] == ["bigdata-students=CAN_READ"]
    error_message = "every course group may read the course notebooks, not change them"
  }
}
