"""One poll, end to end: the real WorkspaceClient against the emulated workspace, a real SQLite
ledger, and the file mail transport."""

from datetime import timedelta

import pytest

from conftest import ADMIN, course, local
from databricks.sandbox import Fault
from databricks.teachinglab.services import poll as enforcement
from databricks.teachinglab.adapters.ledger.models import Cluster, ClusterDay, OutboxMessage
from databricks.teachinglab.core.quota import Action

DAY = (2026, 3, 2)


def at(h, m=0, s=0):
    return local(*DAY, h, m, s)



def _id(name):
    return Cluster.get(Cluster.name == name).cluster_id


def today_row(env, name="cluster_01"):
    from databricks.teachinglab.core.accounting import local_day
    return ClusterDay.get((ClusterDay.cluster == _id(name)) & (ClusterDay.day == local_day(env.now, env.settings.quota.timezone)))


def outbox(kind=None):
    q = OutboxMessage.select().order_by(OutboxMessage.id)
    return [m for m in q if kind is None or m.kind == kind]


@pytest.fixture
def env(make_env):
    e = make_env(at(7))
    e.ids = e.seed(course(3, 2))
    return e


def test_short_session_between_polls_is_counted_to_the_second(env):
    env.workspace.session(env.ids["cluster_01"], at(8, 2, 10), at(8, 9, 40))
    env.poll(at(8))
    env.poll(at(8, 15))
    assert today_row(env).used_ms == (7 * 60 + 30) * 1000


def test_tail_after_last_poll_is_counted(env):
    env.workspace.session(env.ids["cluster_01"], at(9), at(10, 5))
    env.polls(at(8), at(10))
    assert today_row(env).used_ms == 60 * 60_000  # as of 10:00, still running
    env.poll(at(10, 15))
    assert today_row(env).used_ms == 65 * 60_000


def test_missed_polls_lose_nothing_and_duplicate_polls_count_nothing_twice(env):
    cid = env.ids["cluster_01"]
    env.workspace.session(cid, at(8), at(9, 30))
    env.workspace.session(cid, at(11), at(11, 20))
    env.poll(at(7, 45))
    env.poll(at(15))  # hours missed
    env.poll(at(15))  # the same moment twice
    env.poll(at(15))
    assert today_row(env).used_ms == (90 + 20) * 60_000
    assert today_row(env).sessions == 2


def test_restart_inside_a_session_does_not_split_it(env):
    cid = env.ids["cluster_01"]
    env.workspace.session(cid, at(8), at(9))
    env.workspace.user_action(at(8, 30), "restart", cid)
    env.polls(at(8), at(9, 15))
    assert today_row(env).used_ms == 60 * 60_000 and today_row(env).sessions == 1


def test_warning_once_to_members_with_admin_in_copy(env):
    env.workspace.session(env.ids["cluster_01"], at(8), None)
    env.polls(at(8), at(15, 30))  # 400 min at 14:40, polled at 14:45 ... 15:30
    warnings = outbox("warning")
    assert len(warnings) == 1
    w = warnings[0]
    assert w.to_addrs == "student011@students.example.edu, student012@students.example.edu"
    assert w.cc_addrs == ADMIN and w.event == "quota-warning" and w.status == "sent"
    assert "405 of its 480 minutes" in w.text_body and "00:00" in w.text_body
    eml = next((env.tmp / "mail").glob(f"{w.dedupe_key.replace(':', '_')}-*.eml")).read_text()
    assert "X-Teachinglab-Event: quota-warning" in eml


def test_termination_blocks_group_and_keeps_every_other_acl_entry(env):
    ws = env.workspace
    ws.add_user("ta@uni.edu")
    ws.add_group("graders")
    cid = env.ids["cluster_01"]
    ws.set_level(cid, "CAN_MANAGE", user="ta@uni.edu")
    ws.set_level(cid, "CAN_ATTACH_TO", group="graders")
    before = ws.direct_acl(cid)
    env.run_to_hard_quota(cid)
    assert ws.cluster(cid).state == "TERMINATED"
    after = ws.direct_acl(cid)
    assert after.pop(("group_name", "group_01")) == "CAN_ATTACH_TO"
    before.pop(("group_name", "group_01"))
    assert after == before  # regression: the old tool PUT a one-entry ACL over everything
    assert today_row(env).blocked_at and today_row(env).previous_level == "CAN_RESTART"
    kinds = [m.kind for m in outbox()]
    assert kinds == ["warning", "termination"]
    term = outbox("termination")[0]
    assert term.cc_addrs == ADMIN and "has been stopped" in term.text_body


def test_no_warning_after_termination_when_a_poll_jumps_past_both_quotas(env):
    env.workspace.session(env.ids["cluster_01"], at(7, 10), None)
    env.poll(at(7))
    env.poll(at(16))  # 470 min missed: first look is already over MAX
    env.poll(at(16, 15))
    assert [m.kind for m in outbox()] == ["termination"]


