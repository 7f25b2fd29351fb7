"""The emulated workspace speaks the REST API the real databricks-sdk expects."""
import base64
from datetime import datetime, timedelta, timezone

import pytest
import requests
from databricks.sdk import WorkspaceClient
from databricks.sdk import errors
from databricks.sdk.service import compute, iam, workspace

from databricks.sandbox import Delays, Fault, SandboxClock, SandboxServer, Workspace

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=timezone.utc)


@pytest.fixture
def sandbox():
    ws = Workspace(SandboxClock(T0), tokens={"tok": "admin@example.edu"},
                   delays=Delays(startup=120, restart=60, resize=30, shutdown=30))
    with SandboxServer(workspace=ws) as server:
        yield server


@pytest.fixture
def w(sandbox):
    return WorkspaceClient(host=sandbox.url, token="tok")


def _create(w):
    return w.clusters.create(cluster_name="c", spark_version="15.4.x-scala2.12", num_workers=1,
                             node_type_id="Standard_DS3_v2").response.cluster_id


def test_state_machine_and_events(sandbox, w):
    cid = _create(w)
    assert w.clusters.get(cid).state == compute.State.PENDING
    sandbox.workspace.advance(120)
    assert w.clusters.get(cid).state == compute.State.RUNNING
    w.clusters.restart(cid)
    assert w.clusters.get(cid).state == compute.State.RESTARTING
    with pytest.raises(errors.InvalidState):
        w.clusters.start(cid)  # illegal: it is not terminated
    sandbox.workspace.advance(60)
    w.clusters.resize(cid, num_workers=3)
    assert w.clusters.get(cid).state == compute.State.RESIZING
    sandbox.workspace.advance(30)
    w.clusters.delete(cid)
    assert w.clusters.get(cid).state == compute.State.TERMINATING
    w.clusters.delete(cid)  # terminating twice is a no-op, as in Databricks
    sandbox.workspace.advance(30)
    details = w.clusters.get(cid)
    assert details.state == compute.State.TERMINATED and details.terminated_time
    kinds = [e.type.value for e in w.clusters.events(cid, order=compute.GetEventsOrder.ASC)]
    assert kinds == ["CREATING", "STARTING", "RUNNING", "RESTARTING", "RUNNING", "RESIZING",
                     "UPSIZE_COMPLETED", "TERMINATING"]
    stamps = [e.timestamp for e in w.clusters.events(cid, order=compute.GetEventsOrder.ASC)]
    assert stamps[2] - stamps[1] == 120_000  # RUNNING is stamped when start-up ended


def test_events_paging_filter_window_and_order(sandbox, w):
    cid = _create(w)
    for _ in range(30):
        sandbox.workspace.advance(120)
        w.clusters.restart(cid)
    sandbox.workspace.advance(120)
    all_asc = list(w.clusters.events(cid, order=compute.GetEventsOrder.ASC, limit=7))
    assert len(all_asc) == 1 + 1 + 1 + 30 * 2  # creating, starting, running, 30 x (restarting, running)
    assert [e.timestamp for e in all_asc] == sorted(e.timestamp for e in all_asc)
    desc = list(w.clusters.events(cid, limit=5))
    assert [e.timestamp for e in desc] == sorted((e.timestamp for e in desc), reverse=True)
    only = list(w.clusters.events(cid, event_types=[compute.EventType.RESTARTING], limit=4))
    assert len(only) == 30 and {e.type for e in only} == {compute.EventType.RESTARTING}
    mid = all_asc[10].timestamp
    window = list(w.clusters.events(cid, start_time=mid, end_time=mid + 120_000,
                                    order=compute.GetEventsOrder.ASC))
    assert all(mid <= e.timestamp <= mid + 120_000 for e in window) and window
    calls = [r for r in sandbox.workspace.requests if r.path.endswith("/clusters/events")]
    assert any((r.body or {}).get("offset") for r in calls)  # next_page was followed


