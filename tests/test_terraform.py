"""The Terraform module (terraform/modules/lab) and its two environment roots (terraform/environments/
dev and prod): structure (python-hcl2, always), and terraform fmt/validate/test where the databricks
provider can be loaded (the offline stand-ins from ../shared/tfcheck, or a real one)."""
import os
import shutil
import subprocess
from pathlib import Path

import hcl2
import pytest

from conftest import ROOT

MODULE = ROOT / "terraform" / "modules" / "lab"
ENVIRONMENTS = ROOT / "terraform" / "environments"


def _load(name: str, folder: Path = MODULE) -> dict:
    with open(folder / name, encoding="utf-8") as handle:
        return hcl2.load(handle)


def _resources() -> dict:
    out = {}
    for block in [b for name in ("main.tf", "uc.tf", "notebooks.tf") for b in _load(name).get("resource", [])]:
        for kind, named in block.items():
            for name, body in named.items():
                out[f"{kind}.{name}"] = body
    return out


def test_module_has_the_resources_the_course_needs():
    res = _resources()
    for name in ("databricks_user.student", "databricks_group.team", "databricks_group.all_students",
                 "databricks_group_member.team", "databricks_group_member.all_students",
                 "databricks_cluster.team", "databricks_permissions.cluster", "terraform_data.workspace_guard",
                 "terraform_data.stop_clusters", "databricks_catalog.course", "databricks_catalog.course_protected",
                 "databricks_schema.group", "databricks_schema.group_protected", "databricks_grant.schema",
                 "databricks_grant.catalog_students", "databricks_notebook.course"):
        assert any(key.replace('"', "") == name for key in res), name
    cluster = next(v for k, v in res.items() if k.replace('"', "") == "databricks_cluster.team")
    assert "local.pinned" in cluster["is_pinned"] and "data_security_mode" in cluster
    text = (MODULE / "main.tf").read_text()
    assert "csvdecode(file(var.users_csv))" in text and "group  = each.value" in text and "course = var.course" in text
    assert '"CAN_RESTART"' in text and '"CAN_MANAGE"' in text


def test_module_never_writes_an_admins_entry_and_leaves_acl_drift_to_the_poll():
    """The provider refuses an `admins` access_control entry at apply, and an authoritative
    databricks_permissions would hand a blocked group CAN_RESTART back on the next apply."""
    res = _resources()
    perms = next(v for k, v in res.items() if k.replace('"', "") == "databricks_permissions.cluster")
    entries = perms.get("access_control", []) + [
        d["access_control"]["content"][0] for d in perms.get("dynamic", []) if "access_control" in d]
    assert entries and not any(str(e.get("group_name", "")).strip('"') == "admins" for e in entries)
    lifecycle = perms["lifecycle"][0]
    assert "access_control" in str(lifecycle["ignore_changes"])
    assert _variables()["manager_group"]["default"] is None


def test_provider_is_pinned_and_only_builtins_besides_it():
    for folder in (MODULE, ENVIRONMENTS / "dev", ENVIRONMENTS / "prod"):
        tf = _load("versions.tf", folder)["terraform"][0]
        providers = tf["required_providers"][0]
        assert {k for k in providers if not k.startswith("__")} == {"databricks"}, folder
        assert providers["databricks"]["source"].strip('"') == "databricks/databricks"
        assert providers["databricks"]["version"].strip('"').startswith("~> 1.")


def test_the_module_takes_its_providers_from_the_environment_roots():
    """A module with provider blocks cannot be used with for_each or removed cleanly: the roots
    configure the workspace and the account API and pass both in."""
    assert "provider" not in _load("versions.tf") and "provider" not in _load("main.tf")
    providers = _load("versions.tf")["terraform"][0]["required_providers"][0]["databricks"]
    assert "databricks.account" in str(providers["configuration_aliases"])
    for env in ("dev", "prod"):
        lab = _load("lab.tf", ENVIRONMENTS / env)["module"][0]['"lab"']
        assert lab["source"].strip('"') == "../../modules/lab"
        assert "databricks.account" in str(lab["providers"])
        assert (ENVIRONMENTS / env / "lab.tf").resolve() == ENVIRONMENTS / "shared" / "lab.tf"  # one module call


def test_dev_is_cheap_and_destroyable_and_prod_keeps_state_remote_and_protects_data():
    dev = _load("environment.tf", ENVIRONMENTS / "dev")["locals"][0]["env"]
    prod = _load("environment.tf", ENVIRONMENTS / "prod")["locals"][0]["env"]
    assert dev["protect_data"] is False and prod["protect_data"] is True
    assert dev["autotermination_minutes"] == 10 and prod["autotermination_minutes"] == 30
    assert dev["max_workers"] == 1 and prod["max_workers"] == 2
    assert '"local"' in _load("versions.tf", ENVIRONMENTS / "dev")["terraform"][0]["backend"][0]
    assert '"azurerm"' in _load("versions.tf", ENVIRONMENTS / "prod")["terraform"][0]["backend"][0]
    protected = [body for key, body in _resources().items() if key.replace('"', "").endswith("_protected")]
    assert len(protected) == 2 and all(b["lifecycle"][0]["prevent_destroy"] is True for b in protected)