def test_blocked_cluster_started_again_is_terminated_again_and_admin_told_once(env):
    ws = env.workspace
    cid = env.ids["cluster_01"]
    env.run_to_hard_quota(cid)
    ws.user_action(at(16, 20), "start", cid, as_group="group_01")  # refused: CAN_ATTACH_TO only
    ws.user_action(at(16, 40), "start", cid)  # an admin starts it
    ws.user_action(at(17, 40), "start", cid)  # and again
    env.polls(at(16, 30), at(18))
    assert ws.refused and ws.refused[0][2] == cid
    assert ws.cluster(cid).state == "TERMINATED"
    reterm = outbox("retermination")
    assert len(reterm) == 1 and reterm[0].to_addrs == ADMIN and reterm[0].event == "quota-retermination"
    assert today_row(env).reterminations == 2
    assert len(outbox("termination")) == 1 and len(outbox("warning")) == 1


def test_exempt_and_unmapped_clusters_are_counted_but_never_stopped(env):
    ws = env.workspace
    exempt = ws.add_cluster("teacher-demo", tags={"quota": "exempt", "group": "group_01"})
    loose = ws.add_cluster("scratch")
    for cid in (exempt, loose):
        ws.session(cid, at(7, 30), None)
    env.polls(at(7, 30), at(17))
    for cid in (exempt, loose):
        assert ws.cluster(cid).state == "RUNNING"
    assert today_row(env, "teacher-demo").used_ms == 570 * 60_000
    assert today_row(env, "scratch").used_ms == 570 * 60_000
    assert Cluster.get(Cluster.cluster_id == loose).group_name is None
    assert outbox() == []


def test_group_found_by_acl_then_by_name_convention(env):
    ws = env.workspace
    by_acl = ws.add_cluster("physics-lab", acl=[{"group_name": "group_02", "permission_level": "CAN_RESTART"}])
    by_name = ws.add_cluster("cluster_03-copy")
    named = ws.add_cluster("cluster_09")
    env.poll(at(8))
    assert Cluster.get(Cluster.cluster_id == by_acl).group_name == "group_02"
    assert Cluster.get(Cluster.cluster_id == by_acl).group_source == "acl"
    assert Cluster.get(Cluster.cluster_id == named).group_name == "group_09"
    assert Cluster.get(Cluster.cluster_id == by_name).group_name is None
    # blocked through the ACL mapping, the group is still found afterwards
    ws.session(by_acl, at(8, 5), None)
    env.polls(at(8, 15), at(16, 30))
    assert ws.group_level(by_acl, "group_02") == "CAN_ATTACH_TO"
    env.poll(at(16, 45))
    assert Cluster.get(Cluster.cluster_id == by_acl).group_name == "group_02"


def test_dry_run_decides_but_changes_nothing(env):
    ws = env.workspace
    cid = env.ids["cluster_01"]
    ws.session(cid, at(7, 30), None)
    env.at(at(16))
    requests_before = len(ws.requests)
    report = env.poll(at(16), dry_run=True)
    decided = {o.usage.info.name: o.decision.actions for o in report.outcomes}
    assert decided["cluster_01"] == (Action.TERMINATE, Action.BLOCK, Action.NOTIFY)
    assert ws.cluster(cid).state == "RUNNING"
    assert ws.can_restart(cid, "group_01")
    assert not [r for r in ws.requests[requests_before:] if r.method != "GET" and "events" not in r.path]
    assert Cluster.select().count() == 0 and outbox() == []


def test_api_429_and_5xx_are_retried(env):
    ws = env.workspace
    ws.session(env.ids["cluster_01"], at(8), None)
    ws.inject(Fault(method="GET", path="/clusters/list", status=429, error_code="REQUEST_LIMIT_EXCEEDED",
                    retry_after=1, times=1))
    ws.inject(Fault(method="POST", path="/clusters/events", status=500, times=2))
    ws.inject(Fault(method="GET", path="/clusters/list", status=503, error_code="TEMPORARILY_UNAVAILABLE",
                    times=1))
    report = env.poll(at(9))
    assert not report.failures
    assert today_row(env).used_ms == 60 * 60_000 and not today_row(env).estimated


def test_terminate_failing_in_one_cluster_does_not_stop_the_others(env):
    ws = env.workspace
    for name in ("cluster_01", "cluster_02"):
        ws.session(env.ids[name], at(7), None)
    env.polls(at(7), at(14, 45))
    ws.inject(Fault(method="GET", path=f"/permissions/clusters/{env.ids['cluster_01']}", status=500, times=None))
    report = env.poll(at(15, 5))
    assert [o.usage.info.name for o in report.failures] == ["cluster_01"]
    assert ws.can_restart(env.ids["cluster_01"], "group_01")
    assert not ws.can_restart(env.ids["cluster_02"], "group_02")
    alerts = outbox("failure")
    assert len(alerts) == 1 and alerts[0].to_addrs == ADMIN
    body = alerts[0].text_body  # an API error is expected: its cause in one line, no traceback
    assert "cluster_01: the workspace answered with an error" in body and "Traceback" not in body
    handled = next(line for line in body.splitlines() if line.startswith("Handled this run"))
    assert "cluster_02" in handled and "cluster_01" not in handled
    env.poll(at(15, 20))  # the same failure again: no second alert today
    assert len(outbox("failure")) == 1
    ws.clear_faults()
    env.poll(at(15, 35))
    assert not ws.can_restart(env.ids["cluster_01"], "group_01")
    assert len(outbox("termination")) == 2


