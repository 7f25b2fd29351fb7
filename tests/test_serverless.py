"""Serverless inside the quota (issue 22): access follows the course, use is read from the bill
hours late and booked per group and local day, a spent allowance switches the group's serverless
access off until its period refills, and every view says how fresh the figure is."""
from __future__ import annotations

import json
from datetime import date, timedelta

import pytest

from databricks.teachinglab.adapters.ledger import repository as ledger
from databricks.teachinglab.services.serverless import check_serverless, provision_access, standings

from conftest import course, local

MON = (2026, 3, 2)
WH = "wh-billing"
POLICY = """
[daily]
warn_minutes = 400
max_minutes = 480

[semester]
start = 2026-02-23
end = 2026-06-30
max_minutes = 20000

[serverless]
daily_max_dbu = 5
weekly_max_dbu = 6
"""


def day(offset: int, hh: int = 0, mm: int = 0):
    d = date(*MON) + timedelta(days=offset)
    return local(d.year, d.month, d.day, hh, mm)


def serverless_env(make_env, tmp_path, policy: str = POLICY, **extra):
    path = tmp_path / "policy.toml"
    path.write_text(policy)
    env = make_env(day(0, 7), QUOTA_POLICY_FILE=str(path), DATABRICKS_WAREHOUSE_ID=WH, WAREHOUSE_WAIT_SECONDS="1",
                   SERVERLESS_INTERACTIVE_COMPUTE_ID="5012345678901234",
                   SERVERLESS_AUTOMATED_COMPUTE_ID="5098765432109876", **extra)
    env.ids = env.seed(course(2, 2))
    env.workspace.warehouses.add(WH)
    env.poll(day(0, 7))  # the ledger learns the course's clusters, so its groups
    return env


def check(env, when):
    return check_serverless(env.lab(), env.at(when))


def booked(group: str) -> float:
    return round(sum(d.dbu for d in ledger.serverless_days() if d.group_name == group), 6)


def notices(group: str) -> list:
    from databricks.teachinglab.adapters.ledger.models import OutboxMessage
    return [m for m in OutboxMessage.select() if m.kind == "serverless_blocked" and group in m.subject]


def test_provisioning_takes_serverless_from_users_and_gives_it_to_each_course_group(make_env, tmp_path):
    env = serverless_env(make_env, tmp_path)
    ws = env.workspace
    assert ws.serverless_acl("interactive") == {("group_name", "users"): "CAN_USE"}
    lines = provision_access(env.lab(), ["group_01", "group_02"], blocked=set(), dry_run=True)
    assert any("would grant CAN_USE" in line and "group_01" in line for line in lines)
    assert ws.serverless_acl("interactive") == {("group_name", "users"): "CAN_USE"}  # the dry run changed nothing
    provision_access(env.lab(), ["group_01", "group_02"], blocked=set(), dry_run=False)
    for kind in ("interactive", "automated"):
        assert ws.serverless_acl(kind) == {("group_name", "group_01"): "CAN_USE",
                                           ("group_name", "group_02"): "CAN_USE"}
    assert provision_access(env.lab(), ["group_01", "group_02"], blocked=set(), dry_run=False) == []  # idempotent
    # A student of the course may use it through the group; someone outside it may not.
    ws.add_user("outsider@example.edu")
    assert ws.use_serverless("student011@students.example.edu", day(0, 9), day(0, 10), 1.0)
    assert ws.use_serverless("outsider@example.edu", day(0, 9), day(0, 10), 1.0) is None


