"""Reconciliation with system.billing.usage: the nightly close runs the billing statement on
DATABRICKS_WAREHOUSE_ID through the real SDK (Statement Execution API) against the emulated
workspace, which answers it from its own cluster events; and every way that can fail."""
from datetime import date, timedelta

import pytest

from zoneinfo import ZoneInfo

from conftest import course, local
from databricks.teachinglab.adapters.ledger.models import ClosedDay, OutboxMessage

D1, D2 = (2026, 3, 2), (2026, 3, 3)
KOLKATA = ZoneInfo("Asia/Kolkata")


def report_of(day) -> OutboxMessage:
    return next(m for m in OutboxMessage.select() if m.kind == "daily_report" and day in m.subject)


def lab_with_warehouse(make_env, wait_seconds: str):
    e = make_env(local(*D1, 7), DATABRICKS_WAREHOUSE_ID="wh-billing", WAREHOUSE_WAIT_SECONDS=wait_seconds)
    e.ids = e.seed(course(2, 2))
    e.warehouse = e.workspace.warehouses.add("wh-billing")
    return e


@pytest.fixture
def env(make_env):
    """The close waits 1 s for the warehouse: less than one 2 s poll, so a statement not answered
    at once is canceled without a real wait."""
    return lab_with_warehouse(make_env, "1")


def two_days(env):
    """cluster_01 on Monday 08:00-10:00 (1 worker, upsized to 3 at 09:00); on Tuesday 08:00-09:00
    (at 3 workers)."""
    ws, cid = env.workspace, env.ids["cluster_01"]
    ws.session(cid, local(*D1, 8), local(*D1, 10))
    ws.user_action(local(*D1, 9), "resize", cid, num_workers=3)
    ws.session(cid, local(*D2, 8), local(*D2, 9))
    env.polls(local(*D1, 8), local(*D1, 10, 15))
    env.close_day(local(*D2, 0, 7))
    env.polls(local(*D2, 8), local(*D2, 9, 15))
    env.close_day(local(*D2, 23, 59) + timedelta(minutes=8))


def test_the_report_shows_measured_and_billed_dbus_per_group_for_the_day_and_the_one_before(env):
    """Monday: 60.5 min on 2 nodes and 59.5 min on 4 at 0.75 DBU/h a node = 4.4875 DBU;
    Tuesday: 1 h on 4 nodes (it restarts at its last size) = 3 DBU. Billing from the same events:
    no drift."""
    two_days(env)
    text = report_of("2026-03-03").text_body
    assert "Billed DBUs (system.billing.usage, warehouse wh-billing) against measured, per group:" in text
    assert "2026-03-02 group_01" in text and "4.49      4.49    +0.0%" in text
    assert "2026-03-03 group_01" in text and "3.00      3.00    +0.0%" in text
    assert "2026-03-03 may not be complete yet" in text
    sent = [r for r in env.workspace.requests if r.path == "/api/2.0/sql/statements"
            and "is_serverless" not in r.body["statement"]]  # each close reads serverless use too
    assert len(sent) == 2 and sent[-1].body["warehouse_id"] == "wh-billing"
    assert {p["name"] for p in sent[-1].body["parameters"]} == {"start", "end", "workspace_id"}


def test_drift_and_a_billed_cluster_the_ledger_never_saw_are_shown(env):
    """The bill runs 10 % above events, and a job cluster (never listed by the poll) is billed."""
    ws = env.workspace
    ws.warehouses.skew = 1.1
    job = ws.add_cluster("nightly-etl", spec={"cluster_source": "JOB"})
    ws.session(job, local(*D2, 2), local(*D2, 4))
    two_days(env)
    text = report_of("2026-03-03").text_body
    assert "3.00      3.30   +10.0%" in text
    assert "(clusters not in the ledger)" in text and "0.00      3.30" in text


@pytest.mark.parametrize("setup, expected", [
    (lambda wh: setattr(wh, "state", "STOPPED") or setattr(wh, "start_seconds", 600),
     "warehouse wh-billing did not answer within 1 s (stopped and starting, or busy)"),
    (lambda wh: setattr(wh, "refuse", "[INSUFFICIENT_PERMISSIONS] User does not have USE SCHEMA on Schema "
                                      "'system.billing'"),
     "could not run the billing query (BAD_REQUEST: [INSUFFICIENT_PERMISSIONS]"),
    (lambda wh: setattr(wh, "warehouse_id", "gone"), "could not be sent to warehouse wh-billing (ResourceDoesNotExist: Warehouse wh-billing does not exist.); "
                                         "check DATABRICKS_WAREHOUSE_ID"),
], ids=["stopped", "refused", "unknown"])
def test_a_warehouse_that_cannot_answer_leaves_the_column_out_says_why_and_the_close_finishes(env, setup, expected):
    ws = env.workspace
    setup(env.warehouse)
    if env.warehouse.warehouse_id == "gone":
        ws.warehouses.warehouses.clear()
    ws.session(env.ids["cluster_01"], local(*D1, 8), local(*D1, 9))
    env.polls(local(*D1, 8), local(*D1, 9, 15))
    report = env.close_day(local(*D2, 0, 7))
    assert report.closed == [date(*D1)] and ClosedDay.select().count() == 1
    text = report_of("2026-03-02").text_body
    assert "Billed DBUs are left out of this report: " in text and expected in text
    assert "measured, per group" not in text
    if expected.startswith("warehouse wh-billing did not answer"):
        # the serverless read and the reconciliation, each canceled at its budget
        assert [s.state for s in ws.warehouses.statements.values()] == ["CANCELED", "CANCELED"]