def test_events_api_down_falls_back_to_an_estimate_from_state(env):
    ws = env.workspace
    cid = env.ids["cluster_01"]
    ws.session(cid, at(8), None)
    env.poll(at(7, 45))
    ws.inject(Fault(method="POST", path="/clusters/events", status=500, times=None))
    env.poll(at(9))
    row = today_row(env)
    assert row.estimated and row.used_ms == 60 * 60_000  # from start_time / last_restarted_time
    ws.clear_faults()
    env.poll(at(9, 15))
    assert today_row(env).used_ms == 75 * 60_000  # no double count once events are back


@pytest.mark.parametrize("kill_at", ["intent", "execute", "record", "deliver"])
def test_a_kill_at_any_step_is_finished_by_the_next_poll_without_duplicates(env, monkeypatch, kill_at):
    """A kill in any phase of the actions (before the first workspace call, during it, before its
    result is recorded) or in the delivery: the next polls finish the job, one message each."""
    ws = env.workspace
    cid = env.ids["cluster_01"]
    ws.session(cid, at(7, 30), None)
    env.polls(at(7, 30), at(15))

    class Killed(BaseException):
        pass

    def boom(*a, **k):
        raise Killed()

    each = enforcement._each

    def killed_in_phase(o, phase, sweep):
        if phase == kill_at:
            raise Killed()
        each(o, phase, sweep)

    with monkeypatch.context() as m:
        if kill_at == "deliver":
            m.setattr(env.lab(), "deliver", boom)
        else:
            m.setattr(enforcement, "_each", killed_in_phase)
        with pytest.raises(Killed):
            env.poll(at(15, 30))
    env.poll(at(15, 45))
    env.poll(at(16))
    assert ws.cluster(cid).state == "TERMINATED"
    assert not ws.can_restart(cid, "group_01")
    assert [m.kind for m in outbox()] == ["warning", "termination"]
    assert all(m.status == "sent" for m in outbox())
    assert len(env.mails()) == 2


def test_events_are_asked_only_for_clusters_that_may_have_run(env):
    ws = env.workspace
    ws.session(env.ids["cluster_01"], at(8), None)
    ws.session(env.ids["cluster_02"], at(8), at(8, 20))
    env.poll(at(7, 45))  # first look: every cluster once
    env.poll(at(8, 30))  # cluster_02 stopped since the last look: asked once more
    assert events_asked(env, lambda: env.poll(at(8, 45))) == []  # cluster_01 runs, undisturbed
    # ... but its events are read at least once an hour (its last read was at 8:30)
    assert events_asked(env, lambda: env.poll(at(9, 31))) == [env.ids["cluster_01"]]
    assert today_row(env).used_ms == 91 * 60_000  # 08:00 to 09:31


def events_asked(env, run) -> list[str]:
    before = len(env.workspace.requests)
    run()
    return [r.body["cluster_id"] for r in env.workspace.requests[before:] if r.path.endswith("/clusters/events")]


def minute_polls(env, start, end):
    """A poll every minute, as the default crontab runs it."""
    return env.polls(start, end, step=1)


def test_one_minute_runs_read_no_events_when_nothing_is_due(env):
    """The default cadence: after the first look, a run makes one call (the cluster list) while
    nothing starts, stops or comes near a quota; usage still grows minute by minute."""
    ws = env.workspace
    ws.session(env.ids["cluster_01"], at(8), None)
    env.poll(at(8, 1))
    before = len(ws.requests)
    minute_polls(env, at(8, 2), at(8, 31))
    calls = ws.requests[before:]
    assert [r.path for r in calls if r.path.endswith("/clusters/events")] == []
    assert len([r for r in calls if r.path.endswith("/clusters/list")]) == 30 and len(calls) == 30
    assert today_row(env).used_ms == 31 * 60_000


def test_a_group_is_stopped_within_a_minute_of_its_quota(env):
    """Started at 08:00:30, it reaches 480 minutes at 16:00:30; the 16:01 run stops it: 30 s
    over, where the 15-minute cadence allowed up to 15 minutes."""
    ws = env.workspace
    cid = env.ids["cluster_01"]
    ws.session(cid, at(8, 0, 30), None)
    env.poll(at(8, 1))
    minute_polls(env, at(15, 55), at(16, 3))
    row = today_row(env)
    stopped = [o for r in [row] for o in [r.terminated_at]][0]
    assert stopped == at(16, 1) and ws.cluster(cid).state in ("TERMINATING", "TERMINATED")
    assert 480 * 60_000 <= row.used_ms <= 481 * 60_000  # the 30 s past the quota, and no more
    assert not ws.can_restart(cid, "group_01")


