"""Semester-end backup and restore beyond plain notebooks: DBC restores (the import API refuses
`overwrite` for DBC), and what the export API cannot back up, listed in manifest.json, never lost
without a word."""
import json

import pytest

from conftest import local
from databricks import main as cli
from databricks.sandbox import Fault

NOTEBOOK = "/Users/dana@uni.example.edu/hw1/etl"


@pytest.fixture
def env(make_env, monkeypatch):
    e = make_env(local(2026, 7, 10, 9))
    for key, value in e.env.items():
        monkeypatch.setenv(key, value)
    e.workspace.add_user("dana@uni.example.edu")
    _put(e.workspace, NOTEBOOK, "print('v1')\n")
    return e


def _put(ws, path, text, overwrite=False):
    ws.write_notebook(path, text.encode(), overwrite=overwrite)


def _text(ws, path):
    return ws.notebook_source(path).decode()


def test_dbc_backup_restores_over_an_existing_notebook(env, tmp_path):
    backup = tmp_path / "dbc"
    assert cli.main(["--export_notebooks", str(backup), "--format", "DBC"]) == 0
    _put(env.workspace, NOTEBOOK, "print('changed')\n", overwrite=True)
    assert cli.main(["--import_notebooks", str(backup)]) == 0  # before: always failed (overwrite + DBC)
    assert _text(env.workspace, NOTEBOOK) == "print('v1')\n"
    imports = [r.body for r in env.workspace.requests if r.path.endswith("/workspace/import") and r.status == 200]
    assert imports and all(not b.get("overwrite") for b in imports)


def test_a_failed_dbc_import_puts_the_current_version_back(env, tmp_path, capsys):
    backup = tmp_path / "dbc"
    cli.main(["--export_notebooks", str(backup), "--format", "DBC"])
    _put(env.workspace, NOTEBOOK, "print('latest work')\n", overwrite=True)
    env.workspace.inject(Fault(method="POST", path="/workspace/import", status=500, times=1))
    assert cli.main(["--import_notebooks", str(backup)]) == 1
    assert _text(env.workspace, NOTEBOOK) == "print('latest work')\n"  # never neither version
    assert "FAILED " + NOTEBOOK in capsys.readouterr().err


def test_git_folders_dashboards_and_big_files_are_listed_as_skipped_with_a_reason(env, tmp_path, capsys):
    ws = env.workspace
    ws.add_object("/Users/dana@uni.example.edu/project-repo", "REPO")
    ws.add_object("/Users/dana@uni.example.edu/sales.lvdash.json", "DASHBOARD", size=2000)
    ws.add_object("/Users/dana@uni.example.edu/data.parquet", "FILE", size=11 * 1024 * 1024)
    backup = tmp_path / "backup"
    assert cli.main(["--export_notebooks", str(backup)]) == 0
    manifest = json.loads((backup / "manifest.json").read_text())
    assert [e["path"] for e in manifest["files"] if e["status"] == "exported"] == [NOTEBOOK]
    assert {e["path"] for e in manifest["files"] if e["status"] == "skipped"} == {e["path"] for e in manifest["skipped"]}
    skipped = {e["path"]: e for e in manifest["skipped"]}
    assert set(skipped) == {"/Users/dana@uni.example.edu/project-repo",
                            "/Users/dana@uni.example.edu/sales.lvdash.json",
                            "/Users/dana@uni.example.edu/data.parquet"}
    assert all(e["status"] == "skipped" and e["reason"] for e in skipped.values())
    assert "Git folder" in skipped["/Users/dana@uni.example.edu/project-repo"]["reason"]
    assert "10 MB" in skipped["/Users/dana@uni.example.edu/data.parquet"]["reason"]
    assert "skipped 3" in capsys.readouterr().out
    capsys.readouterr()
    assert cli.main(["--export_notebooks", str(backup)]) == 0  # resumes: the skipped ones are listed again
    assert "exported 0, already there 1, skipped 3" in capsys.readouterr().out
    assert cli.main(["--import_notebooks", str(backup)]) == 0  # restores what was exported, only


def test_export_dry_run_writes_nothing(env, tmp_path, capsys):
    backup = tmp_path / "backup"
    assert cli.main(["--export_notebooks", str(backup), "--dry-run"]) == 0
    assert not backup.exists() and "would export 1" in capsys.readouterr().out


def test_import_dry_run_changes_nothing(env, tmp_path, capsys):
    backup = tmp_path / "backup"
    cli.main(["--export_notebooks", str(backup)])
    env.workspace.delete_object(NOTEBOOK, recursive=False)
    writes = len([r for r in env.workspace.requests if r.method == "POST"])
    assert cli.main(["--import_notebooks", str(backup), "--dry-run"]) == 0
    assert "would import 1" in capsys.readouterr().out
    assert len([r for r in env.workspace.requests if r.method == "POST"]) == writes
    assert env.workspace.object_status(NOTEBOOK) is None
