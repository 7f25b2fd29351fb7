"""Issue 23, part 2: a Unity Catalog home for every group (UC_CATALOG) and the course's notebooks
(COURSE_NOTEBOOKS_DIR), through the real CLI and SDK against the emulated workspace, which models
catalogs, schemas and grants (databricks/sandbox/catalog.py)."""
from __future__ import annotations

import json

import pytest

from conftest import ADMIN, local, rerun_changes_nothing, roster_env
from databricks import main as cli

DANA, AVIGAIL = "dana@uni.example.edu", "avigail@uni.example.edu"   # Team Rocket (g1043), קבוצה שלוש (g1044)


@pytest.fixture
def env(make_env, monkeypatch, tmp_path):
    """A course under identity federation (account groups), with UC_CATALOG set."""
    e = roster_env(make_env, monkeypatch, tmp_path, local(2026, 3, 1, 9), COURSE_NAME="bigdata",
                   CLUSTER_ACCESS_MODE="standard")
    monkeypatch.setenv("DATABRICKS_ACCOUNT_ID", e.workspace.account_id)
    monkeypatch.setenv("DATABRICKS_ACCOUNT_HOST", e.server.url)
    monkeypatch.setenv("DATABRICKS_ACCOUNT_TOKEN", "sandbox-token")
    monkeypatch.setenv("UC_CATALOG", "bigdata_2026")
    return e


def run(*argv):
    return cli.main(list(argv))


def test_every_group_gets_a_schema_it_may_change_and_a_shared_one_it_may_only_read(env, capsys):
    ws = env.workspace
    assert run("--create_from_csv", str(env.users_csv), "--dry-run") == 0
    out = capsys.readouterr().out
    assert "would create_catalog  bigdata_2026" in out and "would create_schema   bigdata_2026.g1043" in out
    assert not ws.uc_schemas("bigdata_2026")
    assert run("--create_from_csv", str(env.users_csv)) == 0
    schemas = ws.uc_schemas("bigdata_2026")
    assert sorted(schemas) == ["bigdata_2026.g1043", "bigdata_2026.g1044", "bigdata_2026.g1045",
                               "bigdata_2026.g1046", "bigdata_2026.shared"]
    assert schemas["bigdata_2026.g1044"]["properties"] == {"teachinglab.course": "bigdata"}
    # Each group creates and modifies in its own schema, and only there.
    assert ws.uc_can(DANA, "CREATE_TABLE", "bigdata_2026.g1043") and ws.uc_can(DANA, "MODIFY", "bigdata_2026.g1043")
    assert not ws.uc_can(DANA, "CREATE_TABLE", "bigdata_2026.g1044")
    assert not ws.uc_can(DANA, "SELECT", "bigdata_2026.g1044")
    assert ws.uc_can(AVIGAIL, "CREATE_TABLE", "bigdata_2026.g1044")
    # The shared schema: every course group reads it, none changes it.
    assert ws.uc_can(DANA, "SELECT", "bigdata_2026.shared") and ws.uc_can(AVIGAIL, "SELECT", "bigdata_2026.shared")
    assert not ws.uc_can(DANA, "MODIFY", "bigdata_2026.shared")
    assert not ws.uc_can(DANA, "CREATE_TABLE", "bigdata_2026.shared")
    assert ws.uc_grants("catalog", "bigdata_2026") == {"bigdata-students": {"USE_CATALOG"}}
    rerun_changes_nothing(env, capsys)


def test_an_existing_catalog_and_schema_are_reused_never_replaced_and_other_grants_stay(env, capsys):
    ws = env.workspace
    ws.uc_add_catalog("bigdata_2026", owner=ADMIN)
    assert run("--create_from_csv", str(env.users_csv), "--dry-run") == 0
    assert "create_catalog" not in capsys.readouterr().out
    # Someone made g1043's schema by hand before, and granted a TA on it.
    ws.catalog.create_schema({"catalog_name": "bigdata_2026", "name": "g1043", "comment": "by hand"}, ADMIN, 0)
    ws.add_user("ta@uni.example.edu")
    ws.catalog.update_grants("schema", "bigdata_2026.g1043", {"changes": [
        {"principal": "ta@uni.example.edu", "add": ["SELECT"]}]}, ADMIN)
    ws.uc_add_table("bigdata_2026.g1043", "kept")
    assert run("--create_from_csv", str(env.users_csv)) == 0
    out = capsys.readouterr().out
    assert "schema bigdata_2026.g1043 exists and was not made for course bigdata: reused" in out
    schema = ws.uc_schemas("bigdata_2026")["bigdata_2026.g1043"]
    assert schema["comment"] == "by hand" and ws.catalog.tables["bigdata_2026.g1043"] == {"kept"}
    grants = ws.uc_grants("schema", "bigdata_2026.g1043")
    assert grants["ta@uni.example.edu"] == {"SELECT"} and "CREATE_TABLE" in grants["Team Rocket"]