def test_grants_never_take_anyones_privileges_away():
    """databricks_grants is authoritative (it removes whatever else is granted on the securable);
    the module only uses databricks_grant, one principal at a time."""
    text = "".join((MODULE / f).read_text() for f in ("main.tf", "uc.tf", "notebooks.tf"))
    assert 'resource "databricks_grants"' not in text and 'resource "databricks_grant"' in text


def _variables(folder: Path = MODULE) -> dict:
    return {k.strip('"'): v for block in _load("variables.tf", folder)["variable"] for k, v in block.items()}


def test_every_variable_is_described_and_in_each_tfvars_example():
    for name, body in _variables().items():
        assert body.get("description"), name
    for env in ("dev", "prod"):
        example = (ENVIRONMENTS / env / "terraform.tfvars.example").read_text()
        for name, body in _variables(ENVIRONMENTS / env).items():
            assert body.get("description"), name
            assert f"{name} " in example or f"# {name} " in example, f"{name} missing from {env}/terraform.tfvars.example"
    assert _variables()["uc_catalog"]["default"] is None


def test_prod_state_is_azure_storage_and_the_old_roots_resources_move_into_the_module():
    assert "storage_account_name" in (ENVIRONMENTS / "prod" / "backend.hcl.example").read_text()
    moved = {m["from"].strip("${}"): m["to"].strip("${}") for m in _load("moved.tf", ENVIRONMENTS / "prod")["moved"]}
    assert moved["databricks_cluster.team"] == "module.lab.databricks_cluster.team"
    # The old per-group schemas hold tables and have no counterpart: forgotten, never destroyed.
    removed = {r["from"].strip("${}"): r["lifecycle"][0]["destroy"] for r in
               _load("moved.tf", ENVIRONMENTS / "prod")["removed"]}
    assert removed == {"databricks_schema.team": False, "databricks_grants.team_schema": False}


def _terraform_env() -> dict:
    if not shutil.which("terraform"):
        pytest.skip("terraform is not installed on this machine")
    env = dict(os.environ)
    if not (env.get("TF_CLI_CONFIG_FILE") and Path(env["TF_CLI_CONFIG_FILE"]).is_file()):
        setup = ROOT.parent / "shared" / "tfcheck" / "setup.sh"
        if not setup.exists():
            pytest.skip("no TF_CLI_CONFIG_FILE and no ../shared/tfcheck: the databricks provider cannot be "
                        "loaded offline here (the Terraform registry is unreachable)")
        r = subprocess.run([str(setup)], capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            pytest.skip(f"tfcheck setup failed: {r.stderr.strip()[-300:]}")
        env["TF_CLI_CONFIG_FILE"] = r.stdout.strip()
    env["TF_IN_AUTOMATION"] = "1"
    return env


def terraform(args: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["terraform", f"-chdir={cwd}", *args, "-no-color"], capture_output=True, text=True,
                          env=env, timeout=300)


def test_terraform_fmt():
    env = _terraform_env()
    r = terraform(["fmt", "-check", "-recursive"], ROOT / "terraform", env)
    assert r.returncode == 0, r.stdout + r.stderr


def _copy_terraform(tmp_path: Path) -> Path:
    """The terraform tree in a scratch folder (symlinks kept), so parallel tests never share .terraform."""
    work = tmp_path / "terraform"
    shutil.copytree(ROOT / "terraform", work, symlinks=True,
                    ignore=shutil.ignore_patterns(".terraform*", "terraform.tfstate*", "users.csv"))
    return work


def test_terraform_module_test(tmp_path):
    """The module's own runs (its test files configure both providers). It is validated through
    the environment roots below: on its own, validate wants the aliased provider configured."""
    env = _terraform_env()
    work = _copy_terraform(tmp_path) / "modules" / "lab"
    r = terraform(["test"], work, env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "15 passed, 0 failed" in r.stdout


@pytest.mark.parametrize("environment, runs", [("dev", 2), ("prod", 1)])
def test_terraform_environment_validate_and_test(tmp_path, environment, runs):
    env = _terraform_env()
    work = _copy_terraform(tmp_path) / "environments" / environment
    r = terraform(["get"], work, env)   # the local module only: nothing from the registry
    assert r.returncode == 0, r.stdout + r.stderr
    r = terraform(["validate"], work, env)
    assert r.returncode == 0, r.stdout + r.stderr
    r = terraform(["test"], work, env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{runs} passed, 0 failed" in r.stdout
