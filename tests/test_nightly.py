"""The nightly close: archive, restore, reset, report; catch-up and idempotence."""
from datetime import date

import pytest

from conftest import course, local
from databricks.sandbox import Fault
from databricks.teachinglab.adapters.ledger.models import ClosedDay, ClusterDay, OutboxMessage, UsageHistory


def history(name="cluster_01"):
    return {h.day: h for h in UsageHistory.select().where(UsageHistory.cluster_name == name)}



@pytest.fixture
def env(make_env):
    e = make_env(local(2026, 3, 2, 7))
    e.ids = e.seed(course(2, 2))
    return e


def test_session_across_midnight_is_split_to_the_second_and_never_double_counted(env):
    cid = env.ids["cluster_01"]
    env.workspace.session(cid, local(2026, 3, 2, 22, 59, 30), local(2026, 3, 3, 1, 30, 15))
    env.polls(local(2026, 3, 2, 22, 45), local(2026, 3, 3, 0, 0))
    env.close_day(local(2026, 3, 3, 0, 7))
    yesterday = history()[date(2026, 3, 2)]
    assert yesterday.used_ms == (60 * 60 + 30) * 1000
    env.polls(local(2026, 3, 3, 0, 15), local(2026, 3, 3, 2, 0))
    today = ClusterDay.get((ClusterDay.cluster == cid) & (ClusterDay.day == date(2026, 3, 3)))
    assert today.used_ms == (90 * 60 + 15) * 1000  # from midnight, not from 22:59:30
    env.close_day(local(2026, 3, 4, 0, 7))
    days = history()
    assert days[date(2026, 3, 2)].used_ms + days[date(2026, 3, 3)].used_ms == (2 * 3600 + 30 * 60 + 45) * 1000
    assert days[date(2026, 3, 3)].used_ms == (90 * 60 + 15) * 1000
    assert days[date(2026, 3, 2)].sessions == 1 and days[date(2026, 3, 3)].sessions == 1


def test_close_restores_blocked_groups_resets_flags_and_reports_once(env):
    cid = env.ids["cluster_01"]
    env.run_to_hard_quota(cid)
    assert not env.workspace.can_restart(cid, "group_01")
    report = env.close_day(local(2026, 3, 3, 0, 7))
    assert report.closed == [date(2026, 3, 2)] and report.restored == ["cluster_01"]
    assert env.workspace.can_restart(cid, "group_01")
    h = history()[date(2026, 3, 2)]
    assert h.used_ms == 480 * 60_000 and h.warned and h.terminated and h.blocked_group == "group_01"
    assert ClusterDay.select().where(ClusterDay.day == date(2026, 3, 2)).count() == 0
    again = env.close_day(local(2026, 3, 3, 0, 20))
    assert again.closed == [] and again.restored == []
    reports = [m for m in OutboxMessage.select() if m.kind == "daily_report"]
    assert len(reports) == 1 and reports[0].to_addrs == "reports@example.edu"
    assert "cluster_01" in reports[0].text_body and "480" in reports[0].text_body
    # a new day starts with fresh flags: the group may work and be warned again
    env.workspace.session(cid, local(2026, 3, 3, 8), None)
    env.polls(local(2026, 3, 3, 8), local(2026, 3, 3, 15))
    assert len([m for m in OutboxMessage.select() if m.kind == "warning"]) == 2


def test_catch_up_after_missed_nights(env):
    cid = env.ids["cluster_02"]
    for d in (2, 3, 4):
        env.workspace.session(cid, local(2026, 3, d, 9), local(2026, 3, d, 10, 0, 1))
    env.polls(local(2026, 3, 2, 8), local(2026, 3, 2, 11))  # then the VM was off for two days
    report = env.close_day(local(2026, 3, 5, 0, 7))
    assert report.closed == [date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 4)]
    days = history("cluster_02")
    assert [days[date(2026, 3, d)].used_ms for d in (2, 3, 4)] == [3_601_000] * 3
    assert [c.day for c in ClosedDay.select().order_by(ClosedDay.day)] == report.closed
    assert len([m for m in OutboxMessage.select() if m.kind == "daily_report"]) == 3


def test_todays_partial_usage_stays_today_when_close_runs_late(env):
    cid = env.ids["cluster_01"]
    env.workspace.session(cid, local(2026, 3, 2, 23), None)
    env.poll(local(2026, 3, 2, 22, 45))
    env.close_day(local(2026, 3, 3, 3, 0))  # cron ran late; cluster still running
    assert history()[date(2026, 3, 2)].used_ms == 60 * 60_000
    env.poll(local(2026, 3, 3, 3, 15))
    today = ClusterDay.get((ClusterDay.cluster == cid) & (ClusterDay.day == date(2026, 3, 3)))
    assert today.used_ms == 195 * 60_000


def test_restore_failure_keeps_the_day_open_and_the_next_run_finishes(env):
    cid = env.ids["cluster_01"]
    env.run_to_hard_quota(cid)
    fault = env.workspace.inject(Fault(method="PUT", path=f"/permissions/clusters/{cid}", status=500, times=None))
    report = env.close_day(local(2026, 3, 3, 0, 7))
    assert report.failures and not env.workspace.can_restart(cid, "group_01")
    assert ClosedDay.get(ClosedDay.day == date(2026, 3, 2)).completed_at is None
    env.workspace.remove_fault(fault)
    report = env.close_day(local(2026, 3, 3, 0, 22))
    assert report.closed == [date(2026, 3, 2)] and env.workspace.can_restart(cid, "group_01")
    assert len([m for m in OutboxMessage.select() if m.kind == "daily_report"]) == 1
    assert history()[date(2026, 3, 2)].used_ms == 480 * 60_000


