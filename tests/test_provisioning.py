"""Provisioning against the emulated workspace through the real SDK: reconcile, teardown, notebooks,
and the whole semester path from a Moodle export."""
import json
import shutil
import subprocess
import sys

import pytest

from conftest import ADMIN, ROOT, local, rerun_changes_nothing, roster_env
from databricks import main as cli
from databricks.sandbox import Fault

DATA = ROOT / "tests" / "data"


@pytest.fixture
def env(make_env, monkeypatch, tmp_path):
    return roster_env(make_env, monkeypatch, tmp_path, local(2026, 3, 1, 9), COURSE_NAME="bigdata",
                      CLUSTER_PYPI_PACKAGES="nltk==3.9.1", CLUSTER_MAVEN_PACKAGES="com.example:lib:1.0")


def run(*argv):
    return cli.main(list(argv))


def test_first_run_creates_everything_and_second_run_changes_nothing(env, capsys):
    ws = env.workspace
    assert run("--create_from_csv", str(env.users_csv)) == 0
    assert ws.group_members("Team Rocket") == {
        "dana@uni.example.edu", "omer@uni.example.edu", "noa@uni.example.edu"}
    assert len(ws.group_members("bigdata-students")) == 7
    assert ws.group_id("קבוצה שלוש")
    clusters = {c.name: c for c in ws.cluster_views(include_deleted=True)}
    assert sorted(clusters) == ["bigdata-g1043", "bigdata-g1044", "bigdata-g1045", "bigdata-g1046"]
    c = clusters["bigdata-g1044"]
    assert c.spec["custom_tags"] == {"group": "קבוצה שלוש", "course": "bigdata"}
    assert c.spec["autoscale"] == {"min_workers": 1, "max_workers": 2} and c.spec["autotermination_minutes"] == 30
    assert c.pinned and c.state in ("TERMINATING", "TERMINATED")  # stopped right after creation
    assert ws.group_level(c.cluster_id, "קבוצה שלוש") == "CAN_RESTART"
    assert ws.group_level(c.cluster_id, "admins") is None  # inherited, never written
    libs = [s["library"] for s in ws.library_statuses(c.cluster_id)]
    assert {"pypi": {"package": "nltk==3.9.1"}} in libs and {"maven": {"coordinates": "com.example:lib:1.0"}} in libs
    rerun_changes_nothing(env, capsys)


def test_dry_run_plans_and_changes_nothing(env, capsys):
    before = len(env.workspace.user_names())
    assert run("--create_from_csv", str(env.users_csv), "--dry-run") == 0
    out = capsys.readouterr().out
    assert "would create_user" in out and "would create_cluster  bigdata-g1043" in out
    assert len(env.workspace.user_names()) == before and not env.workspace.cluster_views(include_deleted=True)


def test_drift_is_reported_and_prune_removes_what_the_roster_lacks(env, capsys, tmp_path):
    ws = env.workspace
    run("--create_from_csv", str(env.users_csv))
    ws.add_user("intruder@uni.example.edu")
    ws.add_member("Team Rocket", user="intruder@uni.example.edu")
    cid = next(c.cluster_id for c in ws.cluster_views(include_deleted=True) if c.name == "bigdata-g1043")
    ws.edit_cluster(cid, autotermination_minutes=240)
    smaller = tmp_path / "smaller.csv"
    smaller.write_text("\n".join(l for l in env.users_csv.read_text().splitlines() if not l.startswith("g1045")) + "\n")
    capsys.readouterr()
    assert run("--create_from_csv", str(smaller)) == 0
    out = capsys.readouterr().out
    assert "drift: cluster bigdata-g1043: autotermination_minutes is 240" in out
    assert "intruder@uni.example.edu" in out and ws.user_id("maya@uni.example.edu")
    assert run("--create_from_csv", str(smaller), "--prune") == 0
    assert not ws.user_id("maya@uni.example.edu")
    assert "bigdata-g1045" not in {c.name for c in ws.cluster_views()}
    assert ws.user_id(ADMIN)  # the admin is never pruned
    assert "intruder@uni.example.edu" not in ws.group_members("Team Rocket")


