# prod: the live course. Remote state (backend.hcl), and prevent_destroy on the catalog and
# schemas, which hold the students' data: make destroy ENV=prod stops at them (README, "Before and
# after the semester", says how a semester really ends).
locals {
  env = {
    node_type_id            = "Standard_DS3_v2"
    min_workers             = 1
    max_workers             = 2
    autotermination_minutes = 30
    protect_data            = true
  }
}
