"""Nothing a student controls decides their quota. A student creates clusters through the
Personal Compute policy with their own token and the real databricks-sdk, names and tags them
as they like and grants them to other groups; the real poll runs against the emulated workspace.
Only a lab cluster's tags decide, and only as first recorded (README, "Trust")."""
import json

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.service import compute
from freezegun import freeze_time

from conftest import ADMIN, course, local
from databricks import main as cli
from databricks.teachinglab.adapters.ledger.models import Cluster, OutboxMessage

DAY = (2026, 3, 2)
STUDENT = "student011@students.example.edu"      # a member of group_01
GROUP_02 = ["student021@students.example.edu", "student022@students.example.edu"]
GROUP_03 = ["student031@students.example.edu", "student032@students.example.edu"]


def at(h, m=0):
    return local(*DAY, h, m)


@pytest.fixture
def env(make_env, monkeypatch):
    e = make_env(at(7), COURSE_NAME="bigdata")
    e.ids = e.seed(course(3, 2))
    for key, value in e.env.items():
        monkeypatch.setenv(key, value)
    return e


def as_student(env, email=STUDENT) -> WorkspaceClient:
    """The student's own workspace client: a personal access token of theirs, the real SDK."""
    return WorkspaceClient(host=env.server.url, token=env.workspace.token_for(email))


def personal_cluster(env, name, tags=None, email=STUDENT) -> str:
    """What a student can do in a new workspace: create a cluster from Personal Compute (open to
    every user), with any name and tags. It starts at once."""
    w = as_student(env, email)
    policy = next(p.policy_id for p in w.cluster_policies.list() if p.name == "Personal Compute")
    return w.clusters.create(cluster_name=name, spark_version="15.4.x-scala2.12", node_type_id="Standard_DS3_v2",
                             policy_id=policy, custom_tags=tags or {}).response.cluster_id


def outbox(kind):
    return [m for m in OutboxMessage.select().order_by(OutboxMessage.id) if m.kind == kind]


def mailed(addresses, kind=None) -> bool:
    return any(a in (m.to_addrs + m.cc_addrs) for m in OutboxMessage.select() for a in addresses
               if kind is None or m.kind == kind)


def test_a_student_cluster_tagged_exempt_is_counted_and_stopped_at_the_quota(env):
    env.at(at(8))
    cid = personal_cluster(env, "my-exempt-box", {"quota": "exempt"})
    env.polls(at(8), at(20))
    assert env.workspace.cluster(cid).state == "TERMINATED"  # 480 minutes at 16:00, not 12 hours
    row = Cluster.get(Cluster.cluster_id == cid)
    assert (row.kind, row.exempt, row.group_name, row.owner) == ("student", False, "group_01", STUDENT)
    assert len(outbox("termination")) == 1 and STUDENT in outbox("termination")[0].to_addrs


def test_a_student_cluster_tagged_with_another_group_is_charged_to_the_creators_group(env):
    ws = env.workspace
    ws.session(env.ids["cluster_02"], at(8), at(9))          # group_02's own hour
    env.at(at(8))
    spoof = personal_cluster(env, "group-02-box", {"group": "group_02", "course": "bigdata"})
    env.polls(at(8), at(17))
    row = Cluster.get(Cluster.cluster_id == spoof)
    assert (row.group_name, row.group_source) == ("group_01", "creator")
    assert ws.cluster(spoof).state == "TERMINATED"
    assert ws.group_level(env.ids["cluster_02"], "group_02") == "CAN_RESTART"  # group_02 never blocked
    assert not mailed(GROUP_02)                                               # nor warned or told
    assert ws.group_level(env.ids["cluster_01"], "group_01") == "CAN_ATTACH_TO"  # its creator's group is


def test_a_student_cluster_named_like_another_groups_cluster_is_the_creators(env):
    env.at(at(8))
    named = personal_cluster(env, "cluster_03")
    env.polls(at(8), at(17))
    assert Cluster.get(Cluster.cluster_id == named).group_name == "group_01"
    assert not mailed(GROUP_03)
    assert env.workspace.group_level(env.ids["cluster_03"], "group_03") == "CAN_RESTART"