def test_a_throttled_create_is_not_retried_and_the_next_run_finishes_the_job(env, capsys):
    """Creates are sent once (a retried create can leave two clusters); what failed is reported
    one line per object, the rest goes on, and running the reconcile again completes it."""
    env.workspace.inject(Fault(method="POST", path="/preview/scim/v2/Users", status=429,
                               error_code="REQUEST_LIMIT_EXCEEDED", retry_after=1, times=2))
    assert run("--create_from_csv", str(env.users_csv)) == 1
    err = capsys.readouterr().err
    assert err.count("FAILED create_user") == 2 and "KeyError" not in err
    assert "member(s) not added, their user was not created" in err and "again" in err
    posts = [r for r in env.workspace.requests if r.method == "POST" and r.path.endswith("/scim/v2/Users")]
    assert len(posts) == 7  # 7 students, one request each: the two throttled ones were not resent
    assert run("--create_from_csv", str(env.users_csv)) == 0
    assert len(env.workspace.user_names()) == 8
    assert len(env.workspace.group_members("Team Rocket")) == 3


def test_delete_all_users_keeps_admins_summarises_failures_and_needs_confirmation(env, capsys, monkeypatch):
    ws = env.workspace
    run("--create_from_csv", str(env.users_csv))
    ws.add_user("ta@uni.example.edu", admin=True)
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO(""))
    assert run("--delete_all_users") == 2  # no terminal and no --yes: refused
    assert "needs confirmation" in capsys.readouterr().err and len(ws.user_names()) == 9
    victim = ws.user_id("dana@uni.example.edu")
    ws.inject(Fault(method="DELETE", path=f"/Users/{victim}$", status=500, times=None))
    assert run("--delete_all_users", "--yes") == 1
    out = capsys.readouterr().out
    assert "users: 6 deleted, 2 kept, 1 failed" in out and "FAILED dana@uni.example.edu" in out
    left = ws.user_names()
    assert left == {ADMIN, "ta@uni.example.edu", "dana@uni.example.edu"}


def test_typed_confirmation_must_match_the_host(env, capsys, monkeypatch):
    class Tty(__import__("io").StringIO):
        def isatty(self):
            return True
    monkeypatch.setattr("sys.stdin", Tty("wrong-host\n"))
    assert run("--delete_all_groups") == 2
    assert "did not match" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", Tty(env.server.url + "\n"))
    run("--create_from_csv", str(env.users_csv))
    assert run("--delete_all_groups") == 0
    assert env.workspace.group_names() == {"admins", "users"}


def test_purge_and_terminate_clusters_by_course(env, capsys):
    ws = env.workspace
    run("--create_from_csv", str(env.users_csv))
    other = ws.add_cluster("other-course", tags={"course": "physics"})
    ws.start_cluster(other, "x")
    ws.advance(120)
    assert run("--terminate_clusters", "--course", "bigdata") == 0
    assert ws.cluster(other).state == "RUNNING"
    assert run("--purge_clusters", "--course", "bigdata", "--yes") == 0
    assert [c.name for c in ws.cluster_views()] == ["other-course"]


def _seed_notebooks(ws):
    ws.add_user("dana@uni.example.edu")
    ws.add_user("omer@uni.example.edu")
    files = {"/Users/dana@uni.example.edu/hw1/etl": ("PYTHON", "print('שלום')\n"),
             "/Users/dana@uni.example.edu/hw1/query": ("SQL", "SELECT 1\n"),
             "/Users/omer@uni.example.edu/scala": ("SCALA", "val x = 1\n"),
             "/Shared/course/readme": ("PYTHON", "# shared\n")}
    for path, (lang, text) in files.items():
        ws.write_notebook(path, text.encode(), language=lang)
    return files