def test_pin_unpin_edit_permanent_delete_on_both_api_versions(sandbox, w):
    cid = _create(w)
    w.clusters.pin(cid)
    assert sandbox.workspace.clusters.get(cid).pinned
    w.clusters.unpin(cid)
    assert not sandbox.workspace.clusters.get(cid).pinned
    sandbox.workspace.advance(120)
    w.clusters.edit(cid, cluster_name="renamed", spark_version="15.4.x-scala2.12", num_workers=2)
    assert w.clusters.get(cid).cluster_name == "renamed"
    old = requests.get(f"{sandbox.url}/api/2.0/clusters/get", params={"cluster_id": cid},
                       headers={"Authorization": "Bearer tok"})
    assert old.status_code == 200 and old.json()["cluster_id"] == cid
    w.clusters.permanent_delete(cid)
    assert cid not in [c.cluster_id for c in w.clusters.list()]


def test_permissions_put_patch_and_level_validation(sandbox, w):
    ws = sandbox.workspace
    ws.add_group("group_01", ["s1@uni.edu"])
    ws.add_user("ta@uni.edu")
    cid = _create(w)
    w.clusters.update_permissions(cid, access_control_list=[
        compute.ClusterAccessControlRequest(group_name="group_01",
                                            permission_level=compute.ClusterPermissionLevel.CAN_RESTART)])
    w.clusters.update_permissions(cid, access_control_list=[
        compute.ClusterAccessControlRequest(user_name="ta@uni.edu",
                                            permission_level=compute.ClusterPermissionLevel.CAN_MANAGE)])
    acl = {(e.group_name or e.user_name): e.all_permissions[0].permission_level.value
           for e in w.clusters.get_permissions(cid).access_control_list}
    assert acl == {"group_01": "CAN_RESTART", "ta@uni.edu": "CAN_MANAGE", "admin@example.edu": "CAN_MANAGE",
                   "admins": "CAN_MANAGE"}
    w.clusters.set_permissions(cid, access_control_list=[
        compute.ClusterAccessControlRequest(group_name="group_01",
                                            permission_level=compute.ClusterPermissionLevel.CAN_ATTACH_TO)])
    acl = {(e.group_name or e.user_name) for e in w.clusters.get_permissions(cid).access_control_list}
    assert acl == {"group_01", "admins"}  # PUT replaces every direct entry
    bad = requests.patch(f"{sandbox.url}/api/2.0/permissions/clusters/{cid}",
                         json={"access_control_list": [{"group_name": "group_01", "permission_level": "CAN_RUN"}]},
                         headers={"Authorization": "Bearer tok"})
    assert bad.status_code == 400 and bad.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    admins = requests.put(f"{sandbox.url}/api/2.0/permissions/clusters/{cid}",
                          json={"access_control_list": [{"group_name": "admins", "permission_level": "CAN_MANAGE"}]},
                          headers={"Authorization": "Bearer tok"})
    assert admins.status_code == 400 and "not possible to modify admin permissions" in admins.json()["message"]


def test_scim_users_groups_membership_both_ways(w):
    u = w.users.create(user_name="a@uni.edu", display_name="אביגיל כהן")
    g = w.groups.create(display_name="group_07")
    w.groups.patch(g.id, operations=[iam.Patch(op=iam.PatchOp.ADD, path="members",
                                               value=[{"value": u.id}])],
                   schemas=[iam.PatchSchema.URN_IETF_PARAMS_SCIM_API_MESSAGES_2_0_PATCH_OP])
    assert [m.value for m in w.groups.get(g.id).members] == [u.id]
    assert "group_07" in [x.display for x in w.users.get(u.id).groups]
    found = list(w.groups.list(filter='displayName eq "group_07"'))
    assert [x.id for x in found] == [g.id]
    assert [x.user_name for x in w.users.list(filter='userName eq "A@UNI.EDU"')] == ["a@uni.edu"]
    w.groups.patch(g.id, operations=[iam.Patch(op=iam.PatchOp.REMOVE, path=f'members[value eq "{u.id}"]')],
                   schemas=[iam.PatchSchema.URN_IETF_PARAMS_SCIM_API_MESSAGES_2_0_PATCH_OP])
    assert not w.groups.get(g.id).members
    assert "group_07" not in [x.display for x in (w.users.get(u.id).groups or [])]
    w.groups.patch(g.id, operations=[iam.Patch(op=iam.PatchOp.ADD, path="members", value=[{"value": u.id}])],
                   schemas=[iam.PatchSchema.URN_IETF_PARAMS_SCIM_API_MESSAGES_2_0_PATCH_OP])
    w.users.delete(u.id)
    assert not w.groups.get(g.id).members  # deleting a user removes the membership too
    with pytest.raises(errors.NotFound):
        w.users.get(u.id)
    assert w.current_user.me().user_name == "admin@example.edu"