def test_a_student_granting_their_cluster_to_another_group_does_not_make_it_that_groups(env):
    env.at(at(8))
    cid = personal_cluster(env, "shared-box")
    w = as_student(env)
    w.clusters.update_permissions(cid, access_control_list=[compute.ClusterAccessControlRequest(
        group_name="group_03", permission_level=compute.ClusterPermissionLevel.CAN_RESTART)])
    env.polls(at(8), at(17))
    assert Cluster.get(Cluster.cluster_id == cid).group_name == "group_01"
    assert not mailed(GROUP_03)


def test_a_student_cannot_create_a_cluster_without_a_policy_or_the_entitlement(env):
    """The emulator refuses what the real workspace refuses: no unrestricted cluster creation."""
    from databricks.sdk import errors
    with pytest.raises(errors.PermissionDenied):
        as_student(env).clusters.create(cluster_name="free", spark_version="15.4.x-scala2.12",
                                        node_type_id="Standard_DS3_v2", num_workers=8)


def test_a_lab_clusters_changed_tag_keeps_the_recorded_group_until_the_admin_accepts_it(env, capsys):
    ws, cid = env.workspace, env.ids["cluster_02"]
    env.poll(at(8))                                           # first sight: group=group_02 recorded
    ws.edit_cluster(cid, custom_tags={"group": "group_03", "course": "bigdata", "quota": "exempt"})
    ws.session(cid, at(9), None)
    env.polls(at(9), at(17, 15))
    row = Cluster.get(Cluster.cluster_id == cid)
    assert (row.group_name, row.exempt, row.tag_drift) == ("group_02", False, True)
    assert ws.cluster(cid).state == "TERMINATED"              # group_02's quota still holds it
    drift = outbox("tag_drift")
    assert len(drift) == 1 and drift[0].to_addrs == ADMIN and "--accept_tags" in drift[0].text_body
    capsys.readouterr()
    with freeze_time(at(17, 20), tick=True):
        assert cli.main(["--cluster_usage", "--json"]) == 0
        line = next(r for r in json.loads(capsys.readouterr().out) if r["cluster_id"] == cid)
        assert line["tag_drift"] is True and line["cluster_kind"] == "lab" and line["group"] == "group_02"
        assert cli.main(["--accept_tags", "--cluster", cid, "--dry-run"]) == 0
        assert Cluster.get(Cluster.cluster_id == cid).group_name == "group_02"
        assert cli.main(["--accept_tags", "--cluster", cid]) == 0
    row = Cluster.get(Cluster.cluster_id == cid)
    assert (row.group_name, row.exempt, row.tag_drift) == ("group_03", True, False)


def test_accept_tags_refuses_a_students_cluster(env, capsys):
    env.at(at(8))
    cid = personal_cluster(env, "box", {"group": "group_02"})
    env.poll(at(8, 15))
    with freeze_time(at(8, 20), tick=True):
        assert cli.main(["--accept_tags", "--cluster", cid]) == 2
    assert "never believed" in capsys.readouterr().err


def test_the_admin_exempts_a_cluster_through_the_ledger_with_who_and_why(env, capsys):
    from databricks.teachinglab.services.reports import daily_report
    env.at(at(8))
    cid = personal_cluster(env, "thesis-box")
    env.poll(at(8, 15))
    with freeze_time(at(8, 20), tick=True):
        assert cli.main(["--set_quota", "exempt", "--cluster", cid]) == 2      # a reason is required
        assert cli.main(["--set_quota", "exempt", "--cluster", cid, "--reason", "thesis run, approved"]) == 0
    env.polls(at(8, 30), at(18))
    assert env.workspace.cluster(cid).state == "RUNNING"
    assert Cluster.get(Cluster.cluster_id == cid).exempt
    env.close_day(local(2026, 3, 3, 0, 7))
    report = daily_report(local(2026, 3, 2, 12).date(), env.settings)
    assert [(e.cluster_name, e.reason) for e in report.exemptions] == [("thesis-box", "thesis run, approved")]
    assert "thesis run, approved" in outbox("daily_report")[0].text_body
    with freeze_time(local(2026, 3, 3, 8), tick=True):
        assert cli.main(["--clear_quota", "--cluster", cid]) == 0
    env.polls(local(2026, 3, 3, 8), local(2026, 3, 3, 8, 15))
    assert not Cluster.get(Cluster.cluster_id == cid).exempt