def test_export_keeps_language_writes_a_manifest_and_resumes(env, tmp_path, capsys):
    files = _seed_notebooks(env.workspace)
    out = tmp_path / "backup"
    assert run("--export_notebooks", str(out)) == 0
    manifest = json.loads((out / "manifest.json").read_text())["files"]
    assert {e["path"]: e["language"] for e in manifest} == {p: lang for p, (lang, _) in files.items()}
    assert (out / "Users/dana@uni.example.edu/hw1/etl.py").read_text() == "print('שלום')\n"
    assert (out / "Users/dana@uni.example.edu/hw1/query.sql").exists()
    assert (out / "Users/omer@uni.example.edu/scala.scala").exists()
    assert all(len(e["sha256"]) == 64 and e["size"] > 0 for e in manifest)
    # resume: a second run exports nothing it already has
    (out / "Users/omer@uni.example.edu/scala.scala").unlink()
    capsys.readouterr()
    assert run("--export_notebooks", str(out)) == 0
    assert "exported 1, already there 3" in capsys.readouterr().out


def test_import_restores_per_user(env, tmp_path, capsys):
    ws = env.workspace
    _seed_notebooks(ws)
    out = tmp_path / "backup"
    run("--export_notebooks", str(out))
    ws.delete_object("/Users/dana@uni.example.edu/hw1", recursive=True)
    ws.delete_object("/Users/omer@uni.example.edu/scala", recursive=False)
    assert run("--import_notebooks", str(out), "--user", "dana@uni.example.edu") == 0
    assert ws.object_status("/Users/dana@uni.example.edu/hw1/etl")["language"] == "PYTHON"
    assert ws.notebook_source("/Users/dana@uni.example.edu/hw1/etl") == "print('שלום')\n".encode()
    assert ws.object_status("/Users/omer@uni.example.edu/scala") is None  # another user's: not restored


def test_semester_path_from_moodle_export_to_notebook_backup(env, tmp_path, capsys):
    """convert -> terraform test (where Terraform can load the provider) -> --create_from_csv ->
    notebooks exported and imported."""
    from test_terraform import _copy_terraform, _terraform_env
    root = _copy_terraform(tmp_path) / "environments" / "dev"
    shutil.copy(env.users_csv, root / "users.csv")
    shutil.rmtree(root / "tests")
    (root / "tests").mkdir()
    (root / "tests" / "roster.tftest.hcl").write_text('''
variables {
  course                     = "bigdata"
  databricks_host            = "https://adb-1.azuredatabricks.net"
  stop_clusters_after_create = false
}
run "roster" {
  command = plan
  assert {
    condition     = length(output.cluster_names) == 4 && output.cluster_names["g1043"] == "bigdata-g1043"
    error_message = "4 groups from the Moodle export, one cluster each"
  }
}
''')
    try:
        tf_env = _terraform_env()
    except pytest.skip.Exception as skipped:
        tf_result = f"skipped: {skipped}"
    else:
        subprocess.run(["terraform", f"-chdir={root}", "get"], env=tf_env, capture_output=True, timeout=300)
        r = subprocess.run(["terraform", f"-chdir={root}", "test", "-no-color"], env=tf_env,
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0 and "1 passed, 0 failed" in r.stdout, r.stdout + r.stderr
        tf_result = "passed"
    assert run("--create_from_csv", str(env.users_csv)) == 0
    ws = env.workspace
    ws.write_notebook("/Users/noa@uni.example.edu/final", b"print(42)\n")
    backup = tmp_path / "backup"
    assert run("--export_notebooks", str(backup)) == 0
    ws.delete_object("/Users/noa@uni.example.edu/final", recursive=False)
    assert run("--import_notebooks", str(backup)) == 0
    assert ws.object_status("/Users/noa@uni.example.edu/final")["object_type"] == "NOTEBOOK"
    print(f"terraform test: {tf_result}", file=sys.stderr)


def test_admins_through_nested_groups_and_admin_assignments_are_never_deleted(env, capsys):
    """Regression: a professor who administers the workspace through a group nested in `admins`
    was deleted. So are principals holding the ADMIN permission assignment."""
    ws = env.workspace
    run("--create_from_csv", str(env.users_csv))
    prof = ws.add_user("prof@uni.example.edu")
    ws.add_group("course-staff", ["prof@uni.example.edu"])
    ws.add_member("admins", group_member="course-staff")  # nested: admins > course-staff > prof
    ws.add_user("dean@uni.example.edu")
    ws.grant_workspace_admin("dean@uni.example.edu")
    assert prof and run("--delete_all_users", "--yes") == 0
    left = ws.user_names()
    assert left == {ADMIN, "prof@uni.example.edu", "dean@uni.example.edu"}
    out = capsys.readouterr().out
    assert "kept   prof@uni.example.edu: a workspace admin" in out and "kept   dean@uni.example.edu" in out


def test_delete_all_groups_deletes_only_the_courses_groups(env, capsys, monkeypatch):
    ws = env.workspace
    run("--create_from_csv", str(env.users_csv))
    ws.add_group("other-course-team")
    ws.add_group("course-staff")
    assert run("--delete_all_groups", "--yes", "--roster", str(env.users_csv)) == 0
    left = ws.group_names()
    assert left == {"admins", "users", "other-course-team", "course-staff"}
    assert "not a group of course bigdata (--all deletes it)" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO(""))
    assert run("--delete_all_groups", "--all", "--yes") == 2  # --all always asks, --yes or not
    assert "--all always asks" in capsys.readouterr().err
    assert ws.group_names() == left


