"""The semester policy (QUOTA_POLICY_FILE): the file and its errors, the balance arithmetic
(pure), then the real WorkspaceClient against the emulated workspace: a weekly cap that stops a
group and says when it refills, a top-up bank, a bank grant through the CLI, and the sessions the
ledger keeps."""
import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from freezegun import freeze_time

from conftest import course, local
from databricks.teachinglab.adapters.ledger import repository as ledger
from databricks.teachinglab.adapters.ledger.models import OutboxMessage, UsageSession
from databricks.teachinglab.adapters.policy_file import PolicyFileError, load_policy
from databricks.teachinglab.core.allowance import Balance
from databricks.teachinglab.core.policy import GroupCaps, TopUp
from databricks.teachinglab.core.units import UNITS

ROOT = Path(__file__).resolve().parents[1]
MINUTES = UNITS["minutes"]
M = 60_000  # ms per minute: amounts of a minutes quota are ms
MON, TUE = (2026, 3, 2), (2026, 3, 3)

POLICY = """\
[daily]
warn_minutes = 100
max_minutes = 200

[weekly]                       # ISO weeks, Monday to Sunday, local time
max_minutes = 300
carry_over_max_minutes = 60

[semester]
start = 2026-03-01
end = 2026-07-10
max_minutes = 2000

[[topup]]
groups = ["group_02"]
minutes = 60
from = 2026-03-03
until = 2026-03-03
reason = "project deadline"

[groups.group_03]
daily = { warn_minutes = 150, max_minutes = 250 }
"""


