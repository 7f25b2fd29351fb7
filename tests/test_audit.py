"""--audit_workspace: every way a student can run compute outside the quota, as far as the APIs
show it, each with the setting that closes it. Run through the CLI against the emulated workspace."""
import json

import pytest
from databricks.sdk.service import iam

from conftest import course, local
from databricks import main as cli

STUDENT = "student011@students.example.edu"  # group_01


@pytest.fixture
def env(make_env, monkeypatch):
    e = make_env(local(2026, 3, 2, 7), COURSE_NAME="bigdata")
    e.ids = e.seed(course(2, 2))
    for key, value in e.env.items():
        monkeypatch.setenv(key, value)
    return e


def entitle(gw, kind, principal_id, op):
    """allow-cluster-create on a group or user, through SCIM PATCH as an admin would."""
    api = gw.client.groups if kind == "groups" else gw.client.users
    api.patch(principal_id, operations=[iam.Patch(op=op, path="entitlements",
                                                  value=[{"value": "allow-cluster-create"}])],
              schemas=[iam.PatchSchema.URN_IETF_PARAMS_SCIM_API_MESSAGES_2_0_PATCH_OP])


def audit(capsys, *extra):
    capsys.readouterr()
    code = cli.main(["--audit_workspace", "--json", *extra])
    return code, json.loads(capsys.readouterr().out)


def test_a_new_workspace_leaves_personal_compute_open_and_serverless_unknown(env, capsys):
    code, findings = audit(capsys)
    assert code == 1
    assert {(f["kind"], f["principal"]) for f in findings} == {("policy", "users"), ("serverless", "users")}
    policy = next(f for f in findings if f["kind"] == "policy")
    assert "Personal Compute" in policy["object"] and "Delegate" in policy["fix"]
    assert all(set(f) >= {"kind", "principal", "object", "fix"} for f in findings)
    serverless = next(f for f in findings if f["kind"] == "serverless")
    assert "Account console" in serverless["fix"] and "not visible" in serverless["detail"]


def test_every_kind_is_found_and_a_closed_workspace_exits_0(env, capsys, monkeypatch):
    ws = env.workspace
    gw = env.lab().workspace
    # cluster creation for a course group and a student; CAN_RESTART on another group's cluster
    entitle(gw, "groups", ws.group_id("group_02"), iam.PatchOp.ADD)
    entitle(gw, "users", ws.user_id(STUDENT), iam.PatchOp.ADD)
    gw.grant(env.ids["cluster_02"], [("group_name", "group_01", "CAN_RESTART")])
    personal = ws.add_cluster("dana-own", creator=STUDENT)
    job = ws.add_cluster("job-7-run-1", creator=STUDENT, spec={"cluster_source": "JOB"})
    code, findings = audit(capsys)
    kinds = {(f["kind"], f["principal"], f["object"].split(" (")[0]) for f in findings}
    assert ("entitlement", "group_02", "allow-cluster-create") in kinds
    assert ("entitlement", STUDENT, "allow-cluster-create") in kinds
    assert ("cluster_acl", "group_01", 'cluster "cluster_02"') in kinds
    assert ("student_cluster", STUDENT, 'cluster "dana-own"') in kinds
    assert ("student_cluster", STUDENT, 'cluster "job-7-run-1"') in kinds  # job clusters too
    types = {(f["principal"], f["principal_type"]) for f in findings}
    assert ("group_02", "group_name") in types and (STUDENT, "user_name") in types
    assert not any(f["kind"] == "cluster_acl" and "cluster_01" in f["object"] for f in findings)  # its own
    assert code == 1

    # close everything the findings name, with the public APIs, and say serverless is off
    for pid in [p.policy_id for p in gw.policies()]:
        gw.client.cluster_policies.set_permissions(pid, access_control_list=[])
    entitle(gw, "groups", ws.group_id("group_02"), iam.PatchOp.REMOVE)
    entitle(gw, "users", ws.user_id(STUDENT), iam.PatchOp.REMOVE)
    gw.set_group_level(env.ids["cluster_02"], "group_01", "CAN_ATTACH_TO")
    gw.permanent_delete(personal)
    gw.permanent_delete(job)
    monkeypatch.setenv("SERVERLESS_NOTEBOOKS", "off")
    code, findings = audit(capsys)
    assert (code, findings) == (0, [])


def test_the_table_says_what_to_do(env, capsys):
    capsys.readouterr()
    assert cli.main(["--audit_workspace"]) == 1
    out = capsys.readouterr().out
    assert "kind" in out and "fix" in out and "Personal Compute" in out and "way(s) to run compute" in out


def test_bad_serverless_setting_is_a_configuration_error(env, capsys, monkeypatch):
    monkeypatch.setenv("SERVERLESS_NOTEBOOKS", "maybe")
    with pytest.raises(SystemExit) as stop:
        cli.main(["--audit_workspace"])
    assert stop.value.code == 2 and "SERVERLESS_NOTEBOOKS" in capsys.readouterr().err


def test_audit_changes_nothing_in_the_workspace(env, capsys):
    audit(capsys)
    writes = [r for r in env.workspace.requests if r.method not in ("GET",)]
    assert writes == []


def test_a_policy_whose_permissions_cannot_be_read_is_named_and_the_audit_goes_on(env, capsys):
    from databricks.sandbox import Fault
    env.workspace.inject(Fault(method="GET", path="/permissions/cluster-policies/", status=403,
                               error_code="PERMISSION_DENIED", times=None))
    capsys.readouterr()
    code = cli.main(["--audit_workspace", "--json"])
    captured = capsys.readouterr()
    assert code == 1 and [f["kind"] for f in json.loads(captured.out)] == ["serverless"]
    assert "'Personal Compute'" in captured.err and "not audited" in captured.err