def _cluster(ws, name):
    return ws.cluster_named(name)


def test_prune_keeps_an_admin_and_a_lab_manager_placed_in_the_students_group(make_env, monkeypatch, tmp_path, capsys):
    """Regression: a TA who administers the workspace, put in bigdata-students by hand, was
    deleted by --prune (only ADMIN_EMAIL and the caller were kept)."""
    env = make_env(local(2026, 3, 1, 9), COURSE_NAME="bigdata", LAB_MANAGERS="grader@uni.example.edu")
    for key, value in env.env.items():
        monkeypatch.setenv(key, value)
    users = tmp_path / "users.csv"
    assert cli.main(["--convert_moodle", str(DATA / "moodle_groupselect.csv"), "-o", str(users)]) == 0
    ws = env.workspace
    run("--create_from_csv", str(users))
    ws.add_user("ta@uni.example.edu", admin=True)
    ws.add_user("grader@uni.example.edu")
    ws.add_user("leaver@uni.example.edu")
    for who in ("ta@uni.example.edu", "grader@uni.example.edu", "leaver@uni.example.edu"):
        ws.add_member("bigdata-students", user=who)
    capsys.readouterr()
    assert run("--create_from_csv", str(users), "--prune") == 0
    out = capsys.readouterr().out
    assert ws.has_user("ta@uni.example.edu") and ws.has_user("grader@uni.example.edu")
    assert not ws.has_user("leaver@uni.example.edu")
    assert "kept ta@uni.example.edu" in out and "a workspace admin" in out
    assert "kept grader@uni.example.edu" in out and "in LAB_MANAGERS" in out