def test_events_are_read_for_a_group_about_to_cross_a_quota(env):
    """A quiet cluster's events are read when its group may pass a quota before the next run,
    so the warning is decided on exact usage (the soft quota, 400 minutes, falls at 14:40)."""
    cid = env.ids["cluster_01"]
    env.workspace.session(cid, at(8), None)
    env.poll(at(8, 1))
    minute_polls(env, at(14, 30), at(14, 37))
    assert events_asked(env, lambda: env.poll(at(14, 38))) == [cid]  # 398 minutes: it may cross by 14:40
    assert not outbox("warning")
    env.poll(at(14, 39))
    env.poll(at(14, 40))
    assert [m.kind for m in outbox()] == ["warning"] and today_row(env).warned_at == at(14, 40)


def test_a_stop_and_start_between_two_runs_is_read_from_the_events(env):
    """Stopped at 10:00:10 and started again at 10:00:50 (the API shows RUNNING at both runs):
    the start moves the cluster's start time, so its events are read and the gap is not charged."""
    ws = env.workspace
    cid = env.ids["cluster_01"]
    ws.session(cid, at(8), at(10, 0, 10))
    ws.session(cid, at(10, 0, 50), None)
    env.poll(at(8, 1))
    minute_polls(env, at(9, 58), at(10, 0))
    assert events_asked(env, lambda: env.poll(at(10, 1))) == [cid]
    env.poll(at(10, 2))
    assert today_row(env).used_ms == (120 * 60 + 10 + 70) * 1000


def test_a_failed_block_after_termination_is_finished_by_the_next_poll(env):
    # regression: the old tool saved its "done" flag before the call that failed, and stopped
    # enforcing for the rest of the day
    ws = env.workspace
    cid = env.ids["cluster_01"]
    ws.session(cid, at(7, 30), None)
    env.polls(at(7, 30), at(15, 15))
    ws.inject(Fault(method="PUT", path=f"/permissions/clusters/{cid}", status=500, times=4))
    report = env.poll(at(15, 30))
    assert [o.usage.info.name for o in report.failures] == ["cluster_01"]
    assert ws.can_restart(cid, "group_01") and today_row(env).blocked_at is None
    ws.user_action(at(15, 35), "start", cid, as_group="group_01")  # the group restarts it
    env.poll(at(15, 45))
    ws.advance(60)
    assert ws.cluster(cid).state == "TERMINATED"
    assert not ws.can_restart(cid, "group_01") and today_row(env).blocked_at is not None
    assert len(outbox("termination")) == 1


@pytest.mark.sqlite_only
def test_ledger_is_sqlite_in_wal_mode_with_foreign_keys(env):
    env.lab()
    from databricks.teachinglab.adapters.ledger.models import db_proxy as db
    assert db.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1
    from databricks.teachinglab.adapters.ledger.models import MIGRATIONS, SchemaVersion
    assert [v.version for v in SchemaVersion.select().order_by(SchemaVersion.version)] == [v for v, _ in MIGRATIONS]


@pytest.mark.sqlite_only
def test_database_url_is_an_alternative_ledger(make_env, tmp_path):
    e = make_env(at(7), DATABASE_URL=f"sqlite:///{tmp_path / 'other.db'}")
    ids = e.seed(course(1, 1))
    e.workspace.session(ids["cluster_01"], at(8), at(8, 30))
    e.poll(at(8, 45))
    assert (tmp_path / "other.db").exists() and today_row(e).used_ms == 30 * 60_000


def test_workspace_down_alerts_the_admin_once_and_changes_nothing(env):
    from databricks.teachinglab.core.errors import WorkspaceUnavailable
    env.workspace.inject(Fault(method="GET", path="/clusters/list", status=500, times=None))
    for minute in (0, 15):
        with pytest.raises(WorkspaceUnavailable):
            env.poll(at(9, minute))
    alerts = outbox("failure")
    assert len(alerts) == 1 and alerts[0].status == "sent" and "cluster list" in alerts[0].text_body
    assert Cluster.select().count() == 0


def test_a_lost_closing_event_is_settled_from_the_terminated_state(env):
    ws = env.workspace
    cid = env.ids["cluster_01"]
    ws.session(cid, at(8), None)
    env.poll(at(8, 30))
    ws.stop_without_event(cid, at(9))
    env.poll(at(10))
    row = today_row(env)
    assert row.used_ms == 60 * 60_000 and row.estimated
    env.poll(at(12))
    assert today_row(env).used_ms == 60 * 60_000


def test_a_cluster_deleted_while_running_is_closed_when_last_seen(env):
    ws = env.workspace
    cid = env.ids["cluster_01"]
    ws.session(cid, at(8), None)
    env.poll(at(9))
    ws.delete_cluster_outside(cid)  # permanently deleted by somebody, between polls
    env.poll(at(9, 15))
    env.poll(at(11))
    row = today_row(env)
    assert row.used_ms == 60 * 60_000 and Cluster.get(Cluster.cluster_id == cid).open_since is None
    env.close_day(local(2026, 3, 3, 0, 7))
    from databricks.teachinglab.adapters.ledger.models import UsageHistory
    assert UsageHistory.get(UsageHistory.cluster == cid).used_ms == 60 * 60_000