def test_a_cluster_still_blocked_today_is_not_restored_by_a_catch_up(env, caplog):
    """The close of a missed day must not give back rights the group has lost again today: the
    group is over its quota on the 2nd and on the 3rd, and the 2nd is closed only on the 3rd."""
    cid = env.ids["cluster_01"]
    env.run_to_hard_quota(cid)                                        # blocked on the 2nd
    env.poll(local(2026, 3, 3, 0, 0))                                 # the 3rd's first poll lifts it
    env.run_to_hard_quota(cid, (2026, 3, 3))                          # blocked again on the 3rd
    before = [r for r in env.workspace.requests if r.method == "PUT"]
    env.close_day(local(2026, 3, 3, 16, 30))                          # the 2nd's close, a day late
    assert ClosedDay.get(ClosedDay.day == date(2026, 3, 2)).completed_at is not None
    assert not env.workspace.can_restart(cid, "group_01")             # still blocked for the 3rd
    assert [r for r in env.workspace.requests if r.method == "PUT"] == before  # no restore was written
    assert ClusterDay.get((ClusterDay.cluster == cid) & (ClusterDay.day == date(2026, 3, 3))).blocked_at


@pytest.mark.parametrize("day,hours", [(27, 23), (25, 25)])
def test_a_cluster_running_through_a_dst_day_is_charged_that_days_length(make_env, day, hours):
    month = 3 if day == 27 else 10
    env = make_env(local(2026, month, day - 1, 20))
    ids = env.seed(course(1, 1, tags={"quota": "exempt"}))  # exempt, so it may run all day
    cid = ids["cluster_01"]
    env.workspace.session(cid, local(2026, month, day - 1, 22), local(2026, month, day + 1, 1))
    env.polls(local(2026, month, day - 1, 21), local(2026, month, day - 1, 23, 45), step=60)
    env.close_day(local(2026, month, day, 0, 7))
    env.polls(local(2026, month, day, 1), local(2026, month, day, 23), step=120)
    env.close_day(local(2026, month, day + 1, 0, 7))
    got = history()[date(2026, month, day)].used_ms
    assert got == hours * 3600 * 1000


def test_the_daily_report_carries_the_workspace_audit(env):
    env.polls(local(2026, 3, 2, 8), local(2026, 3, 2, 9))
    env.close_day(local(2026, 3, 3, 0, 7))
    report = OutboxMessage.get(OutboxMessage.kind == "daily_report")
    assert "Ways to run compute outside the quota" in report.text_body
    assert "[policy] users on cluster policy \"Personal Compute\"" in report.text_body
    assert "Delegate" in report.text_body and "Personal Compute" in report.html_body


def test_an_audit_that_fails_is_reported_and_the_day_still_closes(env):
    env.polls(local(2026, 3, 2, 8), local(2026, 3, 2, 9))
    env.workspace.inject(Fault(method="GET", path="/policies/clusters/list", status=403,
                               error_code="PERMISSION_DENIED", times=None))
    env.close_day(local(2026, 3, 3, 0, 7))
    assert ClosedDay.get(ClosedDay.day == date(2026, 3, 2)).completed_at is not None
    report = OutboxMessage.get(OutboxMessage.kind == "daily_report")
    assert "The workspace audit could not run" in report.text_body and "PermissionDenied" in report.text_body


def test_a_block_never_outlives_local_midnight_when_the_close_has_not_run(env):
    """Cron in another zone (or a missed night): the first poll of the new local day gives the
    group its rights back; the close that comes later still archives the day and sends its report."""
    cid = env.ids["cluster_01"]
    env.run_to_hard_quota(cid)
    assert not env.workspace.can_restart(cid, "group_01")
    env.poll(local(2026, 3, 3, 0, 0))  # no close yet
    assert env.workspace.can_restart(cid, "group_01")
    env.close_day(local(2026, 3, 3, 23, 7))  # the close, a day late
    assert history()[date(2026, 3, 2)].blocked_group == "group_01"
    assert env.workspace.can_restart(cid, "group_01")
    assert OutboxMessage.select().where(OutboxMessage.kind == "daily_report").count() == 1


def test_a_group_blocked_outside_the_ledger_is_restored_by_the_close(env, caplog):
    """A poll run with another ledger (a mistyped CLUSTER_UPTIMES_DB) blocked group_02; this
    ledger never knew. The close trusts the workspace: it gives the rights back and says so."""
    cid = env.ids["cluster_02"]
    env.poll(local(2026, 3, 2, 9))
    env.lab().workspace.set_group_level(cid, "group_02", "CAN_ATTACH_TO")
    caplog.set_level("WARNING")
    report = env.close_day(local(2026, 3, 3, 0, 7))
    assert env.workspace.can_restart(cid, "group_02") and "cluster_02" in report.restored
    assert "found blocked outside the ledger" in caplog.text
