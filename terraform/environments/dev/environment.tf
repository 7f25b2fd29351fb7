# dev: small nodes, one worker, a short auto-termination, nothing protected from destroy. Try a
# change here (make plan ENV=dev, make apply ENV=dev) before it reaches the live course, and
# make destroy ENV=dev when done.
locals {
  env = {
    node_type_id            = "Standard_DS3_v2"
    min_workers             = 1
    max_workers             = 1
    autotermination_minutes = 10
    protect_data            = false
  }
}