def test_workspace_files_and_libraries(sandbox, w):
    w.workspace.mkdirs("/Users/a@uni.edu/project")
    source = "# Databricks notebook source\nprint('שלום')\n".encode()
    w.workspace.import_(path="/Users/a@uni.edu/project/nb", format=workspace.ImportFormat.SOURCE,
                        language=workspace.Language.PYTHON, content=base64.b64encode(source).decode())
    status = w.workspace.get_status("/Users/a@uni.edu/project/nb")
    assert status.object_type == workspace.ObjectType.NOTEBOOK and status.language == workspace.Language.PYTHON
    assert base64.b64decode(w.workspace.export("/Users/a@uni.edu/project/nb").content) == source
    assert [o.path for o in w.workspace.list("/Users/a@uni.edu/project")] == ["/Users/a@uni.edu/project/nb"]
    cid = _create(w)
    w.libraries.install(cid, libraries=[compute.Library(pypi=compute.PythonPyPiLibrary(package="pyspark-test"))])
    assert [s.status.value for s in w.libraries.cluster_status(cid)] == ["PENDING"]
    sandbox.workspace.advance(120)
    assert [s.status.value for s in w.libraries.cluster_status(cid)] == ["INSTALLED"]


def test_errors_are_shaped_like_databricks_and_429_carries_retry_after(sandbox):
    sandbox.inject(method="GET", path="/clusters/list", status=429, error_code="REQUEST_LIMIT_EXCEEDED",
                   retry_after=3)
    r = requests.get(f"{sandbox.url}/api/2.1/clusters/list", headers={"Authorization": "Bearer tok"})
    assert r.status_code == 429 and r.headers["Retry-After"] == "3"
    assert r.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED" and r.json()["message"]
    missing = requests.get(f"{sandbox.url}/api/2.1/clusters/get", params={"cluster_id": "nope"},
                           headers={"Authorization": "Bearer tok"})
    assert missing.status_code == 400 and missing.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert requests.get(f"{sandbox.url}/.well-known/databricks-config").status_code == 404


def test_token_is_checked(sandbox):
    with pytest.raises(errors.Unauthenticated):
        WorkspaceClient(host=sandbox.url, token="wrong").clusters.list().__next__()
    r = requests.get(f"{sandbox.url}/api/2.1/clusters/list")
    assert r.status_code == 401


def test_sdk_retries_429_with_retry_after(sandbox, w):
    fault = sandbox.inject(method="GET", path="/clusters/list", status=429,
                           error_code="REQUEST_LIMIT_EXCEEDED", retry_after=1)
    assert list(w.clusters.list()) == []
    assert fault.hits == 1


def test_fault_counts_down(sandbox):
    f = sandbox.workspace.inject(Fault(method="*", path="/clusters/", status=500, times=2))
    codes = [requests.get(f"{sandbox.url}/api/2.1/clusters/list", headers={"Authorization": "Bearer tok"}
                          ).status_code for _ in range(3)]
    assert codes == [500, 500, 200] and f.hits == 2


def test_student_without_can_restart_cannot_start(sandbox):
    ws = sandbox.workspace
    ws.add_group("group_01")
    cid = ws.add_cluster("cluster_01", acl=[{"group_name": "group_01", "permission_level": "CAN_ATTACH_TO"}])
    ws.user_action(T0 + timedelta(minutes=1), "start", cid, as_group="group_01")
    ws.advance(120)
    assert ws.clusters.get(cid).state == "TERMINATED"
    assert ws.refused and "CAN_RESTART" in ws.refused[0][3]