def test_a_student_clusters_tags_never_widen_what_teardown_deletes(env, capsys):
    """Regression: a student's cluster tagged course=bigdata, group=bigdata-staff made
    --delete_all_groups delete the staff group, and --purge_clusters --course took in any cluster
    so tagged."""
    from databricks.sdk import WorkspaceClient
    ws = env.workspace
    run("--create_from_csv", str(env.users_csv))
    ws.add_group("bigdata-staff", ["prof@uni.example.edu"])
    ws.add_user("outsider@other.example.edu")
    student = WorkspaceClient(host=env.server.url, token=ws.token_for("outsider@other.example.edu"))
    policy = next(p.policy_id for p in student.cluster_policies.list())
    spoof = student.clusters.create(cluster_name="x", spark_version="15.4.x-scala2.12", node_type_id="Standard_DS3_v2",
                                    policy_id=policy, custom_tags={"course": "bigdata", "group": "bigdata-staff"}
                                    ).response.cluster_id
    assert run("--delete_all_groups", "--yes", "--roster", str(env.users_csv)) == 0
    assert "bigdata-staff" in ws.group_names()
    assert run("--purge_clusters", "--course", "bigdata", "--yes") == 0
    assert not ws.cluster(spoof).deleted                                        # not the course's
    assert all(c.deleted for c in ws.cluster_views(include_deleted=True) if c.name.startswith("bigdata-"))


def test_with_account_groups_clusters_are_dedicated_to_their_group_with_a_group_folder_by_default(federated):
    ws = federated.workspace
    assert run("--create_from_csv", str(federated.users_csv)) == 0
    spec = _cluster(ws, "bigdata-g1043").spec
    assert spec["data_security_mode"] == "DATA_SECURITY_MODE_DEDICATED" and spec["single_user_name"] == "Team Rocket"
    folder = ws.object_status("/Workspace/Groups/Team Rocket")
    assert folder["object_type"] == "DIRECTORY"
    acl = ws.object_acl("/Workspace/Groups/Team Rocket")
    assert {"group_name": "Team Rocket", "all_permissions": [{"permission_level": "CAN_MANAGE", "inherited": False}]} in acl


def test_standard_access_mode_shares_the_cluster_and_makes_no_folders(env, monkeypatch):
    monkeypatch.setenv("CLUSTER_ACCESS_MODE", "standard")
    assert run("--create_from_csv", str(env.users_csv)) == 0
    spec = _cluster(env.workspace, "bigdata-g1043").spec
    assert spec["data_security_mode"] == "DATA_SECURITY_MODE_STANDARD" and "single_user_name" not in spec
    assert env.workspace.object_status("/Groups/Team Rocket") is None


@pytest.mark.parametrize("var, value, says", [
    ("CLUSTER_ACCESS_MODE", "shared", "CLUSTER_ACCESS_MODE='shared' must be dedicated"),
    ("CLUSTER_SPARK_VERSION", "12.2.x-scala2.12", "needs Databricks Runtime 13.3 or later"),
    ("CLUSTER_MIN_WORKERS", "two", "CLUSTER_MIN_WORKERS='two' must be a whole number"),
])
def test_bad_cluster_settings_exit_2_naming_the_variable(env, monkeypatch, capsys, var, value, says):
    monkeypatch.setenv(var, value)
    with pytest.raises(SystemExit) as stop:
        run("--create_from_csv", str(env.users_csv))
    err = capsys.readouterr().err
    assert stop.value.code == 2 and says in err and "Traceback" not in err
    assert not env.workspace.cluster_views(include_deleted=True)


def test_without_account_groups_the_default_is_standard_and_says_so(env, capsys):
    assert run("--create_from_csv", str(env.users_csv), "--dry-run") == 0
    assert "CLUSTER_ACCESS_MODE is not set: clusters are standard" in capsys.readouterr().out
    assert run("--create_from_csv", str(env.users_csv)) == 0
    spec = _cluster(env.workspace, "bigdata-g1043").spec
    assert spec["data_security_mode"] == "DATA_SECURITY_MODE_STANDARD" and "single_user_name" not in spec


def test_dedicated_without_account_groups_is_refused_before_anything_is_made(env, monkeypatch, capsys):
    monkeypatch.setenv("CLUSTER_ACCESS_MODE", "dedicated")
    assert run("--create_from_csv", str(env.users_csv)) == 2
    err = capsys.readouterr().err
    assert "needs account groups" in err and "DATABRICKS_ACCOUNT_ID" in err and "Dedicated group clusters" in err
    assert not env.workspace.cluster_views(include_deleted=True) and "Team Rocket" not in env.workspace.group_names()