def test_uc_catalog_without_account_groups_is_refused_before_anything_is_made(env, capsys, monkeypatch):
    monkeypatch.delenv("DATABRICKS_ACCOUNT_ID")
    assert run("--create_from_csv", str(env.users_csv)) == 2
    assert "UC_CATALOG=bigdata_2026 needs account groups" in capsys.readouterr().err
    assert not env.workspace.cluster_views(include_deleted=True) and not env.workspace.catalog.catalogs


def test_a_metastore_without_storage_needs_a_managed_location_and_says_so(env, capsys, monkeypatch):
    """Auto-provisioned metastores have no storage of their own ("Create catalogs")."""
    ws = env.workspace
    ws.catalog.metastore_storage = False
    assert run("--create_from_csv", str(env.users_csv)) == 1
    err = capsys.readouterr().err
    assert "FAILED create_catalog" in err and "set UC_CATALOG_STORAGE_ROOT" in err
    assert "FAILED create_schema   bigdata_2026.g1043" in err and "catalog bigdata_2026 was not created" in err
    assert ws.cluster_views(include_deleted=True)                    # the rest of provisioning went on
    monkeypatch.setenv("UC_CATALOG_STORAGE_ROOT", "abfss://lab@labstore.dfs.core.windows.net/bigdata")
    assert run("--create_from_csv", str(env.users_csv)) == 0
    assert ws.catalog.catalogs["bigdata_2026"]["storage_root"] == "abfss://lab@labstore.dfs.core.windows.net/bigdata"
    assert len(ws.uc_schemas("bigdata_2026")) == 5


def test_bad_uc_settings_name_the_variable_and_exit_2(env, capsys, monkeypatch):
    monkeypatch.setenv("UC_CATALOG", "hive_metastore")
    monkeypatch.setenv("UC_CATALOG_STORAGE_ROOT", "s3://bucket/x")
    with pytest.raises(SystemExit) as stop:
        run("--create_from_csv", str(env.users_csv))
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "UC_CATALOG='hive_metastore'" in err and "UC_CATALOG_STORAGE_ROOT=" in err


def test_the_emulator_refuses_grants_to_workspace_local_groups_and_misplaced_privileges(env):
    from databricks.sandbox.errors import ApiError
    ws = env.workspace
    ws.uc_add_catalog("c1", owner=ADMIN)
    ws.add_group("legacy")                                   # workspace-local
    with pytest.raises(ApiError) as refused:
        ws.catalog.update_grants("catalog", "c1", {"changes": [{"principal": "legacy", "add": ["USE_CATALOG"]}]}, ADMIN)
    assert refused.value.error_code == "PRINCIPAL_DOES_NOT_EXIST"
    ws.catalog.create_schema({"catalog_name": "c1", "name": "s"}, ADMIN, 0)
    with pytest.raises(ApiError) as misplaced:
        ws.catalog.update_grants("schema", "c1.s", {"changes": [{"principal": ADMIN, "add": ["USE_CATALOG"]}]}, ADMIN)
    assert misplaced.value.error_code == "INVALID_PARAMETER_VALUE"


# -- the course's notebooks -------------------------------------------------------------------
@pytest.fixture
def notebooks(tmp_path, monkeypatch):
    folder = tmp_path / "course"
    (folder / "week1").mkdir(parents=True)
    (folder / "week1" / "intro.py").write_text("# Databricks notebook source\nprint('week 1')\n")
    (folder / "week1" / "queries.sql").write_text("SELECT 1\n")
    (folder / "README.md").write_text("not a notebook\n")
    (folder / ".hidden.py").write_text("x = 1\n")
    monkeypatch.setenv("COURSE_NOTEBOOKS_DIR", str(folder))
    return folder