def test_a_stopped_warehouse_that_starts_in_time_is_waited_for(make_env):
    """Classic warehouses take a while to start: the statement is PENDING, polled, then answered."""
    env = lab_with_warehouse(make_env, "20")
    ws = env.workspace
    env.warehouse.state, env.warehouse.start_seconds = "STOPPED", 8
    gateway = env.lab().workspace
    gateway._sleep = lambda seconds: ws.advance(seconds)  # the warehouse starts in simulated time
    ws.session(env.ids["cluster_01"], local(*D1, 8), local(*D1, 9))
    env.polls(local(*D1, 8), local(*D1, 9, 15))
    env.close_day(local(*D2, 0, 7))
    polled = [r for r in ws.requests if r.method == "GET" and r.path.startswith("/api/2.0/sql/statements/")]
    assert len(polled) >= 2
    assert "2026-03-02 group_01" in report_of("2026-03-02").text_body


def test_without_a_warehouse_nothing_is_queried_and_the_report_says_nothing_of_billing(make_env):
    env = make_env(local(*D1, 7))
    env.ids = env.seed(course(1, 2))
    env.workspace.session(env.ids["cluster_01"], local(*D1, 8), local(*D1, 9))
    env.polls(local(*D1, 8), local(*D1, 9, 15))
    env.close_day(local(*D2, 0, 7))
    assert not [r for r in env.workspace.requests if "/sql/statements" in r.path]
    assert "Billed DBUs" not in report_of("2026-03-02").text_body


def test_records_straddling_local_midnight_are_split_in_proportion(make_env):
    """In a half-hour zone (Kolkata, UTC+5:30) the hourly record 18:00-19:00 UTC is 23:30-00:30
    local: half of it is the first day's. The bill is read in UTC (epoch seconds, whatever the
    warehouse session's zone) and booked to local days here: no drift on either day."""
    env = make_env(local(*D1, 7, tz=KOLKATA), DATABRICKS_WAREHOUSE_ID="wh-billing", WAREHOUSE_WAIT_SECONDS="1",
                   QUOTA_TIMEZONE="Asia/Kolkata")
    env.ids = env.seed(course(1, 2))
    env.workspace.warehouses.add("wh-billing")
    cid = env.ids["cluster_01"]
    env.workspace.session(cid, local(*D1, 23, tz=KOLKATA), local(*D2, 1, tz=KOLKATA))
    env.polls(local(*D1, 22, 45, tz=KOLKATA), local(*D2, 1, 15, tz=KOLKATA))
    env.close_day(local(*D2, 23, 59, tz=KOLKATA) + timedelta(minutes=8))
    text = report_of("2026-03-03").text_body
    assert "2026-03-02 group_01" in text and "2026-03-03 group_01" in text
    lines = [line for line in text.splitlines() if "group_01" in line and line.strip().startswith("2026-03-0")]
    assert len(lines) == 2 and all(line.rstrip().endswith("+0.0%") for line in lines), lines


def test_a_stopped_warehouse_is_left_alone_with_warehouse_start_never(make_env):
    env = make_env(local(*D1, 7), DATABRICKS_WAREHOUSE_ID="wh-billing", WAREHOUSE_START="never")
    env.ids = env.seed(course(1, 2))
    env.workspace.warehouses.add("wh-billing", state="STOPPED")
    env.workspace.session(env.ids["cluster_01"], local(*D1, 8), local(*D1, 9))
    env.polls(local(*D1, 8), local(*D1, 9, 15))
    env.close_day(local(*D2, 0, 7))
    assert not [r for r in env.workspace.requests if r.path.startswith("/api/2.0/sql/statements")]
    assert env.workspace.warehouses.warehouses["wh-billing"].state == "STOPPED"
    assert "billing not checked: warehouse wh-billing is stopped" in report_of("2026-03-02").text_body
