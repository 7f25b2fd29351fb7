variable "course" {
  description = "Short course name: cluster names are <course>-<group_key>, and clusters carry the tag course=<course>."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,30}$", var.course))
    error_message = "course must be 2-31 lowercase letters, digits or dashes."
  }
}

variable "target_workspace" {
  description = "The Terraform workspace this course lives in (terraform workspace select <name>). A plan in any other workspace stops, so one course's plan never touches another's."
  type        = string
}

variable "users_csv" {
  description = "Path of the roster from `python -m databricks.main --convert_moodle` (the environment roots pass \"$${path.root}/users.csv\")."
  type        = string
}

variable "spark_version" {
  description = "Databricks runtime of every group cluster."
  type        = string
  default     = "15.4.x-scala2.12"
}

variable "node_type_id" {
  description = "Worker VM size."
  type        = string
  default     = "Standard_DS3_v2"
}

variable "driver_node_type_id" {
  description = "Driver VM size; null means the worker size."
  type        = string
  default     = null
}

variable "min_workers" {
  description = "Autoscale lower bound."
  type        = number
  default     = 1
}

variable "max_workers" {
  description = "Autoscale upper bound."
  type        = number
  default     = 2
  validation {
    condition     = var.max_workers >= 1
    error_message = "max_workers must be at least 1."
  }
}

variable "autotermination_minutes" {
  description = "Idle minutes before a cluster stops by itself."
  type        = number
  default     = 30
}

variable "pypi_packages" {
  description = "PyPI packages installed on every group cluster, e.g. [\"nltk==3.9.1\"]."
  type        = list(string)
  default     = []
}

variable "maven_packages" {
  description = "Maven coordinates installed on every group cluster, e.g. [\"com.johnsnowlabs.nlp:spark-nlp_2.12:5.3.3\"]."
  type        = list(string)
  default     = []
}

variable "manager_group" {
  description = "A course-staff group that gets CAN_MANAGE on every cluster and ALL_PRIVILEGES on the course catalog; null for none. Not \"admins\": workspace admins already manage every cluster, and the provider refuses an admins entry."
  type        = string
  default     = null
  validation {
    condition     = var.manager_group == null || try(lower(var.manager_group) != "admins", true)
    error_message = "manager_group may not be \"admins\": admins inherit CAN_MANAGE on every cluster, and the provider refuses to modify admin permissions. Use a staff group, or null."
  }
}

variable "access_mode" {
  description = "Cluster access mode, as CLUSTER_ACCESS_MODE of the SDK path: dedicated (to the group: Azure's \"Dedicated group clusters\", a workspace setting an admin turns on; account groups and Databricks Runtime 15.4 or later), standard, or none (legacy, no Unity Catalog). Null: dedicated with account_id, standard without."
  type        = string
  default     = null
  validation {
    condition     = var.access_mode == null || contains(["dedicated", "standard", "none"], coalesce(var.access_mode, "standard"))
    error_message = "access_mode must be dedicated, standard or none."
  }
  validation {
    condition     = var.access_mode != "dedicated" || var.account_id != null
    error_message = "access_mode = dedicated needs account groups (set account_id): a dedicated group cluster runs as the group, and a workspace-local group cannot be granted access to Unity Catalog data. Turn on \"Dedicated group clusters\" in the workspace settings too, or use access_mode = standard."
  }
}

variable "max_pinned" {
  description = "Pin at most this many clusters (a workspace allows 100 pinned clusters in all); clusters past it are created unpinned."
  type        = number
  default     = 100
  validation {
    condition     = var.max_pinned >= 0 && var.max_pinned <= 100
    error_message = "max_pinned must be from 0 to 100."
  }
}

variable "stop_clusters_after_create" {
  description = "After clusters are created and their libraries installed, stop them (runs python -m databricks.main --terminate_clusters --course <course> from the repository root)."
  type        = bool
  default     = true
}

variable "account_id" {
  description = "Databricks account id: set it to create the groups as account groups (identity federation), assigned to the workspace, so they can be granted Unity Catalog privileges. Null: workspace-local groups. The SDK path reads DATABRICKS_ACCOUNT_ID."
  type        = string
  default     = null
}

variable "workspace_id" {
  description = "The workspace's numeric id (the o= in its URL), to assign account groups to it. Needed with account_id."
  type        = number
  default     = null
  validation {
    condition     = var.account_id == null || var.workspace_id != null
    error_message = "With account_id, set workspace_id (the number after ?o= in the workspace URL) so the account groups can be assigned to the workspace."
  }
}

variable "manage_memberships" {
  description = "With account groups: manage their members from the roster. Set false when the groups are synced from Entra ID (SCIM provisioning), whose members must not be changed here."
  type        = bool
  default     = true
}

variable "uc_catalog" {
  description = "UC_CATALOG of the SDK path: the course's Unity Catalog catalog, with one schema per group (<catalog>.<group_key>, the group may create and modify) and a shared schema every course group may read. Null: no Unity Catalog objects. Grants go to account groups (set account_id)."
  type        = string
  default     = null
  validation {
    condition     = var.uc_catalog == null || can(regex("^[a-z0-9_]{1,255}$", coalesce(var.uc_catalog, "x")))
    error_message = "uc_catalog must be lowercase letters, digits and underscores."
  }
}

variable "create_catalog" {
  description = "Create uc_catalog (true), or use one that exists already (false: it is reused, never replaced; the course schemas and grants go into it)."
  type        = bool
  default     = true
}

variable "catalog_storage_root" {
  description = "UC_CATALOG_STORAGE_ROOT: the catalog's managed location (abfss://container@account.dfs.core.windows.net/path), needed when the metastore has no storage of its own; null for the metastore's."
  type        = string
  default     = null
}

variable "protect_data" {
  description = "prevent_destroy on what holds the students' data (the catalog and schemas): prod sets it, dev does not. Terraform needs a literal there, so the module has a protected twin of each resource."
  type        = bool
  default     = true
}

variable "notebooks_dir" {
  description = "COURSE_NOTEBOOKS_DIR: a folder of notebooks in source format (.py, .sql, .scala, .r, .ipynb), deployed once into /Workspace/Groups/<course>-students/course-notebooks, which every course group may read. Per-group copies are the SDK path's (--deploy_notebooks), which never overwrites a copy a group edited. Null: none."
  type        = string
  default     = null
}