def test_course_notebooks_go_to_each_group_folder_and_a_second_run_changes_only_what_changed(
        env, notebooks, capsys, monkeypatch):
    monkeypatch.delenv("UC_CATALOG")
    ws = env.workspace
    assert run("--create_from_csv", str(env.users_csv)) == 0
    out = capsys.readouterr().out
    assert "README.md: not a notebook in source format" in out
    intro = "/Workspace/Groups/Team Rocket/course-notebooks/week1/intro"
    assert ws.notebook_source(intro) == b"# Databricks notebook source\nprint('week 1')\n"
    assert ws.object_status(intro)["language"] == "PYTHON"
    assert ws.object_status("/Workspace/Groups/קבוצה שלוש/course-notebooks/week1/queries")["language"] == "SQL"
    assert ws.object_status("/Workspace/Groups/Team Rocket/course-notebooks/.hidden") is None
    folder_acl = ws.object_acl("/Workspace/Groups/Team Rocket")
    assert any(e.get("group_name") == "Team Rocket" and e["all_permissions"][0]["permission_level"] == "CAN_MANAGE"
               for e in folder_acl)
    assert run("--deploy_notebooks", str(env.users_csv)) == 0
    assert "nothing to deploy" in capsys.readouterr().out
    # Week 2: the intro changes; Team Rocket has edited its copy meanwhile.
    env.at(local(2026, 3, 8, 9))
    ws.write_notebook(intro, b"print('our own work')\n", overwrite=True)
    (notebooks / "week1" / "intro.py").write_text("# Databricks notebook source\nprint('week 1, fixed')\n")
    assert run("--deploy_notebooks", str(env.users_csv), "--dry-run") == 0
    out = capsys.readouterr().out
    assert out.count("would deploy_notebook") == 3 and "(changed)" in out
    assert f"{intro} was edited in the workspace since it was deployed: kept" in out
    assert run("--deploy_notebooks", str(env.users_csv)) == 0
    assert ws.notebook_source(intro) == b"print('our own work')\n"                 # the group's work stays
    assert ws.notebook_source("/Workspace/Groups/Solo/course-notebooks/week1/intro") == \
        b"# Databricks notebook source\nprint('week 1, fixed')\n"
    assert ws.notebook_source("/Workspace/Groups/Solo/course-notebooks/week1/queries") == b"SELECT 1\n"


def test_shared_course_notebooks_are_one_copy_every_course_group_may_read(env, notebooks, capsys, monkeypatch):
    monkeypatch.delenv("UC_CATALOG")
    monkeypatch.setenv("COURSE_NOTEBOOKS_SHARED", "1")
    ws = env.workspace
    assert run("--create_from_csv", str(env.users_csv)) == 0
    home = "/Workspace/Groups/bigdata-students/course-notebooks"
    assert ws.notebook_source(f"{home}/week1/queries") == b"SELECT 1\n"
    assert ws.object_status("/Workspace/Groups/Team Rocket/course-notebooks/week1/queries") is None
    acl = {e.get("group_name"): e["all_permissions"][0]["permission_level"]
           for e in ws.object_acl("/Workspace/Groups/bigdata-students") if not e["all_permissions"][0]["inherited"]}
    assert acl == {"bigdata-students": "CAN_READ"}
    capsys.readouterr()
    assert run("--create_from_csv", str(env.users_csv)) == 0
    assert "nothing to change" in capsys.readouterr().out


def test_deploy_notebooks_without_the_folder_setting_is_a_clear_error(env, capsys, monkeypatch):
    monkeypatch.delenv("COURSE_NOTEBOOKS_DIR", raising=False)
    assert run("--deploy_notebooks", str(env.users_csv)) == 2
    assert "COURSE_NOTEBOOKS_DIR is not set" in capsys.readouterr().err


def test_the_handoff_record_lists_the_schemas_and_folders(env, notebooks, capsys):
    from databricks.teachinglab.cli.provisioning_commands import handoff_file
    assert run("--create_from_csv", str(env.users_csv)) == 0
    record = json.loads(handoff_file(env.settings).read_text())
    assert record["environment"] == "prod" and record["created"]["catalog"] == "bigdata_2026"
    assert {s["name"] for s in record["created"]["schemas"]} == {
        "bigdata_2026.g1043", "bigdata_2026.g1044", "bigdata_2026.g1045", "bigdata_2026.g1046", "bigdata_2026.shared"}
    assert all(s["owner"] == ADMIN and s["id"] for s in record["created"]["schemas"])
    folders = {f["path"]: f for f in record["created"]["folders"]}
    assert "/Workspace/Groups/Team Rocket/course-notebooks" in folders and "/Workspace/Groups/Solo" in folders
    solo = env.workspace.object_status("/Workspace/Groups/Solo")
    assert folders["/Workspace/Groups/Solo"]["id"] == solo["object_id"] and solo["object_type"] == "DIRECTORY"


def test_a_missing_notebook_folder_stops_the_deploy_and_never_the_poll(env, capsys, monkeypatch, tmp_path):
    from databricks import poll_clusters
    monkeypatch.setenv("COURSE_NOTEBOOKS_DIR", str(tmp_path / "moved-away"))
    assert run("--deploy_notebooks", str(env.users_csv)) == 2
    err = capsys.readouterr().err
    assert "COURSE_NOTEBOOKS_DIR=" in err and "moved-away is not a folder" in err
    assert poll_clusters.main([]) == 0