def test_a_failed_member_lookup_delays_the_warning_instead_of_sending_it_to_the_admin_alone(env):
    ws = env.workspace
    ws.session(env.ids["cluster_01"], at(7), None)
    env.polls(at(7), at(13, 30))
    fault = ws.inject(Fault(method="GET", path="/preview/scim/v2/Groups", status=500, times=None))
    report = env.poll(at(13, 45))  # 405 min: a warning is due, but the members cannot be read
    assert [name for name, _ in report.problems] == ["(the members of group group_01)"] and report.failed
    assert outbox("warning") == []
    ws.remove_fault(fault)
    env.poll(at(14))
    w = outbox("warning")
    assert len(w) == 1 and "student011@students.example.edu" in w[0].to_addrs


def test_cluster_created_and_stopped_before_its_first_poll_costs_nothing(env):
    """Day one of a real workspace: provisioning creates a cluster at 14:00 and stops it at once.
    Its first poll must book 0, not 841 minutes from midnight (and must not block or mail)."""
    env.workspace.set_startup_seconds(240)  # a real cluster needs minutes to reach RUNNING
    gw = env.lab().workspace
    env.at(at(14))
    cid = gw.create_cluster({"cluster_name": "bigdata-g1", "spark_version": "15.4.x-scala2.12",
                             "node_type_id": "Standard_DS3_v2", "autotermination_minutes": 30,
                             "custom_tags": {"group": "group_01"}, "autoscale": (1, 2)})
    env.at(at(14, 0, 40))
    gw.terminate(cid)
    env.poll(at(14, 15))
    row = ClusterDay.get((ClusterDay.cluster == cid))
    assert row.used_ms == 0 and row.blocked_at is None
    assert outbox() == []


def test_job_clusters_are_not_listed_or_polled(env):
    jid = env.workspace.add_cluster("job-123-run-1", spec={"cluster_source": "JOB"})
    env.workspace.session(jid, at(8), at(9))
    report = env.poll(at(9, 15))
    assert jid not in {o.usage.info.cluster_id for o in report.outcomes}
    listed = [r for r in env.workspace.requests if r.path.endswith("/clusters/list")]
    assert listed and all(r.status == 200 for r in listed)


def test_a_block_undone_from_outside_is_lowered_again_and_the_admin_told_once(env):
    """A `terraform apply` (or a person in the UI) gives a blocked group CAN_RESTART back: the
    next poll reads the ACL of every cluster blocked today, lowers it again, and tells the admin
    once per cluster per day. (Before, the ledger's `blocked` flag was trusted and the group
    could restart all day.)"""
    ws = env.workspace
    cid = env.ids["cluster_01"]
    env.run_to_hard_quota(cid)
    assert not ws.can_restart(cid, "group_01")
    outside = env.lab().workspace  # the same public API a Terraform apply uses
    outside.grant(cid, [("group_name", "group_01", "CAN_RESTART")])
    env.poll(at(16, 30))
    assert not ws.can_restart(cid, "group_01")
    notices = outbox("block_undone")
    assert len(notices) == 1 and notices[0].to_addrs == ADMIN and notices[0].event == "quota-block-undone"
    assert "CAN_RESTART" in notices[0].text_body and "terraform apply" in notices[0].text_body
    outside.grant(cid, [("group_name", "group_01", "CAN_MANAGE")])
    env.poll(at(16, 45))
    assert not ws.can_restart(cid, "group_01") and len(outbox("block_undone")) == 1
    assert today_row(env).previous_level == "CAN_RESTART"  # the nightly close restores what it had


def test_clusters_not_blocked_get_no_acl_reads(env):
    env.workspace.session(env.ids["cluster_01"], at(8), at(9))
    env.polls(at(8), at(10))
    reads = [r for r in env.workspace.requests if r.method == "GET" and "/permissions/clusters/" in r.path]
    assert reads == []  # tagged clusters that are not blocked: no ACL read at all


def test_a_stopped_blocked_cluster_has_its_acl_read_on_the_quarter_hour_only(env):
    """One-minute runs: a blocked cluster that stays stopped costs an ACL read every 15 minutes,
    not every minute; one that is running again is read at once (and blocked again)."""
    cid = env.ids["cluster_01"]
    env.run_to_hard_quota(cid)  # blocked at 16:00

    def acl_reads(run) -> int:
        before = len(env.workspace.requests)
        run()
        return len([r for r in env.workspace.requests[before:]
                    if r.method == "GET" and r.path.endswith(f"/permissions/clusters/{cid}")])

    assert acl_reads(lambda: minute_polls(env, at(16, 16), at(16, 29))) == 0
    assert acl_reads(lambda: env.poll(at(16, 30))) == 1
    env.workspace.set_level(cid, "CAN_RESTART", group="group_01")  # a Terraform apply undoes the block
    env.workspace.user_action(at(16, 30, 30), "start", cid, as_group="group_01")
    # running again: read now, not at 16:45 (the check, then the read-before-write that lowers it again)
    assert acl_reads(lambda: env.poll(at(16, 32))) == 2
    assert not env.workspace.can_restart(cid, "group_01")
    assert [m.kind for m in outbox("block_undone")] == ["block_undone"]