def test_a_runtime_the_workspace_does_not_offer_is_refused_before_anything_is_made(env, monkeypatch, capsys):
    monkeypatch.setenv("CLUSTER_SPARK_VERSION", "15.5.x-scala2.12")
    assert run("--create_from_csv", str(env.users_csv)) == 2
    assert "is not a runtime this workspace offers" in capsys.readouterr().err
    assert not env.workspace.cluster_views(include_deleted=True)


def test_a_refused_dedicated_create_names_the_workspace_setting(federated, capsys):
    federated.workspace.dedicated_group_clusters = False  # an admin has not turned the setting on
    assert run("--create_from_csv", str(federated.users_csv)) == 1
    err = capsys.readouterr().err
    assert err.count("FAILED create_cluster") == 4 and "\"Dedicated group clusters\"" in err


def test_at_most_100_clusters_are_pinned_and_the_rest_are_named(env, capsys):
    ws = env.workspace
    for i in range(98):
        ws.pin(ws.add_cluster(f"old-{i:03d}"))
    assert run("--create_from_csv", str(env.users_csv)) == 0
    out = capsys.readouterr().out
    pinned = {c.name for c in ws.cluster_views(include_deleted=True) if c.pinned}
    assert len(pinned) == 100 and {"bigdata-g1043", "bigdata-g1044"} <= pinned
    assert "cluster bigdata-g1045 will not be pinned" in out and "cluster bigdata-g1046 will not be pinned" in out


def test_libraries_that_could_not_be_queued_are_queued_by_the_next_run(env, capsys):
    ws = env.workspace
    ws.inject(Fault(method="POST", path="/libraries/install", status=500, times=4))  # every retry of one call
    assert run("--create_from_csv", str(env.users_csv)) == 1
    err = capsys.readouterr().err
    assert err.count("FAILED create_cluster") == 1 and "was created, but could not queue its libraries" in err
    assert run("--create_from_csv", str(env.users_csv)) == 0
    assert "install_libraries" in capsys.readouterr().out
    libs = [s["library"] for c in ws.cluster_views(include_deleted=True)
            for s in ws.library_statuses(c.cluster_id)]
    assert libs.count({"pypi": {"package": "nltk==3.9.1"}}) == 4
    assert run("--create_from_csv", str(env.users_csv)) == 0
    assert "nothing to change" in capsys.readouterr().out


@pytest.fixture
def federated(env, monkeypatch):
    """The workspace under identity federation: groups are account groups."""
    monkeypatch.setenv("DATABRICKS_ACCOUNT_ID", env.workspace.account_id)
    monkeypatch.setenv("DATABRICKS_ACCOUNT_HOST", env.server.url)  # the emulator is its own account host
    monkeypatch.setenv("DATABRICKS_ACCOUNT_TOKEN", "sandbox-token")
    return env


def test_with_an_account_id_groups_are_account_groups_assigned_to_the_workspace(federated, capsys):
    ws = federated.workspace
    assert run("--create_from_csv", str(federated.users_csv)) == 0
    assert ws.group_id("Team Rocket", account=True)
    assert ws.group_id("Team Rocket", account=False) is None  # no workspace-local twin
    assert ws.group_assignment("Team Rocket") == ["USER"]
    assert ws.group_members("Team Rocket") == {
        "dana@uni.example.edu", "omer@uni.example.edu", "noa@uni.example.edu"}
    assert ws.can_restart(_cluster(ws, "bigdata-g1043").cluster_id, "Team Rocket")
    capsys.readouterr()
    assert run("--create_from_csv", str(federated.users_csv)) == 0
    assert "nothing to change" in capsys.readouterr().out