def test_a_service_principal_in_admins_and_lab_managers_make_lab_clusters(make_env):
    """Terraform often runs as a service principal: its clusters are lab clusters (their tags
    count) when it is an admin; a TA listed in LAB_MANAGERS likewise."""
    env = make_env(at(7), LAB_MANAGERS="ta@uni.example.edu")
    env.seed(course(2, 2))
    ws = env.workspace
    app = "6c1f3a52-0000-4000-8000-00000000abcd"
    ws.add_service_principal(app, admin=True)
    sp = WorkspaceClient(host=env.server.url, token=ws.token_for(app))
    env.at(at(8))
    by_sp = sp.clusters.create(cluster_name="bigdata-g9", spark_version="15.4.x-scala2.12",
                               node_type_id="Standard_DS3_v2", num_workers=1,
                               custom_tags={"group": "group_02"}).response.cluster_id
    by_ta = ws.add_cluster("demo", creator="ta@uni.example.edu", tags={"quota": "exempt"})
    env.poll(at(8, 15))
    sp_row, ta_row = (Cluster.get(Cluster.cluster_id == c) for c in (by_sp, by_ta))
    assert (sp_row.kind, sp_row.group_name, sp_row.creator) == ("lab", "group_02", app)
    assert (ta_row.kind, ta_row.exempt) == ("lab", True)


def test_admins_are_read_at_most_hourly_and_again_for_a_new_creator(env):
    env.poll(at(8))
    reads = lambda: sum(1 for r in env.workspace.requests if r.path.endswith("/preview/permissionassignments"))  # noqa: E731
    first = reads()
    env.polls(at(8, 15), at(8, 45))
    assert reads() == first                          # kept in the ledger
    env.at(at(8, 50))
    personal_cluster(env, "new-box")
    env.poll(at(9))
    assert reads() == first + 1                      # a creator not seen before: read again
    env.poll(at(10, 5))
    assert reads() == first + 2                      # an hour later


def test_a_new_cluster_is_left_unclassified_while_the_admins_cannot_be_read(env):
    from databricks.sandbox import Fault
    env.at(at(8))
    cid = personal_cluster(env, "box", {"quota": "exempt"})
    env.workspace.inject(Fault(method="GET", path="/preview/scim/v2/Groups", status=500, times=None))
    report = env.poll(at(8, 15))
    assert [o.usage.info.name for o in report.failures] == ["box"]
    assert "admins could not be read" in str(report.failures[0].error)
    env.workspace.clear_faults()
    env.poll(at(8, 30))
    assert Cluster.get(Cluster.cluster_id == cid).kind == "student"


def test_the_audit_names_spoofed_tags_and_a_users_grant_on_a_lab_cluster(env, capsys):
    env.at(at(8))
    spoof = personal_cluster(env, "cluster_03", {"group": "group_02", "quota": "exempt"})
    env.lab().workspace.grant(env.ids["cluster_01"], [("group_name", "users", "CAN_RESTART")])
    env.lab().workspace.grant(env.ids["cluster_02"], [("group_name", "group_03", "CAN_MANAGE")])
    capsys.readouterr()
    with freeze_time(at(8, 5), tick=True):
        assert cli.main(["--audit_workspace", "--json"]) == 1
    findings = json.loads(capsys.readouterr().out)
    spoofed = [f for f in findings if f["kind"] == "spoofed_tag"]
    assert [(f["principal"], spoof in f["object"]) for f in spoofed] == [(STUDENT, True)]
    assert all(claim in spoofed[0]["detail"] for claim in ("group=group_02", "quota=exempt", "cluster_03"))
    acl = {(f["principal"], f["object"].split(" (")[0]) for f in findings if f["kind"] == "cluster_acl"}
    assert ("users", 'cluster "cluster_01"') in acl and ("group_03", 'cluster "cluster_02"') in acl
    users = next(f for f in findings if f["kind"] == "cluster_acl" and f["principal"] == "users")
    assert "defeats every block" in users["detail"]