def test_a_ledger_from_the_previous_release_is_migrated_in_place(tmp_path, monkeypatch, database_urls):
    from datetime import datetime, timezone
    from databricks.teachinglab.adapters.ledger import models as ledger
    now = datetime(2026, 3, 2, tzinfo=timezone.utc)
    url = database_urls()  # None: SQLite; else a PostgreSQL database
    path = None if url else tmp_path / "old.db"
    monkeypatch.setattr(ledger, "MIGRATIONS", ledger.MIGRATIONS[:2])
    old = ledger.open_ledger(db_path=path, database_url=url, now=now)
    # v1 creates tables from today's models: take back what v3 adds, as a real v2 ledger lacks it
    old.execute_sql("DROP TABLE IF EXISTS job_run")
    old.execute_sql("ALTER TABLE cluster_day DROP COLUMN reblock_notified_at")
    old.execute_sql("ALTER TABLE cluster_day DROP COLUMN limit_at")  # v4
    old.close()
    monkeypatch.undo()
    db = ledger.open_ledger(db_path=path, database_url=url, now=now)
    assert {"reblock_notified_at", "limit_at", "quota_cap"} <= {c.name for c in db.get_columns("cluster_day")}
    assert {"job_run", "usage_session"} <= set(db.get_tables())
    assert [r.version for r in ledger.SchemaVersion.select().order_by(ledger.SchemaVersion.version)] == \
        [v for v, _ in ledger.MIGRATIONS]
    db.close()


STUDENT = "student011@students.example.edu"  # a member of group_01 in course(3, 2)


def test_a_students_own_cluster_counts_to_the_group_and_is_stopped_with_it(env):
    """Blocked on the group cluster, a student starts a personal cluster (Personal Compute):
    it is attributed to the student's group through creator_user_name, the group's quota covers
    the sum, every running cluster of the group is stopped at the hard quota, and the personal
    cluster is stopped again whenever it is seen running that day."""
    ws = env.workspace
    group_cluster = env.ids["cluster_01"]
    personal = ws.add_cluster("dana-personal", creator=STUDENT, spec={"policy_id": "personal-vm"})
    ws.session(group_cluster, at(8), at(12))         # 240 min
    ws.session(personal, at(12), None)               # 240 more by 16:00
    env.polls(at(8), at(16, 15))
    assert ws.cluster(personal).state == "TERMINATED"
    assert ws.cluster(group_cluster).state == "TERMINATED"
    assert not ws.can_restart(group_cluster, "group_01")  # rights lowered where the group holds them
    row = Cluster.get(Cluster.cluster_id == personal)
    assert (row.group_name, row.group_source, row.owner) == ("group_01", "creator", STUDENT)
    assert len(outbox("termination")) == 1 and len(outbox("warning")) == 1  # one per group, not per cluster
    from databricks.teachinglab.services.grants import cluster_usage
    lines = {u.cluster_name: u.as_json() for u in cluster_usage(env.settings, env.now)}
    assert lines["dana-personal"]["group"] == "group_01" and lines["dana-personal"]["owner"] == STUDENT
    assert lines["cluster_01"]["owner"] is None
    assert lines["dana-personal"]["group_used_seconds"] == lines["cluster_01"]["group_used_seconds"] == 480 * 60
    ws.user_action(at(16, 40), "start", personal, user=STUDENT)
    env.polls(at(16, 45), at(17, 15))
    assert ws.cluster(personal).state == "TERMINATED"
    assert today_row(env, "dana-personal").reterminations >= 1


def test_a_lab_managers_cluster_with_no_group_stays_unmapped_and_runs(make_env):
    env = make_env(at(7), LAB_MANAGERS="ta@uni.example.edu")
    env.seed(course(3, 2))
    ws = env.workspace
    mine = ws.add_cluster("ta-scratch", creator="ta@uni.example.edu")
    ws.session(mine, at(8), None)
    env.polls(at(8), at(17))
    assert ws.cluster(mine).state == "RUNNING"
    row = Cluster.get(Cluster.cluster_id == mine)
    assert (row.group_name, row.kind) == (None, "lab")


def test_a_cluster_whose_creator_is_in_no_course_group_is_held_to_the_quota_alone(env):
    """Not a lab principal and in no course group (a TA nobody listed in LAB_MANAGERS, a student
    the roster moved): the cluster is not unlimited. It is held to the default quota by itself,
    and its creator is warned and told of the stop, with the admin in copy."""
    ws = env.workspace
    mine = ws.add_cluster("ta-scratch", creator="ta@uni.example.edu")
    ws.session(mine, at(8), None)
    env.polls(at(8), at(16, 15))
    assert ws.cluster(mine).state == "TERMINATED"
    row = Cluster.get(Cluster.cluster_id == mine)
    assert (row.group_name, row.kind, row.owner) == (None, "student", "ta@uni.example.edu")
    stop = outbox("termination")
    assert len(stop) == 1 and stop[0].to_addrs == "ta@uni.example.edu" and stop[0].cc_addrs == ADMIN
    assert [m.to_addrs for m in outbox("warning")] == ["ta@uni.example.edu"]


def test_creator_membership_is_looked_up_once_per_cluster(env):
    ws = env.workspace
    personal = ws.add_cluster("dana-personal", creator=STUDENT)
    ws.session(personal, at(8), at(9))
    env.polls(at(8), at(10))
    lookups = [r for r in ws.requests if r.method == "GET" and r.path.endswith("/scim/v2/Users")]
    assert len(lookups) == 1