def test_a_week_records_arrive_late_the_weekly_cap_switches_access_off_once_and_monday_gives_it_back(
        make_env, tmp_path):
    env = serverless_env(make_env, tmp_path)
    ws = env.workspace
    provision_access(env.lab(), ["group_01", "group_02"], blocked=set(), dry_run=False)
    s1, s2 = "student011@students.example.edu", "student012@students.example.edu"
    ws.set_serverless_lag(3)
    # Monday 09:00-11:00, 1.5 DBU an hour: 3 DBU in two hourly records, each billed 3 h after its hour.
    first = ws.use_serverless(s1, day(0, 9), day(0, 11), 1.5, notebook_id="nb-1")
    assert first and len(first) == 2
    report = check(env, day(0, 12, 30))
    assert report.read == 0 and booked("group_01") == 0          # nothing billed yet at 12:30
    report = check(env, day(0, 14, 30))
    assert report.new == 2 and booked("group_01") == pytest.approx(3.0)
    assert not report.blocked
    check(env, day(0, 15, 30))                                    # a re-read books nothing twice
    assert booked("group_01") == pytest.approx(3.0)

    # Tuesday 10:00-12:00 the other student, 1.5 DBU an hour: the week reaches 6, the weekly cap.
    assert ws.use_serverless(s2, day(1, 10), day(1, 12), 1.5)
    report = check(env, day(1, 16))
    assert report.blocked == ["group_01"]
    [s] = [s for s in report.standings if s.group == "group_01"]
    assert (s.spent, s.returns_on) == ("weekly", date(2026, 3, 9))
    assert ("group_name", "group_01") not in ws.serverless_acl("interactive")
    assert ("group_name", "group_01") not in ws.serverless_acl("automated")
    assert ("group_name", "group_02") in ws.serverless_acl("interactive")     # the other group keeps it
    assert ws.use_serverless(s1, day(1, 17), day(1, 18), 1.5) is None          # refused now
    [notice] = notices("group_01")
    assert s1 in notice.to_addrs and "6.00 DBU" in notice.text_body and "Monday 09 Mar 2026" in notice.text_body
    assert "billing data up to" in notice.text_body

    # Billing corrects a Monday record (1.5 -> 1.8): a retraction and a restatement, both applied.
    ws.restate_serverless(first[0], 1.8)
    # Someone gives the group its access back in the UI: the next check takes it away again.
    ws.grant_serverless("interactive", group="group_01")
    report = check(env, day(2, 9))
    assert report.reapplied == ["group_01"] and not report.blocked
    assert ("group_name", "group_01") not in ws.serverless_acl("interactive")
    assert booked("group_01") == pytest.approx(6.3)
    assert len(notices("group_01")) == 1                                     # told once

    # The nightly closes of the week keep it off; Monday's gives it back.
    for offset in range(3, 7):
        env.close_day(day(offset, 0, 7))
        assert ("group_name", "group_01") not in ws.serverless_acl("interactive")
    env.close_day(day(7, 0, 7))
    assert ws.serverless_acl("interactive")[("group_name", "group_01")] == "CAN_USE"
    assert ws.serverless_acl("automated")[("group_name", "group_01")] == "CAN_USE"
    assert ledger.serverless_blocks() == {}
    assert ws.use_serverless(s1, day(7, 9), day(7, 10), 1.0)
    assert len(notices("group_01")) == 1
    # The ledger matches the emulated bill to 0.01 DBU (everything billed by Monday is read).
    env.close_day(day(8, 0, 7))
    assert booked("group_01") == pytest.approx(ws.serverless_billed({s1, s2}), abs=0.01)


def test_use_by_someone_in_no_course_group_is_kept_and_reported(make_env, tmp_path):
    env = serverless_env(make_env, tmp_path)
    ws = env.workspace
    ws.set_serverless_lag(1)
    ws.add_user("ta@example.edu")
    ws.use_serverless("ta@example.edu", day(0, 9), day(0, 10), 2.0)   # users still holds CAN_USE here
    check(env, day(0, 12))
    assert ledger.serverless_unassigned() == [("ta@example.edu", "INTERACTIVE", 2.0)]
    assert booked("group_01") == 0


def test_a_daily_cap_lifts_at_the_next_day(make_env, tmp_path):
    env = serverless_env(make_env, tmp_path, POLICY.replace("weekly_max_dbu = 6", "weekly_max_dbu = 60")
                         .replace("daily_max_dbu = 5", "daily_max_dbu = 2"))
    ws = env.workspace
    provision_access(env.lab(), ["group_01", "group_02"], blocked=set(), dry_run=False)
    ws.set_serverless_lag(1)
    ws.use_serverless("student021@students.example.edu", day(0, 8), day(0, 10), 1.5)
    report = check(env, day(0, 13))
    assert report.blocked == ["group_02"]
    [s] = [s for s in report.standings if s.group == "group_02"]
    assert (s.spent, s.returns_on) == ("daily", date(2026, 3, 3))
    env.close_day(day(1, 0, 7))
    assert ws.serverless_acl("interactive")[("group_name", "group_02")] == "CAN_USE"