def test_sandbox_runs_by_hand_with_a_ticking_clock_and_a_control_endpoint(tmp_path):
    import signal
    import socket
    import subprocess
    import sys
    import time as _time

    from conftest import ROOT
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "databricks.sandbox", "--port", str(port), "--token", "t"],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == f"DATABRICKS_HOST=http://127.0.0.1:{port}"
        w = WorkspaceClient(host=f"http://127.0.0.1:{port}", token="t")
        cid = _create(w)
        assert w.clusters.get(cid).state == compute.State.PENDING
        r = requests.post(f"http://127.0.0.1:{port}/_sandbox/advance", json={"seconds": 300},
                          headers={"Authorization": "Bearer t"})
        assert r.status_code == 200
        assert w.clusters.get(cid).state == compute.State.RUNNING
        t0 = datetime.fromisoformat(r.json()["now"])
        _time.sleep(1.1)
        r2 = requests.post(f"http://127.0.0.1:{port}/_sandbox/advance", json={"seconds": 0},
                           headers={"Authorization": "Bearer t"})
        assert datetime.fromisoformat(r2.json()["now"]) - t0 >= timedelta(seconds=1)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def test_clusters_report_creator_source_and_access_mode_and_filter_by_source(sandbox, w):
    """Clusters API 2.1: creator_user_name, cluster_source (API for /clusters/create, JOB for job
    clusters) and data_security_mode; list(filter_by=cluster_sources) keeps only those sources."""
    cid = w.clusters.create(cluster_name="ded", spark_version="15.4.x-scala2.12", num_workers=1,
                            node_type_id="Standard_DS3_v2", single_user_name="group_01",
                            data_security_mode=compute.DataSecurityMode.DATA_SECURITY_MODE_DEDICATED).response.cluster_id
    sandbox.workspace.add_cluster("job-1-run-1", spec={"cluster_source": "JOB"})
    got = w.clusters.get(cid)
    assert got.creator_user_name == "admin@example.edu" and got.cluster_source == compute.ClusterSource.API
    assert got.data_security_mode == compute.DataSecurityMode.DATA_SECURITY_MODE_DEDICATED
    interactive = compute.ListClustersFilterBy(cluster_sources=[compute.ClusterSource.UI, compute.ClusterSource.API])
    assert [c.cluster_name for c in w.clusters.list(filter_by=interactive)] == ["ded"]
    assert {c.cluster_name for c in w.clusters.list()} == {"ded", "job-1-run-1"}


def test_personal_compute_policy_is_open_to_users_and_policy_acls_refuse_admins(sandbox, w):
    policies = list(w.cluster_policies.list())
    assert [(p.name, p.policy_family_id) for p in policies] == [("Personal Compute", "personal-vm")]
    acl = w.cluster_policies.get_permissions(policies[0].policy_id).access_control_list
    direct = {(e.group_name, e.all_permissions[0].permission_level.value) for e in acl
              if not e.all_permissions[0].inherited}
    assert direct == {("users", "CAN_USE")}
    with pytest.raises(errors.BadRequest, match="admin permissions"):
        w.cluster_policies.set_permissions(policies[0].policy_id, access_control_list=[
            compute.ClusterPolicyAccessControlRequest(
                group_name="admins", permission_level=compute.ClusterPolicyPermissionLevel.CAN_USE)])


def test_dbc_import_with_overwrite_is_refused(w):
    w.workspace.mkdirs("/Shared/x")
    content = base64.b64encode(b"dbc bytes").decode()
    w.workspace.import_("/Shared/x/nb", content=content, format=workspace.ImportFormat.DBC)
    with pytest.raises(errors.BadRequest, match="overwrite is not supported for DBC"):
        w.workspace.import_("/Shared/x/nb", content=content, format=workspace.ImportFormat.DBC, overwrite=True)


def test_nested_admins_entitlements_and_permission_assignments(sandbox, w):
    ws = sandbox.workspace
    ws.add_user("prof@uni.edu")
    staff = ws.add_group("staff", ["prof@uni.edu"])
    ws.directory.members[ws.directory.group_id("admins")].add(staff)
    assert ws.directory.is_admin("prof@uni.edu")
    users = next(iter(w.groups.list(filter='displayName eq "users"', attributes="entitlements")))
    assert {e.value for e in users.entitlements} == {"workspace-access", "databricks-sql-access"}
    dean = ws.add_user("dean@uni.edu")
    ws.directory.assign(dean, ["ADMIN"])
    doc = w.api_client.do("GET", "/api/2.0/preview/permissionassignments")
    assert {"principal": {"principal_id": int(dean), "user_name": "dean@uni.edu", "display_name": "dean@uni.edu"},
            "permissions": ["ADMIN"]} in doc["permission_assignments"]
    assert w.get_workspace_id() == ws.workspace_id  # X-Databricks-Org-Id