def test_the_warning_says_when_the_cluster_will_stop_at_the_current_rate(env):
    """Warned at the 14:45 poll with 405 of 480 minutes used, one cluster running: it stops at
    16:00. The forecast is local time, and --cluster_usage carries it as limit_at."""
    from databricks.teachinglab.services.grants import cluster_usage
    cid = env.ids["cluster_01"]
    env.workspace.session(cid, at(8), None)
    env.polls(at(8), at(14, 45))
    warning = outbox("warning")[0]
    assert "At this rate the cluster stops at 16:00 IST." in warning.text_body
    assert "stops at 16:00 IST" in warning.html_body
    lines = {u.cluster_name: u for u in cluster_usage(env.settings, env.now)}
    assert lines["cluster_01"].limit_at == "2026-03-02T16:00:00+02:00"
    assert lines["cluster_02"].limit_at is None  # not running: nothing is coming


def test_the_forecast_counts_every_running_cluster_of_the_group(env):
    """Two clusters of group_01 running: the group's minutes grow twice as fast, so the 60
    minutes left at 14:30 last until 15:00, for both clusters."""
    from databricks.teachinglab.services.grants import cluster_usage
    ws = env.workspace
    extra = ws.add_cluster("group_01-extra", tags={"group": "group_01"})
    ws.session(env.ids["cluster_01"], at(10), None)
    ws.session(extra, at(12), None)
    env.polls(at(10), at(14, 30))  # 270 + 150 = 420 of 480 minutes
    lines = {u.cluster_name: u for u in cluster_usage(env.settings, env.now)}
    assert lines["cluster_01"].group_used_seconds == 420 * 60
    assert lines["cluster_01"].limit_at == lines["group_01-extra"].limit_at == "2026-03-02T15:00:00+02:00"
    ws.user_action(at(14, 35), "terminate", extra)
    env.poll(at(14, 45))  # one left running: 285 + 155 = 440 used, 40 minutes at one a minute
    lines = {u.cluster_name: u for u in cluster_usage(env.settings, env.now)}
    assert lines["cluster_01"].group_used_seconds == 440 * 60
    assert lines["cluster_01"].limit_at == "2026-03-02T15:25:00+02:00"


def test_a_forecast_past_midnight_is_not_shown(env):
    """The quota resets at midnight: a group that cannot reach its limit today gets no time."""
    from databricks.teachinglab.services.grants import cluster_usage
    env.workspace.session(env.ids["cluster_01"], at(20), None)
    env.poll(at(21))
    lines = {u.cluster_name: u for u in cluster_usage(env.settings, env.now)}
    assert lines["cluster_01"].used_seconds == 60 * 60 and lines["cluster_01"].limit_at is None


def test_a_quota_that_falls_inside_the_run_is_enforced_to_the_second(env):
    """Started at 08:00:10, the group reaches 480 minutes at 16:00:10. The 16:00 run (deadline
    25 s) sees it coming, waits 10 s and stops it then: no second over the quota. A crossing
    later than the deadline allows is left to the next run."""
    from databricks.teachinglab.adapters.deadline import Deadline
    ws = env.workspace
    cid = env.ids["cluster_01"]
    ws.session(cid, at(8, 0, 10), None)
    env.poll(at(8, 1))
    minute_polls(env, at(15, 55), at(15, 59))
    assert today_row(env).terminated_at is None
    ctx = env.lab()
    env.at(at(16))
    ctx.deadline = Deadline(25, monotonic=lambda: ws.now().timestamp())  # the run's time is the sandbox's

    def wait(seconds):
        return env.at(ws.now() + timedelta(seconds=seconds))

    report = enforcement.run_poll_to_the_second(ctx, env.now, wait=wait, interval_seconds=60)
    assert report.count_done("terminate") == 1 and report.earlier is not None
    row = today_row(env)
    assert row.terminated_at == at(16, 0, 10) and row.used_ms == 480 * 60_000
    assert ws.cluster(cid).state in ("TERMINATING", "TERMINATED")


def test_a_quota_beyond_the_deadline_is_left_to_the_next_run(env):
    from databricks.teachinglab.adapters.deadline import Deadline
    ws = env.workspace
    ws.session(env.ids["cluster_01"], at(8, 0, 40), None)  # crosses at 16:00:40, past 16:00 + 25 - 5
    env.poll(at(8, 1))
    ctx = env.lab()
    env.at(at(16))
    ctx.deadline = Deadline(25, monotonic=lambda: ws.now().timestamp())
    waited = []
    report = enforcement.run_poll_to_the_second(ctx, env.now, wait=lambda s: waited.append(s), interval_seconds=60)
    assert waited == [] and report.earlier is None and today_row(env).terminated_at is None