def test_without_the_ids_a_spent_allowance_is_reported_not_silently_ignored(make_env, tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text(POLICY)
    env = make_env(day(0, 7), QUOTA_POLICY_FILE=str(path), DATABRICKS_WAREHOUSE_ID=WH, WAREHOUSE_WAIT_SECONDS="1")
    env.ids = env.seed(course(1, 2))
    env.workspace.warehouses.add(WH)
    env.poll(day(0, 7))
    env.workspace.set_serverless_lag(1)
    env.workspace.use_serverless("student011@students.example.edu", day(0, 8), day(0, 15), 1.0)
    report = check(env, day(0, 18))
    assert not report.blocked
    assert any("SERVERLESS_INTERACTIVE_COMPUTE_ID" in p for p in report.problems)


def test_serverless_counts_toward_a_dbu_quota_when_the_policy_says_so(make_env, tmp_path):
    policy = """
[daily]
warn_dbu = 3
max_dbu = 4

[serverless]
daily_max_dbu = 50
counts_toward_quota = true
"""
    env = serverless_env(make_env, tmp_path, policy, QUOTA_UNIT="dbu")
    ws = env.workspace
    ws.set_serverless_lag(1)
    ws.use_serverless("student011@students.example.edu", day(0, 8), day(0, 10), 1.75)  # 3.5 DBU
    check(env, day(0, 12))
    cid = env.ids["cluster_01"]
    ws.session(cid, day(0, 12), None)
    env.polls(day(0, 12), day(0, 13, 15))
    # 3.5 serverless DBU leave 0.5 of the 4 DBU cap: the cluster alone would run past 13:15, with it it stops.
    assert ws.cluster(cid).state in ("TERMINATED", "TERMINATING")


def test_standings_say_what_is_spent_and_when_it_returns():
    from databricks.teachinglab.core.serverless import ServerlessCaps, standing
    caps = ServerlessCaps(daily_max=2, weekly_max=5, semester_max=20)
    today = date(2026, 3, 4)  # a Wednesday
    used = {date(2026, 3, 2): 2.0, date(2026, 3, 3): 2.0, today: 1.0, date(2026, 2, 27): 14.0}
    s = standing("g", caps, used, today, semester_start=date(2026, 2, 23), semester_end=date(2026, 6, 30))
    assert (s.today, s.week, s.semester) == (1.0, 5.0, 19.0)
    assert (s.spent, s.returns_on) == ("weekly", date(2026, 3, 9))
    used[today] = 2.0
    s = standing("g", caps, used, today, semester_start=date(2026, 2, 23), semester_end=date(2026, 6, 30))
    assert (s.spent, s.returns_on) == ("semester", date(2026, 7, 1))  # the longest spent period decides
    s = standing("g", ServerlessCaps(daily_max=2), {today: 1.999999}, today, semester_start=None, semester_end=None)
    assert s.spent is None


def test_standings_list_groups_with_use(make_env, tmp_path):
    env = serverless_env(make_env, tmp_path)
    env.workspace.set_serverless_lag(1)
    env.workspace.use_serverless("student021@students.example.edu", day(0, 8), day(0, 9), 1.0)
    check(env, day(0, 11))
    found = {s.group: s.today for s in standings(env.settings, date(*MON))}
    assert found["group_02"] == pytest.approx(1.0)


def test_the_report_the_page_and_the_json_view_show_serverless_use_and_how_fresh_it_is(make_env, tmp_path, capsys,
                                                                                       monkeypatch):
    from databricks.teachinglab.adapters.ledger.models import OutboxMessage
    from databricks.teachinglab.services.status import group_status
    env = serverless_env(make_env, tmp_path)
    ws = env.workspace
    provision_access(env.lab(), ["group_01", "group_02"], blocked=set(), dry_run=False)
    ws.set_serverless_lag(2)
    ws.use_serverless("student011@students.example.edu", day(0, 9), day(0, 13), 1.5)  # 6 DBU: the week's cap
    check(env, day(0, 18))
    page = group_status(env.settings, "group_01", day(0, 18, 5))
    assert page.serverless is not None and "switched off" in page.serverless.off and "Monday 09 Mar" in page.serverless.off
    assert "billing data up to" in page.serverless.freshness
    assert [p.name for p in page.serverless.periods] == ["today", "this week"]
    assert page.serverless.periods[1].used == "6.00 DBU" and page.serverless.periods[1].left == "0.00 DBU"
    env.close_day(day(1, 0, 7))
    report = next(m for m in OutboxMessage.select() if m.kind == "daily_report" and "2026-03-02" in m.subject)
    assert "Serverless compute per group" in report.text_body and "serverless off: weekly cap" in report.text_body
    assert "billing data up to" in report.text_body and "group_01" in report.html_body
    from databricks.teachinglab.cli import admin as cli
    capsys.readouterr()
    for key, value in env.env.items():
        monkeypatch.setenv(key, value)
    assert cli.main(["--serverless_usage", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    [row] = [r for r in rows if r["group"] == "group_01"]
    assert row["date"] == "2026-03-02" and row["dbu"] == pytest.approx(6.0) and row["usd"] == pytest.approx(5.7)
    assert set(row) >= {"group", "date", "dbu", "usd", "known_at"}


def test_the_audit_names_users_holding_serverless_and_is_clean_after_provisioning(make_env, tmp_path):
    from databricks.teachinglab.adapters.ledger import repository
    from databricks.teachinglab.services.audit import audit_workspace
    env = serverless_env(make_env, tmp_path)
    found = [f for f in audit_workspace(env.lab(), env.now, known_home=repository.home_clusters())
             if f.kind == "serverless"]
    assert {(f.principal, f.object.split(" (")[0]) for f in found} == {
        ("users", "serverless compute 'Default Interactive Compute'"),
        ("users", "serverless compute 'Default Automated Compute'")}
    assert all("remove CAN_USE for group users" in f.fix for f in found)
    provision_access(env.lab(), ["group_01", "group_02"], blocked=set(), dry_run=False)
    env.workspace.grant_serverless("interactive", user="student011@students.example.edu")
    found = [f for f in audit_workspace(env.lab(), env.now, known_home=repository.home_clusters())
             if f.kind == "serverless"]
    assert [(f.principal, f.principal_type) for f in found] == [("student011@students.example.edu", "user_name")]
    assert "outlasts a block" in found[0].detail


def test_simulate_replays_serverless_use_under_the_candidate_caps(make_env, tmp_path):
    from databricks.teachinglab.adapters.policy_file import load_policy
    from databricks.teachinglab.services.simulate import simulate
    env = serverless_env(make_env, tmp_path)
    ws = env.workspace
    ws.set_serverless_lag(1)
    for offset in range(3):  # 3 DBU a day, Monday to Wednesday: 9 DBU in the week
        ws.use_serverless("student011@students.example.edu", day(offset, 9), day(offset, 11), 1.5)
    check(env, day(3, 9))
    looser = tmp_path / "looser.toml"
    looser.write_text(POLICY.replace("weekly_max_dbu = 6", "weekly_max_dbu = 20"))
    result = simulate(env.settings, load_policy(looser, env.settings.quota.unit, defaults=None),
                      today=date(2026, 3, 5), date_from=date(*MON), date_to=date(2026, 3, 4))
    row = next(r for r in result.as_json() if r["group"] == "group_01")
    assert row["serverless"]["used_dbu"] == pytest.approx(9.0)
    assert row["serverless"]["denied_dbu"] == 0 and row["serverless"]["off_days"] == []
    now = row["serverless"]["current"]                    # the weekly 6 in force: Tuesday spends it
    assert now["denied_dbu"] == pytest.approx(3.0) and now["off_days"] == ["2026-03-03", "2026-03-04"]


def test_the_nightly_dry_run_says_what_the_serverless_check_would_do_and_changes_nothing(make_env, tmp_path):
    from databricks.teachinglab.services.nightly import plan_end_of_day
    env = serverless_env(make_env, tmp_path)
    ws = env.workspace
    provision_access(env.lab(), ["group_01", "group_02"], blocked=set(), dry_run=False)
    ws.set_serverless_lag(1)
    ws.use_serverless("student011@students.example.edu", day(0, 8), day(0, 12), 1.5)
    env.at(day(1, 0, 7))
    # Book the bill without enforcing, as a check killed after booking would leave it.
    from databricks.teachinglab.services.serverless import ServerlessReport, course_members, read_bill
    read_bill(env.lab(), env.now, course_members(env.lab())[0], ServerlessReport())
    writes = len([r for r in ws.requests if r.method != "GET"])
    lines = plan_end_of_day(env.lab(), env.now)
    assert "  would switch serverless off for group_01: weekly cap 6.00/6 DBU" in lines
    assert len([r for r in ws.requests if r.method != "GET"]) == writes
    assert ("group_name", "group_01") in ws.serverless_acl("interactive")


def test_the_poll_reads_the_bill_every_serverless_check_minutes_and_not_every_run_when_it_fails(make_env, tmp_path):
    from databricks.teachinglab.services.serverless import due, serverless_job
    env = serverless_env(make_env, tmp_path, SERVERLESS_CHECK_MINUTES="60")
    assert due(env.settings, env.at(day(0, 8)))
    env.workspace.warehouses.warehouses[WH].refuse = "[INSUFFICIENT_PERMISSIONS] no access to system.billing"
    report = serverless_job(env.lab(), env.now, "poll_clusters")
    assert report.error and "INSUFFICIENT_PERMISSIONS" in report.error
    assert not due(env.settings, env.at(day(0, 8, 30)))     # a failing warehouse is tried again in an hour
    assert due(env.settings, env.at(day(0, 9, 1)))