def test_an_existing_account_group_is_reused_and_an_entra_group_is_never_changed(federated, capsys):
    ws = federated.workspace
    existing = ws.add_group("Team Rocket", account=True, assigned=False)
    ws.add_group("Solo", ["someone@uni.example.edu"], account=True, external_id="e1f2-entra")
    assert run("--create_from_csv", str(federated.users_csv)) == 0
    out = capsys.readouterr().out
    assert ws.group_id("Team Rocket", account=True) == existing and ws.group_assignment("Team Rocket") == ["USER"]
    assert ws.groups_named("Team Rocket") == 1
    assert ws.group_members("Solo") == {"someone@uni.example.edu"}  # untouched
    assert "group 'Solo' is synced from Entra ID" in out and "someone@uni.example.edu" in out


def test_account_group_members_are_read_one_group_at_a_time_since_the_list_has_none(federated, capsys):
    """The account SCIM list no longer returns members (databricks-sdk 0.156 AccountGroupsV2API.list,
    and the emulator likewise): a second run must still change nothing, an Entra group whose
    members match the roster is no drift, and --prune removes the member the roster lacks."""
    ws = federated.workspace
    assert run("--create_from_csv", str(federated.users_csv)) == 0
    listed = federated.lab().workspace  # a client of the workspace, to see what the account list says
    from databricks.sdk import AccountClient
    acct = AccountClient(host=federated.server.url, account_id=ws.account_id, token="sandbox-token")
    assert all(not g.members for g in acct.groups.list())          # the list carries none
    assert listed.group("Team Rocket").members                    # while the group has them
    capsys.readouterr()
    assert run("--create_from_csv", str(federated.users_csv)) == 0
    assert "nothing to change" in capsys.readouterr().out
    ws.add_user("stray@uni.example.edu")
    ws.add_member("Team Rocket", user="stray@uni.example.edu")
    assert run("--create_from_csv", str(federated.users_csv), "--prune") == 0
    assert "stray@uni.example.edu" not in ws.group_members("Team Rocket")
    assert len(ws.group_members("Team Rocket")) == 3


def test_a_workspace_local_group_of_the_same_name_is_reported_not_shadowed(federated, capsys, monkeypatch):
    ws = federated.workspace
    ws.add_group("Team Rocket")  # legacy, workspace-local
    assert run("--create_from_csv", str(federated.users_csv)) == 2  # dedicated: refused before anything is made
    assert "Team Rocket: workspace-local group(s)" in capsys.readouterr().err
    monkeypatch.setenv("CLUSTER_ACCESS_MODE", "standard")
    run("--create_from_csv", str(federated.users_csv))
    assert "group 'Team Rocket' is workspace-local" in capsys.readouterr().out
    assert ws.group_id("Team Rocket", account=True) is None


def test_an_account_id_without_account_auth_is_a_configuration_error(env, monkeypatch, capsys):
    monkeypatch.setenv("DATABRICKS_ACCOUNT_ID", env.workspace.account_id)
    with pytest.raises(SystemExit) as stop:
        run("--create_from_csv", str(env.users_csv))
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "DATABRICKS_ACCOUNT_ID is set, but nothing authenticates" in err


def test_provisioning_needs_course_name(env, monkeypatch, capsys):
    monkeypatch.delenv("COURSE_NAME")
    assert run("--create_from_csv", str(env.users_csv)) == 2
    assert "COURSE_NAME is not set" in capsys.readouterr().err and not env.workspace.cluster_views(include_deleted=True)


