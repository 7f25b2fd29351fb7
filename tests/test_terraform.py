"""The Terraform module: structure (python-hcl2, always), and terraform fmt/validate/test where the
databricks provider can be loaded (the offline stand-ins from ../shared/tfcheck, or a real one)."""
import os
import shutil
import subprocess
from pathlib import Path

import hcl2
import pytest

from conftest import ROOT

MODULE = ROOT / "terraform" / "dbr"


def _load(name: str) -> dict:
    with open(MODULE / name, encoding="utf-8") as handle:
        return hcl2.load(handle)


def _resources() -> dict:
    out = {}
    for block in _load("main.tf").get("resource", []):
        for kind, named in block.items():
            for name, body in named.items():
                out[f"{kind}.{name}"] = body
    return out


def _variables() -> dict:
    return {k.strip('"'): v for block in _load("variables.tf")["variable"] for k, v in block.items()}


def test_module_has_the_resources_the_course_needs():
    res = _resources()
    for name in ("databricks_user.student", "databricks_group.team", "databricks_group.all_students",
                 "databricks_group_member.team", "databricks_group_member.all_students",
                 "databricks_cluster.team", "databricks_permissions.cluster", "terraform_data.workspace_guard",
                 "terraform_data.stop_clusters", "databricks_schema.team", "databricks_grants.team_schema"):
        assert any(key.replace('"', "") == name for key in res), name
    cluster = next(v for k, v in res.items() if k.replace('"', "") == "databricks_cluster.team")
    assert "local.pinned" in cluster["is_pinned"] and "data_security_mode" in cluster
    text = (MODULE / "main.tf").read_text()
    assert "csvdecode(file(" in text and "group  = each.value" in text and "course = var.course" in text
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
    tf = _load("versions.tf")["terraform"][0]
    providers = tf["required_providers"][0]
    assert {k for k in providers if not k.startswith("__")} == {"databricks"}
    assert providers["databricks"]["source"].strip('"') == "databricks/databricks"
    assert providers["databricks"]["version"].strip('"').startswith("~> 1.")


def test_every_variable_is_described_and_in_the_tfvars_example():
    example = (MODULE / "terraform.tfvars.example").read_text()
    for name, body in _variables().items():
        assert body.get("description"), name
        assert f"{name} " in example or f"# {name} " in example, f"{name} missing from terraform.tfvars.example"
    assert _variables()["create_group_schemas"]["default"] is False


def test_backend_example_is_azure_storage():
    assert 'backend "azurerm"' in (MODULE / "backend.tf.example").read_text()


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
    r = terraform(["fmt", "-check", "-recursive"], MODULE, env)
    assert r.returncode == 0, r.stdout + r.stderr


def test_terraform_validate_and_test(tmp_path):
    env = _terraform_env()
    work = tmp_path / "dbr"
    shutil.copytree(MODULE, work, ignore=shutil.ignore_patterns(".terraform*", "terraform.tfstate*"))
    r = terraform(["validate"], work, env)
    assert r.returncode == 0, r.stdout + r.stderr
    r = terraform(["test"], work, env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "12 passed, 0 failed" in r.stdout