def test_node_time_follows_a_resize_into_the_usage_line(env):
    """1 worker from 08:00, upsized to 3 (UPSIZE_COMPLETED at 09:00:30): by 10:00, 60.5 min at 2
    nodes and 59.5 min at 4, so 359 node-minutes; DBUs and cost from the packaged price table
    (Standard_DS3_v2: 0.75 DBU/h, $0.293/h; $0.55 per DBU)."""
    from databricks.teachinglab.services.grants import cluster_usage
    ws = env.workspace
    cid = env.ids["cluster_01"]
    ws.session(cid, at(8), None)
    ws.user_action(at(9), "resize", cid, num_workers=3)
    env.poll(at(8, 1))
    env.poll(at(10))
    line = next(u for u in cluster_usage(env.settings, env.now) if u.cluster_id == cid)
    assert line.used_seconds == 120 * 60 and line.node_seconds == 359 * 60
    hours = 359 / 60
    assert line.dbu == round(0.75 * hours, 4)
    assert line.cost_usd == round(0.75 * hours * 0.55 + 0.293 * hours, 4)
    env.close_day(local(2026, 3, 3, 0, 7))  # still running: the 2nd is archived up to midnight
    from databricks.teachinglab.adapters.ledger.models import UsageHistory
    archived = UsageHistory.get(UsageHistory.cluster == cid)
    assert archived.used_ms == 16 * 3_600_000
    assert archived.node_ms == 121 * 60_000 + (16 * 60 - 60.5) * 60_000 * 4
    from datetime import date
    tomorrow = ClusterDay.get((ClusterDay.cluster == cid) & (ClusterDay.day == date(2026, 3, 3)))
    assert tomorrow.used_node_ms == 4 * 7 * 60_000  # 00:00 to 00:07 at 4 nodes: nothing counted twice


def test_a_resize_of_a_quiet_cluster_is_read_at_the_next_run(env):
    """The list's desired worker count moves with a resize: the next one-minute run reads the
    events, so node-time follows at once instead of at the hourly read."""
    from databricks.teachinglab.services.grants import cluster_usage
    ws = env.workspace
    cid = env.ids["cluster_01"]
    ws.session(cid, at(8), None)
    env.poll(at(8, 1))
    ws.user_action(at(8, 10), "resize", cid, num_workers=3)  # UPSIZE_COMPLETED at 08:10:30
    assert events_asked(env, lambda: env.poll(at(8, 9))) == []
    assert events_asked(env, lambda: env.poll(at(8, 11))) == [cid]
    line = next(u for u in cluster_usage(env.settings, env.now) if u.cluster_id == cid)
    assert line.node_seconds == (10.5 * 2 + 0.5 * 4) * 60


def test_an_unmapped_clusters_acl_is_read_when_first_seen_then_on_the_quarter_hour(env):
    """One-minute runs: a cluster no tag maps (an admin's scratch cluster) costs an ACL read at
    first sight and every 15 minutes, not every minute."""
    ws = env.workspace
    scratch = ws.add_cluster("admin-scratch")

    def acl_reads(run) -> int:
        before = len(ws.requests)
        run()
        return len([r for r in ws.requests[before:] if r.path.endswith(f"/permissions/clusters/{scratch}")])

    assert acl_reads(lambda: env.poll(at(8, 1))) == 1
    assert acl_reads(lambda: minute_polls(env, at(8, 2), at(8, 14))) == 0
    assert acl_reads(lambda: env.poll(at(8, 15))) == 1


def test_start_up_time_is_in_the_cost_and_not_in_the_usage(env):
    """A start that takes 4 minutes (08:00 to 08:04, 1 worker): the quota counts from 08:04; the
    cost adds the VMs' 4 minutes at 2 nodes, without DBUs."""
    from databricks.teachinglab.services.grants import cluster_usage
    env.workspace.set_startup_seconds(240)
    cid = env.ids["cluster_01"]
    env.workspace.session(cid, at(8), None)
    env.poll(at(8, 1))
    env.poll(at(9, 4))
    line = next(u for u in cluster_usage(env.settings, env.now) if u.cluster_id == cid)
    assert line.used_seconds == 60 * 60 and line.node_seconds == 2 * 60 * 60
    assert line.dbu == round(0.75 * 2, 4)
    assert line.cost_usd == round(0.75 * 2 * 0.55 + 0.293 * 2 + 0.293 * 2 * 4 / 60, 4)


def test_an_autoscaling_day_of_1_4_1_3_workers_is_counted_to_the_second(env):
    """The emulator reports resizes as the real API does (a shrinking RESIZING carries the old size
    as current and the new one as target; no completion event for a downsize): the day's
    node-time follows the cluster down as well as up, to the second. Before, it stayed at 4
    workers from 11:00 until the next upsize completed."""
    ws = env.workspace
    cid = ws.add_cluster("autoscaling", tags={"group": "group_01"},
                         spec={"autoscale": {"min_workers": 1, "max_workers": 4}})
    ws.session(cid, at(9), at(13))
    for hour, workers in ((10, 4), (11, 1), (12, 3)):
        ws.user_action(at(hour), "resize", cid, num_workers=workers)
    env.polls(at(9), at(13, 15), step=5)
    row = ClusterDay.get(ClusterDay.cluster == cid)
    assert row.used_ms == 4 * 3600 * 1000
    assert row.used_node_ms == (3630 * 2 + 3570 * 5 + 3630 * 2 + 3570 * 4) * 1000