def test_serverless_access_follows_the_course_dry_run_first(env, capsys, monkeypatch):
    """With the two serverless compute ids, --create_from_csv takes CAN_USE from `users` and gives
    it to each course group; --dry-run says so and changes nothing; a second run changes nothing."""
    ws = env.workspace
    ids = ws.serverless_ids()
    monkeypatch.setenv("SERVERLESS_INTERACTIVE_COMPUTE_ID", ids["interactive"])
    monkeypatch.setenv("SERVERLESS_AUTOMATED_COMPUTE_ID", ids["automated"])
    assert run("--create_from_csv", str(env.users_csv), "--dry-run") == 0
    out = capsys.readouterr().out
    assert f"would grant CAN_USE on serverless compute for notebooks ({ids['interactive']}) to Team Rocket" in out
    assert "would remove CAN_USE on serverless compute for jobs" in out and "from users" in out
    assert ws.serverless_acl("interactive") == {("group_name", "users"): "CAN_USE"}
    assert run("--create_from_csv", str(env.users_csv)) == 0
    for kind in ("interactive", "automated"):
        acl = ws.serverless_acl(kind)
        assert ("group_name", "users") not in acl and acl[("group_name", "Team Rocket")] == "CAN_USE"
        assert acl[("group_name", "קבוצה שלוש")] == "CAN_USE"
    capsys.readouterr()
    assert run("--create_from_csv", str(env.users_csv)) == 0
    assert "nothing to change" in capsys.readouterr().out


def test_without_serverless_ids_provisioning_says_serverless_stays_open(env, capsys):
    assert run("--create_from_csv", str(env.users_csv), "--dry-run") == 0
    assert "SERVERLESS_INTERACTIVE_COMPUTE_ID and SERVERLESS_AUTOMATED_COMPUTE_ID are not set" in capsys.readouterr().out


def test_provisioning_and_teardown_write_the_handoff_record_without_secrets(env, capsys, tmp_path):
    import os
    import stat
    from databricks.teachinglab.cli.provisioning_commands import handoff_file
    record_path = handoff_file(env.settings)   # next to a SQLite ledger; with PostgreSQL, in the state folder
    assert record_path.parent == (tmp_path / "env0" if env.settings.ledger.db_path else
                                  tmp_path / "env0" / ".local" / "share" / "teachinglab")
    assert run("--create_from_csv", str(env.users_csv), "--dry-run") == 0
    assert not record_path.exists()                                   # a dry run writes no record
    assert run("--create_from_csv", str(env.users_csv)) == 0
    assert record_path.exists() and stat.S_IMODE(os.stat(record_path).st_mode) == 0o600
    text = record_path.read_text()
    assert "sandbox-token" not in text
    record = json.loads(text)
    assert record["course"] == "bigdata" and record["cloud"] == "unknown" and record["workspace"]["id"]
    assert record["auth"] == {"method": "pat", "principal": ADMIN, "account_id": None}
    clusters = {c["name"]: c for c in record["created"]["clusters"]}
    assert sorted(clusters) == ["bigdata-g1043", "bigdata-g1044", "bigdata-g1045", "bigdata-g1046"]
    assert clusters["bigdata-g1044"]["group"] == "קבוצה שלוש" and clusters["bigdata-g1044"]["id"]
    assert {g["name"] for g in record["created"]["groups"]} >= {"Team Rocket", "bigdata-students"}
    assert [e["event"] for e in record["events"]] == ["provisioned"]
    capsys.readouterr()
    assert run("--handoff", "--json") == 0
    assert json.loads(capsys.readouterr().out) == record
    copy = tmp_path / "copy.json"
    assert run("--handoff", "-o", str(copy), "--dry-run") == 0 and not copy.exists()
    assert run("--handoff", "-o", str(copy)) == 0 and json.loads(copy.read_text()) == record
    assert run("--purge_clusters", "--yes") == 0
    after = json.loads(record_path.read_text())
    assert after["created_at"] == record["created_at"] and after["created"]["clusters"] == []
    assert [e["event"] for e in after["events"]] == ["provisioned", "teardown: purge_clusters"]


def test_handoff_without_a_record_says_where_it_comes_from(env, capsys):
    assert run("--handoff") == 2
    assert "--create_from_csv writes it" in capsys.readouterr().err
