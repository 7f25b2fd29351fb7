# The variables of both environment roots (dev/variables.tf and prod/variables.tf link here);
# each root's main.tf gives the environment's own defaults where these are null.

variable "course" {
  description = "Short course name: cluster names are <course>-<group_key>, and clusters carry the tag course=<course>. Give dev its own (e.g. bigdata-dev) when it shares a workspace with prod."
  type        = string
}

variable "target_workspace" {
  description = "The Terraform workspace this course lives in (terraform workspace select <name>); a plan in any other stops."
  type        = string
  default     = "default"
}

variable "databricks_host" {
  description = "Workspace URL, e.g. https://adb-123.4.azuredatabricks.net. Null: databricks_profile."
  type        = string
  default     = null
}

variable "databricks_token" {
  description = "Personal access token. Null: databricks_profile or another databricks auth method."
  type        = string
  default     = null
  sensitive   = true
}

variable "databricks_profile" {
  description = "A profile in ~/.databrickscfg, instead of host and token."
  type        = string
  default     = null
}

variable "account_id" {
  description = "Databricks account id: groups become account groups (needed for Unity Catalog grants and dedicated clusters). Null: workspace-local groups."
  type        = string
  default     = null
}

variable "account_host" {
  description = "The account console host, for account groups."
  type        = string
  default     = "https://accounts.azuredatabricks.net"
}

variable "account_profile" {
  description = "A profile in ~/.databrickscfg for the account API; null to authenticate from the environment."
  type        = string
  default     = null
}

variable "workspace_id" {
  description = "The workspace's numeric id (the o= in its URL), to assign account groups to it. Needed with account_id."
  type        = number
  default     = null
}

variable "manage_memberships" {
  description = "With account groups: manage their members from the roster; false when they are synced from Entra ID."
  type        = bool
  default     = true
}

variable "users_csv" {
  description = "The roster from python -m databricks.main --convert_moodle, relative to this root."
  type        = string
  default     = "users.csv"
}

variable "spark_version" {
  description = "Databricks runtime of every group cluster."
  type        = string
  default     = "15.4.x-scala2.12"
}

variable "node_type_id" {
  description = "Worker VM size; null: the environment's default (dev Standard_DS3_v2 with one worker, prod Standard_DS3_v2)."
  type        = string
  default     = null
}

variable "driver_node_type_id" {
  description = "Driver VM size; null means the worker size."
  type        = string
  default     = null
}

variable "min_workers" {
  description = "Autoscale lower bound; null: the environment's default."
  type        = number
  default     = null
}

variable "max_workers" {
  description = "Autoscale upper bound; null: the environment's default (dev 1, prod 2)."
  type        = number
  default     = null
}

variable "autotermination_minutes" {
  description = "Idle minutes before a cluster stops; null: the environment's default (dev 10, prod 30)."
  type        = number
  default     = null
}

variable "pypi_packages" {
  description = "PyPI packages installed on every group cluster."
  type        = list(string)
  default     = []
}

variable "maven_packages" {
  description = "Maven coordinates installed on every group cluster."
  type        = list(string)
  default     = []
}

variable "manager_group" {
  description = "A course-staff group with CAN_MANAGE on every cluster and ALL_PRIVILEGES on the catalog; null for none (never admins)."
  type        = string
  default     = null
}

variable "access_mode" {
  description = "dedicated, standard or none; null: dedicated with account_id, standard without."
  type        = string
  default     = null
}

variable "max_pinned" {
  description = "Pin at most this many clusters (100 in all per workspace)."
  type        = number
  default     = 100
}

variable "stop_clusters_after_create" {
  description = "Stop the clusters once created and their libraries installed (needs the repository's .venv)."
  type        = bool
  default     = true
}

variable "uc_catalog" {
  description = "The course's Unity Catalog catalog (UC_CATALOG of the SDK path); null for none."
  type        = string
  default     = null
}

variable "create_catalog" {
  description = "Create uc_catalog (true) or reuse an existing one (false)."
  type        = bool
  default     = true
}

variable "catalog_storage_root" {
  description = "The catalog's managed location (abfss://...), when the metastore has no storage of its own."
  type        = string
  default     = null
}

variable "notebooks_dir" {
  description = "A folder of course notebooks (source format), deployed once for every course group to read; relative to this root, or absolute. Null: none."
  type        = string
  default     = null
}