def test_account_groups_show_in_the_workspace_once_assigned(sandbox):
    from databricks.sdk import AccountClient
    ws = sandbox.workspace
    a = AccountClient(host=sandbox.url, account_id=ws.account_id, token="tok")
    w = WorkspaceClient(host=sandbox.url, token="tok")
    gid = a.groups.create(display_name="team-a").id
    assert "team-a" not in {g.display_name for g in w.groups.list()}
    a.workspace_assignment.update(ws.workspace_id, int(gid), permissions=[iam.WorkspacePermission.USER])
    seen = next(g for g in w.groups.list(attributes="displayName,meta") if g.display_name == "team-a")
    assert seen.meta.resource_type == "Group"
    assert [p.principal.group_name for p in a.workspace_assignment.list(ws.workspace_id)] == ["team-a"]
    with pytest.raises(errors.BadRequest, match="account group"):
        w.groups.patch(gid, operations=[iam.Patch(op=iam.PatchOp.ADD, path="members", value=[{"value": "1"}])],
                       schemas=[iam.PatchSchema.URN_IETF_PARAMS_SCIM_API_MESSAGES_2_0_PATCH_OP])


def test_a_429_storm_answers_every_call_with_retry_after(sandbox):
    sandbox.inject(method="*", path=".", status=429, error_code="REQUEST_LIMIT_EXCEEDED", retry_after=3, times=None)
    r = requests.get(f"{sandbox.url}/api/2.1/clusters/list", headers={"Authorization": "Bearer tok"})
    assert r.status_code == 429 and r.headers["Retry-After"] == "3"
    assert r.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"