def write(tmp_path, text, name="policy.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# -- the file -----------------------------------------------------------------------------------
def test_the_issue_example_loads_with_group_overrides_merged(tmp_path):
    p = load_policy(write(tmp_path, POLICY), MINUTES, defaults=(400, 480))
    assert (p.caps.daily_warn, p.caps.daily_max, p.caps.weekly_max, p.caps.carry_over_max) == (100, 200, 300, 60)
    g3 = p.for_group("group_03")
    assert (g3.daily_warn, g3.daily_max, g3.weekly_max, g3.semester_max) == (150, 250, 300, 2000)
    assert p.topups_for("group_02")[0].reason == "project deadline" and p.topups_for("group_01") == []
    assert p.periodic


@pytest.mark.parametrize("text, line, words", [
    ("[daily]\nwarn_minutes = 100\nmax_minutes = 90\n", 2, "warn_minutes must be below max_minutes"),
    ("[daily]\nwarn_minutes = 1\nmax_minutes = 9\n[weekly]\nmax_dbu = 3\n", 5, "QUOTA_UNIT is minutes"),
    ("[daily]\nwarn_minutes = 1\nmax_minutes = 9\n[weekly]\ncarry_over_max_minutes = 5\n", 4, "needs max_minutes"),
    ("[daily]\nwarn_minutes = 1\nmax_minutes = 9\n\n[[topup]]\ngroups = [\"g\"]\nminutes = 6\nfrom = 2026-05-11\n"
     "until = \"2026-05-12\"\n", 9, "until must be a date"),
    ("[daily]\nwarn_minutes = 1\nmax_minutes = 9.5\n", 3, "whole number of minutes"),
    ("[semester]\nstart = 2026-07-01\nend = 2026-03-01\nmax_minutes = 5\n", 3, "is before start"),
    ("[daily]\nwarn_minutes = 1\nmax_minutes = 9\n[groups.g1]\ndaily = { max_minutes = 0 }\n", 5, "above 0"),
    ("[dayly]\nmax_minutes = 3\n", 1, "unknown section [dayly]"),
    ("[daily\nwarn_minutes = 1\n", 1, "not valid TOML"),
])
def test_a_bad_policy_names_file_line_key_and_what_is_expected(tmp_path, text, line, words):
    path = write(tmp_path, text)
    with pytest.raises(PolicyFileError) as err:
        load_policy(path, MINUTES, defaults=(400, 480))
    assert any(m.startswith(f"{path}:{line}: ") and words in m for m in err.value.messages), err.value.messages


def test_a_bad_policy_file_stops_the_poll_with_exit_2_and_no_traceback(tmp_path):
    path = write(tmp_path, "[daily]\nwarn_minutes = 300\nmax_minutes = 200\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DATABRICKS_HOST": "http://127.0.0.1:9",
           "DATABRICKS_TOKEN": "x", "QUOTA_POLICY_FILE": str(path), "CLUSTER_UPTIMES_DB": str(tmp_path / "l.db")}
    r = subprocess.run([sys.executable, "-m", "databricks.poll_clusters"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2
    assert f"{path}:2: daily.warn_minutes" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "l.db").exists()  # nothing half-applied: the run never started


# -- the balance (pure) ---------------------------------------------------------------------------
CAPS = GroupCaps(100, 200, weekly_max=300, carry_over_max=60, semester_max=700,
                 semester_start=date(2026, 3, 2), semester_end=date(2026, 7, 10))


def test_unused_weekly_minutes_carry_into_the_next_week_up_to_the_cap():
    b = Balance(CAPS, MINUTES)
    b.close(date(2026, 3, 2), 200 * M)          # week 1: 200 of 300 used, 100 unused, 60 carried
    a = b.allowance(date(2026, 3, 9))
    assert (a.week_total, a.week_left) == (360 * M, 360 * M)
    b.close(date(2026, 3, 9), 200 * M)
    b.close(date(2026, 3, 10), 160 * M)         # week 2 used all 360: nothing carries
    assert b.allowance(date(2026, 3, 16)).week_total == 300 * M


def test_the_weekly_cap_stops_before_the_daily_and_refills_next_monday():
    b = Balance(CAPS, MINUTES)
    b.close(date(2026, 3, 2), 200 * M)
    a = b.allowance(date(2026, 3, 3))
    limits = a.limits()
    assert (a.base, a.cap, limits.hard) == (100 * M, "weekly", 100 * M)
    assert limits.refills == "next Monday (2026-03-09)"
    assert (a.warn_cap, a.warn) == ("weekly", 40 * M)   # 80 % of 300 is 240; 200 used


def test_a_top_up_is_drawn_only_above_the_caps_and_expires():
    bank = TopUp(("g",), 60, date(2026, 3, 3), date(2026, 3, 4))
    b = Balance(CAPS, MINUTES, [bank])
    b.close(date(2026, 3, 2), 200 * M)
    a = b.close(date(2026, 3, 3), 130 * M)       # 100 of the week + 30 from the bank
    assert (a.hard, a.bank_left) == (160 * M, 60 * M)
    a = b.allowance(date(2026, 3, 4))
    assert (a.base, a.bank_left, a.hard) == (0, 30 * M, 30 * M)   # the week is spent; 30 left in the bank
    assert b.allowance(date(2026, 3, 5)).hard == 0                # expired
    assert b.week_counted == 300 * M             # bank minutes never counted toward the week


def test_the_semester_cap_says_never_this_semester():
    caps = GroupCaps(100, 200, semester_max=250, semester_start=date(2026, 3, 2), semester_end=date(2026, 7, 10))
    b = Balance(caps, MINUTES)
    b.close(date(2026, 3, 2), 200 * M)
    a = b.allowance(date(2026, 3, 3))
    assert (a.cap, a.base) == ("semester", 50 * M)
    assert a.limits().refills == "never this semester (it ends 2026-07-10)"


# -- through the emulated workspace ---------------------------------------------------------------
@pytest.fixture
def env(make_env, tmp_path, monkeypatch):
    e = make_env(local(*MON, 7), QUOTA_POLICY_FILE=str(write(tmp_path, POLICY)),
                 STATUS_PAGE_URL="https://lab.example.edu/status", STATUS_PAGE_SECRET="s3cret-for-tests")
    e.ids = e.seed(course(3, 2))
    for key, value in e.env.items():
        monkeypatch.setenv(key, value)
    return e


def monday_then_tuesday(env):
    """group_01 and group_02 each run 08:00-12:00 on Monday (stopped at the 200-minute daily cap at
    the 11:30 poll: 210 minutes), and from 08:00 on Tuesday."""
    for name in ("cluster_01", "cluster_02"):
        env.workspace.session(env.ids[name], local(*MON, 8), local(*MON, 12))
    env.polls(local(*MON, 8), local(*MON, 12, 15))
    env.close_day(local(*TUE, 0, 7))
    for name in ("cluster_01", "cluster_02"):
        env.workspace.session(env.ids[name], local(*TUE, 8), None)
    env.polls(local(*TUE, 8), local(*TUE, 11, 0))


def stops(env, name):
    return [m for m in OutboxMessage.select() if m.kind == "termination" and name in m.subject]


def test_a_weekly_cap_stops_the_group_names_the_cap_and_when_it_refills(env):
    monday_then_tuesday(env)
    cid = env.ids["cluster_01"]
    row = ledger.day_of(cid, date(*TUE))
    # 300 - 210 used on Monday = 90 left this week: stopped at the 09:30 poll
    assert row.terminated_at == local(*TUE, 9, 30) and row.quota_cap == "weekly"
    [monday, tuesday] = stops(env, "group_01")
    assert "daily limit of 200 minutes reached" in monday.subject
    assert "weekly limit reached, refills next Monday (2026-03-09)" in tuesday.subject
    assert "this week: 300 of 300 minutes" in tuesday.text_body
    assert "https://lab.example.edu/status/g/" in tuesday.text_body
    weekly_warnings = [m for m in OutboxMessage.select() if m.kind == "warning" and "weekly allowance" in m.text_body]
    assert len(weekly_warnings) == 2   # one per group, once in the week (80 % of 300 = 240: 30 min into Tuesday)


def test_a_top_up_bank_lets_the_group_run_past_the_weekly_cap_until_it_is_empty(env):
    monday_then_tuesday(env)
    row = ledger.day_of(env.ids["cluster_02"], date(*TUE))
    assert row.terminated_at == local(*TUE, 10, 30)   # 90 left of the week + the 60-minute top-up
    assert "Today's limit includes 60 minutes from your group's top-up." in [
        m for m in OutboxMessage.select() if m.kind == "warning" and "group_02" in m.subject][-1].text_body


def test_cluster_usage_json_gives_week_and_semester_seconds_and_the_cap_that_stopped(env, capsys):
    from databricks import main as cli
    monday_then_tuesday(env)
    capsys.readouterr()
    with freeze_time(env.now):
        assert cli.main(["--cluster_usage", "--json"]) == 0
    lines = {u["cluster_name"]: u for u in json.loads(capsys.readouterr().out)}
    one = lines["cluster_01"]
    assert one["stopped_by"] == "weekly" and lines["cluster_03"]["stopped_by"] is None
    assert one["week_used_seconds"] == (210 + 90) * 60
    assert one["semester_used_seconds"] == (210 + 90) * 60


def test_a_bank_grant_with_until_raises_the_limit_until_that_day_and_is_audited_today(env, capsys):
    from databricks import main as cli
    monday_then_tuesday(env)
    assert ledger.day_of(env.ids["cluster_01"], date(*TUE)).blocked_at is not None
    with freeze_time(env.at(local(*TUE, 11, 5))):
        assert cli.main(["--grant", "45", "--cluster", "cluster_01", "--until", "2026-03-04",
                         "--reason", "deadline"]) == 0
    assert "not blocked" in capsys.readouterr().out
    [grant] = ledger.bank_grants()
    assert (grant.day, grant.until, grant.amount) == (date(*TUE), date(2026, 3, 4), 45)
    assert ledger.grants_on(date(*TUE)) == []   # not a today-only grant
    assert ledger.day_of(env.ids["cluster_01"], date(*TUE)).limit_amount == (90 + 45) * M


def test_every_usage_interval_is_kept_as_a_session_once(env):
    monday_then_tuesday(env)
    cid = env.ids["cluster_01"]
    rows = [(s.start, s.end, s.nodes) for s in ledger.sessions() if s.cluster_id == cid]
    assert rows[0][:2] == (local(*MON, 8), local(*MON, 11, 30))
    assert rows[-1][:2] == (local(*TUE, 8), local(*TUE, 9, 30))
    before = UsageSession.select().count()
    env.poll(env.now)   # a rerun at the same time adds nothing
    assert UsageSession.select().count() == before


def test_a_week_used_up_gets_one_stop_notice_however_many_days_the_group_tries_again(env):
    """Regression (issue 21): the weekly stop notice was keyed by the day's limit, so on
    Wednesday, with nothing left of the week (a limit of 0, a new number), the group got a
    second "weekly limit reached" mail saying it "has used 0 of its 0 minutes today"."""
    monday_then_tuesday(env)
    env.close_day(local(2026, 3, 4, 0, 7))
    cid = env.ids["cluster_01"]
    env.workspace.user_action(local(2026, 3, 4, 8), "start", cid, as_group="group_01")
    env.polls(local(2026, 3, 4, 8), local(2026, 3, 4, 8, 30))
    row = ledger.day_of(cid, date(2026, 3, 4))
    assert row.terminated_at is not None and row.quota_cap == "weekly"  # still stopped on Wednesday
    weekly = [m for m in stops(env, "group_01") if "weekly limit reached" in m.subject]
    assert len(weekly) == 1
    assert not any("0 of its 0" in m.text_body for m in stops(env, "group_01"))


def test_a_grant_after_the_week_is_used_up_earns_a_new_stop_notice_when_it_runs_out(env):
    """What the key still tells apart: minutes added on top of a used-up week are a new limit, and
    reaching it is news."""
    from databricks import main as cli
    monday_then_tuesday(env)
    cid = env.ids["cluster_01"]
    with freeze_time(env.at(local(*TUE, 11, 5))):
        assert cli.main(["--grant", "30", "--cluster", "cluster_01", "--reason", "deadline"]) == 0
    env.workspace.user_action(local(*TUE, 11, 10), "start", cid, as_group="group_01")
    env.polls(local(*TUE, 11, 15), local(*TUE, 12, 0))
    weekly = [m for m in stops(env, "group_01") if "weekly limit reached" in m.subject]
    assert len(weekly) == 2


def test_the_page_counts_the_week_as_the_policy_does_without_the_top_up(env):
    """group_02 used 90 minutes of its week and its 60-minute top-up on Tuesday: the page says the
    week is 300 of 300 used (the top-up is extra), not 360 of 300."""
    from databricks.teachinglab.services.status import group_status
    monday_then_tuesday(env)
    status = group_status(env.settings, "group_02", env.now)
    week = next(p for p in status.periods if p.name == "this week")
    assert (week.used, week.limit) == ("300 minutes", "300 minutes")
    today = next(p for p in status.periods if p.name == "today")
    assert today.used == "150 minutes" and today.limit == "150 minutes"