def test_sandbox_help_documents_scenarios_and_the_clock():
    import subprocess
    import sys
    from conftest import ROOT
    r = subprocess.run([sys.executable, "-m", "databricks.sandbox", "--help"], cwd=ROOT, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0
    assert '"sessions"' in r.stdout and "/_sandbox/advance" in r.stdout and "--at" in r.stdout


def test_the_poll_runs_at_the_sandboxs_time_with_at(make_env):
    import os
    import subprocess
    import sys
    from conftest import ROOT, course, local
    env = make_env(local(2026, 3, 2, 7))
    ids = env.seed(course(1, 1))
    env.workspace.session(ids["cluster_01"], local(2026, 3, 2, 8), None)
    env.at(local(2026, 3, 2, 9))
    now = requests.get(f"{env.server.url}/_sandbox/now", headers={"Authorization": "Bearer sandbox-token"}).json()
    subenv = {**env.env, "PATH": os.environ["PATH"]}
    r = subprocess.run([sys.executable, "-m", "databricks.poll_clusters", "--at", now], cwd=ROOT, env=subenv,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    c = subprocess.run([sys.executable, "-m", "databricks.main", "--cluster_usage", "--json", "--at", now],
                       cwd=ROOT, env=subenv, capture_output=True, text=True, timeout=60)
    import json
    assert json.loads(c.stdout)[0]["used_seconds"] == 60 * 60
    real = subprocess.run([sys.executable, "-m", "databricks.poll_clusters", "--at", now], cwd=ROOT,
                          env={**subenv, "DATABRICKS_HOST": "https://adb-1.2.azuredatabricks.net",
                               "EMAIL_TRANSPORT": "file"}, capture_output=True, text=True, timeout=60)
    assert real.returncode == 2 and "emulated workspace" in real.stderr


def test_who_may_create_a_cluster_and_what_a_policy_fixes(sandbox, w):
    """Clusters API create: an admin, a principal with allow-cluster-create, or anyone through a
    policy they may use; the policy's fixed values are filled in and a contrary one refused. The
    creator (owner, CAN_MANAGE) sets name, tags and ACL: nothing is vetted."""
    ws = sandbox.workspace
    ws.add_user("s@uni.edu")
    student = WorkspaceClient(host=sandbox.url, token=ws.token_for("s@uni.edu"))
    with pytest.raises(errors.PermissionDenied):
        student.clusters.create(cluster_name="x", spark_version="15.4.x-scala2.12", node_type_id="n", num_workers=4)
    pc = ws.policy_id()
    with pytest.raises(errors.BadRequest, match="Validation failed for num_workers"):
        student.clusters.create(cluster_name="x", spark_version="15.4.x-scala2.12", node_type_id="n",
                                policy_id=pc, num_workers=4)
    cid = student.clusters.create(cluster_name="cluster_03", spark_version="15.4.x-scala2.12", node_type_id="n",
                                  policy_id=pc, custom_tags={"quota": "exempt"}).response.cluster_id
    got = w.clusters.get(cid)
    assert got.creator_user_name == "s@uni.edu" and got.num_workers == 0 and got.custom_tags == {"quota": "exempt"}
    student.clusters.update_permissions(cid, access_control_list=[compute.ClusterAccessControlRequest(
        group_name="users", permission_level=compute.ClusterPermissionLevel.CAN_RESTART)])
    assert ws.group_level(cid, "users") == "CAN_RESTART"
    ws.add_user("t@uni.edu")
    other = WorkspaceClient(host=sandbox.url, token=ws.token_for("t@uni.edu"))
    other.clusters.delete(cid)  # permissions add up: `users` lets anyone stop (and start) it


def test_service_principals_are_scim_principals_named_by_application_id(sandbox, w):
    ws = sandbox.workspace
    app = "11111111-2222-4333-8444-555555555555"
    sid = ws.add_service_principal(app, admin=True)
    sp = WorkspaceClient(host=sandbox.url, token=ws.token_for(app))
    assert sp.current_user.me().user_name == app
    assert w.service_principals.get(sid).application_id == app
    admins = next(iter(w.groups.list(filter='displayName eq "admins"', attributes="members")))
    assert any(m.ref == f"ServicePrincipals/{sid}" for m in admins.members)
    cid = sp.clusters.create(cluster_name="c", spark_version="15.4.x-scala2.12", node_type_id="n",
                             num_workers=1).response.cluster_id
    assert w.clusters.get(cid).creator_user_name == app


def test_scim_filters_are_json_strings_with_escapes(sandbox, w):
    ws = sandbox.workspace
    for name in ('Team "Q"', "Team \\ B", "צוות"):
        ws.add_group(name)
        found = list(w.groups.list(filter="displayName eq " + __import__("json").dumps(name, ensure_ascii=False)))
        assert [g.display_name for g in found] == [name]
    with pytest.raises(errors.BadRequest):
        list(w.groups.list(filter='displayName eq "Team \\ B"'))  # a lone backslash is not a JSON string


def test_a_nested_boolean_must_be_true_or_false_as_the_api_spells_it(sandbox, w):
    """databricks-sdk 0.156 lower-cases only top-level booleans: ListClustersFilterBy(is_pinned=True)
    is sent as "True". The emulator refuses it; the gateway's own query says "true"."""
    from databricks.teachinglab.adapters.workspace import WorkspaceGateway
    ws = sandbox.workspace
    ws.pin(ws.add_cluster("a"))
    ws.add_cluster("b")
    with pytest.raises(errors.BadRequest, match="is not a boolean"):
        list(w.clusters.list(filter_by=compute.ListClustersFilterBy(is_pinned=True)))
    assert WorkspaceGateway(w).pinned_count() == 1


def test_resizes_are_reported_as_the_real_api_reports_them_and_billed_by_the_nodes_present(sandbox, w):
    """RESIZING is "a change in the target size (upsize or downsize)" with the old size as
    current_num_workers and the new one as target_num_workers; only growth completes
    (UPSIZE_COMPLETED); a downsize shows DECOMMISSION_STARTED/_ENDED and its nodes leave when the
    decommission ends. The list's num_workers is the target at once, its executors the nodes there."""
    ws = sandbox.workspace
    cid = _create(w)  # 1 worker
    ws.advance(120)
    w.clusters.resize(cid, num_workers=4)
    assert w.clusters.get(cid).num_workers == 4 and len(w.clusters.get(cid).executors or []) == 0  # RESIZING
    ws.advance(30)
    assert len(w.clusters.get(cid).executors) == 4
    ws.advance(3600 - 30)
    w.clusters.resize(cid, num_workers=1)
    ws.advance(30)
    events = [(e.type.value, e.details.current_num_workers, e.details.target_num_workers)
              for e in w.clusters.events(cid, order=compute.GetEventsOrder.ASC)
              if e.type.value in ("RESIZING", "UPSIZE_COMPLETED", "DECOMMISSION_STARTED", "DECOMMISSION_ENDED")]
    assert events == [("RESIZING", 1, 4), ("UPSIZE_COMPLETED", 4, 4), ("RESIZING", 4, 1),
                      ("DECOMMISSION_STARTED", None, None), ("DECOMMISSION_ENDED", None, None)]
    c = ws.clusters.get(cid)
    assert [n for _, n in c.node_log] == [2, 5, 2]   # 2 nodes, 5 once grown, 2 when the decommission ended
    assert len(w.clusters.get(cid).executors) == 1 and w.clusters.get(cid).runtime_engine == compute.RuntimeEngine.STANDARD


def test_warehouses_report_their_state(sandbox, w):
    sandbox.workspace.warehouses.add("wh1", state="STOPPED")
    assert w.warehouses.get("wh1").state.value == "STOPPED"
    with pytest.raises(errors.NotFound):
        w.warehouses.get("nope")


def test_the_fake_acs_enforces_the_send_limits_with_429_and_retry_after():
    from azure.communication.email import EmailClient
    from azure.core.credentials import AzureKeyCredential
    from azure.core.exceptions import HttpResponseError
    from databricks.sandbox.fake_acs import FakeAcs
    with FakeAcs() as acs:
        acs.state.send_limits = (2, 10)
        acs.state.clock = lambda: 100.0
        client = EmailClient(acs.endpoint, AzureKeyCredential(acs.state.access_key), retry_total=0)
        message = {"senderAddress": "a@b.c", "recipients": {"to": [{"address": "x@y.z"}]},
                   "content": {"subject": "s", "plainText": "t"}}
        for _ in range(2):
            client.begin_send(message, polling=False)
        with pytest.raises(HttpResponseError) as refused:
            client.begin_send(message, polling=False)
        assert refused.value.status_code == 429 and int(refused.value.response.headers["Retry-After"]) > 0
        assert acs.state.sends == 2 and acs.state.throttled["send"] == 1


def test_serverless_compute_permissions_start_with_users_and_only_admins_change_them(sandbox, w):
    ws = sandbox.workspace
    oid = ws.serverless_ids()["interactive"]
    got = w.permissions.get("serverless-compute", oid)
    direct = {(e.group_name, p.permission_level.value) for e in got.access_control_list for p in e.all_permissions
              if not p.inherited}
    assert direct == {("users", "CAN_USE")}
    ws.add_user("s@uni.edu")
    ws.add_group("g1", ["s@uni.edu"])
    w.permissions.set("serverless-compute", oid, access_control_list=[
        iam.AccessControlRequest(group_name="g1", permission_level=iam.PermissionLevel.CAN_USE)])
    assert ws.serverless_acl("interactive") == {("group_name", "g1"): "CAN_USE"}
    with pytest.raises(errors.InvalidParameterValue):
        w.permissions.set("serverless-compute", oid, access_control_list=[
            iam.AccessControlRequest(group_name="g1", permission_level=iam.PermissionLevel.CAN_RESTART)])
    student = WorkspaceClient(host=sandbox.url, token=ws.token_for("s@uni.edu"))
    with pytest.raises(errors.PermissionDenied):
        student.permissions.set("serverless-compute", oid, access_control_list=[])


def test_serverless_use_is_refused_without_can_use_and_billed_late_with_corrections(sandbox, w):
    ws = sandbox.workspace
    ws.add_user("s@uni.edu")
    ws.add_group("g1", ["s@uni.edu"])
    start = ws.now().replace(minute=0, second=0, microsecond=0)
    ws.set_serverless_lag(2)
    ids = ws.use_serverless("s@uni.edu", start, start + timedelta(hours=1), 2.0)
    assert len(ids) == 1
    ws.grant_serverless("interactive", group="g1")
    ws.serverless.acls[ws.serverless.ids["interactive"]].pop(("group_name", "users"))
    ws.serverless.acls[ws.serverless.ids["interactive"]].pop(("group_name", "g1"))
    assert ws.use_serverless("s@uni.edu", start, start + timedelta(hours=1), 2.0) is None
    assert ws.refused[-1][1:3] == ("serverless", "s@uni.edu")
    rows = ws.serverless.rows({"since": "2000-01-01"}, start + timedelta(hours=2, minutes=59))
    assert rows == []                                  # its hour ends, then two hours of lag
    ws.restate_serverless(ids[0], 1.5)
    later = start + timedelta(hours=6)
    kinds = [(r[5], float(r[4])) for r in ws.serverless.rows({"since": "2000-01-01"}, later)]
    assert kinds == [("ORIGINAL", 2.0), ("RETRACTION", -2.0), ("RESTATEMENT", 1.5)]
