"""QUOTA_UNIT=dbu and usd: quotas that follow the money. The unit's arithmetic (pure), then the
real WorkspaceClient against the emulated workspace: a DBU quota reached mid-interval, the
warning's forecast, the cadence, grants and overrides in the unit, the report, and a node type
the price table lacks.

Prices are the packaged table's: Standard_DS3_v2 0.75 DBU/h and $0.293/h per node, $0.55 per DBU.
"""
import json
import logging
from datetime import timedelta
from fractions import Fraction

import pytest
from freezegun import freeze_time

from conftest import course, local
from databricks.teachinglab.adapters.ledger import repository as ledger
from databricks.teachinglab.adapters.ledger.models import ClusterDay, OutboxMessage, UsageHistory
from databricks.teachinglab.core.prices import PriceTable
from databricks.teachinglab.core.quota import Limits
from databricks.teachinglab.core.units import UNITS, Measured
from databricks.teachinglab.core.usage import could_cross
from databricks.teachinglab.services import poll as enforcement
from databricks.teachinglab.services.grants import cluster_usage

DAY = (2026, 3, 2)
DBU, USD, MINUTES = UNITS["dbu"], UNITS["usd"], UNITS["minutes"]
PRICES = PriceTable("USD", 0.55, {"Standard_DS3_v2": {"dbu_per_hour": 0.75, "vm_per_hour": 0.293},
                                  "Standard_DS5_v2": {"dbu_per_hour": 3.0, "vm_per_hour": 1.17}})


class Types:
    def __init__(self, worker, driver=None):
        self.node_type_id, self.driver_node_type_id = worker, driver


def at(h, m=0, s=0):
    return local(*DAY, h, m, s)


# -- the unit's arithmetic -----------------------------------------------------------------------
def test_dbu_and_usd_come_from_node_time_at_each_node_types_rate():
    """One hour with a DS5 driver and 3 DS3 workers, plus 2 minutes of start-up on 4 nodes."""
    hour = 3_600_000
    m = Measured(used_ms=hour, node_ms=4 * hour, startup_ms=120_000, startup_node_ms=480_000)
    cluster = Types("Standard_DS3_v2", driver="Standard_DS5_v2")
    dbu = 3.0 + 3 * 0.75
    assert DBU.amount(PRICES, cluster, m) == (round(dbu * 1_000_000), True)
    startup_vm = (1.17 + 3 * 0.293) * 120 / 3600   # billed VMs, no DBUs
    usd = dbu * 0.55 + 1.17 + 3 * 0.293 + startup_vm
    assert USD.amount(PRICES, cluster, m) == (round(usd * 1_000_000), True)
    assert MINUTES.amount(PRICES, cluster, m) == (hour, True)


def test_an_unpriced_node_type_counts_at_the_dearest_rate_and_says_so():
    m = Measured(used_ms=3_600_000, node_ms=2 * 3_600_000)
    assert DBU.amount(PRICES, Types("Standard_NC24ads_A100_v4"), m) == (6_000_000, False)  # 2 nodes x 3 DBU/h


def test_the_rate_follows_the_nodes_running():
    per_hour = DBU.rate_per_ms(PRICES, Types("Standard_DS3_v2"), workers=3) * 3_600_000
    assert per_hour == pytest.approx(4 * 0.75 * 1_000_000)
    assert MINUTES.rate_per_ms(PRICES, Types("Standard_DS3_v2"), workers=3) == 1.0


def test_amounts_are_shown_rounded_down():
    assert DBU.show(2_999_999) == "2.99 DBU" and USD.show(5_500_000) == "5.50 USD"
    assert MINUTES.show(479 * 60_000 + 59_999) == "479 minutes"


def test_could_cross_is_judged_at_the_rate_given():
    limits = Limits.of(DBU, 2, 3)
    per_ms_at_max = DBU.rate_per_ms(PRICES, Types("Standard_DS3_v2"), workers=8)   # 6.75 DBU/h
    two_minutes = 120_000
    assert could_cross(1_800_000, per_ms_at_max, limits, two_minutes)           # 1.8 + 0.225 > 2
    assert not could_cross(1_700_000, per_ms_at_max, limits, two_minutes)
    assert could_cross(3_100_000, per_ms_at_max, limits, two_minutes)           # past it and running
    assert not could_cross(3_100_000, 0.0, limits, two_minutes)                 # past it, stopped


# -- end to end on the emulated workspace -------------------------------------------------------
@pytest.fixture
def env(make_env, monkeypatch):
    e = make_env(at(7), QUOTA_UNIT="dbu", DATABRICKS_WARN_DBU="2", DATABRICKS_MAX_DBU="3")
    e.ids = e.seed(course(2, 2))
    for key, value in e.env.items():
        monkeypatch.setenv(key, value)
    return e


def minute_polls(env, start, end):
    return env.polls(start, end, step=1)


def events_asked(env, run) -> list[str]:
    before = len(env.workspace.requests)
    run()
    return [r.body["cluster_id"] for r in env.workspace.requests[before:] if r.path.endswith("/clusters/events")]


def row_of(env, cid) -> ClusterDay:
    return ClusterDay.get(ClusterDay.cluster == cid)


def seconds_to_reach(dbu: Fraction, start_s: Fraction, nodes_then: list[tuple[Fraction, int]]) -> Fraction:
    """Seconds after `start_s` when a cluster at the given (from second, nodes) steps reaches
    `dbu` at 0.75 DBU/h per node."""
    used, t = Fraction(0), start_s
    steps = nodes_then + [(Fraction(10**9), 0)]
    for (begin, nodes), (end, _) in zip(steps, steps[1:]):
        rate = Fraction(3, 4) * nodes / 3600
        if used + rate * (end - begin) >= dbu:
            return begin + (dbu - used) / rate
        used += rate * (end - begin)
    raise AssertionError("never")


def test_a_dbu_quota_reached_mid_interval_is_enforced_to_the_second(env):
    """1 worker from 08:00:05 (1.5 DBU/h), upsized to 3 at 08:30 (UPSIZE_COMPLETED 08:30:30, then
    3 DBU/h). Warned at the first run past 2 DBU with the forecast stop; at 3 DBU the 09:15 run sees
    the crossing inside its deadline, waits for it and stops the cluster then."""
    from databricks.teachinglab.adapters.deadline import Deadline
    ws = env.workspace
    cid = env.ids["cluster_01"]
    ws.session(cid, at(8, 0, 5), None)
    ws.user_action(at(8, 30), "resize", cid, num_workers=3)
    start = Fraction(8 * 3600 + 5)
    steps = [(start, 2), (Fraction(8 * 3600 + 30 * 60 + 30), 4)]
    warn_s, stop_s = seconds_to_reach(Fraction(2), start, steps), seconds_to_reach(Fraction(3), start, steps)
    minute_polls(env, at(8, 1), at(9, 14))
    [warning] = [m for m in OutboxMessage.select() if m.kind == "warning"]
    stop_whole = -(-stop_s // 1)  # the forecast is rounded up to the second
    hh, mm = int(stop_whole // 3600), int(stop_whole % 3600 // 60)
    assert f"At this rate the cluster stops at {hh:02d}:{mm:02d} IST." in warning.text_body
    assert "of its 3.00 DBU (" in warning.text_body and "minutes of uptime)" in warning.text_body
    assert "of 2.00 DBU" not in warning.subject and "of 3.00 DBU used today" in warning.subject
    assert warning.created_at >= at(0) + timedelta(seconds=float(warn_s))
    assert row_of(env, cid).terminated_at is None

    ctx = env.lab()
    env.at(at(9, 15))
    ctx.deadline = Deadline(25, monotonic=lambda: ws.now().timestamp())
    report = enforcement.run_poll_to_the_second(
        ctx, env.now, wait=lambda s: env.at(ws.now() + timedelta(seconds=s)), interval_seconds=60)
    assert report.count_done("terminate") == 1
    row = row_of(env, cid)
    assert row.terminated_at == at(0) + timedelta(seconds=int(stop_whole))
    assert (row.quota_unit, row.limit_amount) == ("dbu", 3_000_000)
    [stopped] = [m for m in OutboxMessage.select() if m.kind == "termination"]
    assert "daily limit of 3.00 DBU reached" in stopped.subject


def test_one_minute_runs_read_no_events_until_a_dbu_threshold_could_be_near(env):
    """1.5 DBU/h from 08:00 reaches the 2 DBU warning at 09:20. Far from it, a run makes no events
    call; within two runs of it (judged at the autoscale maximum) it reads them."""
    cid = env.ids["cluster_01"]
    env.workspace.session(cid, at(8), None)
    env.poll(at(8, 1))
    assert events_asked(env, lambda: minute_polls(env, at(8, 2), at(8, 40))) == []
    asked = events_asked(env, lambda: minute_polls(env, at(9, 17), at(9, 21)))
    assert cid in asked
    assert [m.kind for m in OutboxMessage.select()] == ["warning"]


def test_a_grant_in_dbu_lifts_the_block_and_the_cli_speaks_dbu(env, capsys):
    from databricks import main as cli
    cid = env.ids["cluster_01"]
    env.workspace.session(cid, at(8), None)
    env.polls(at(8), at(10, 15), step=15)   # 3 DBU at 10:00
    assert row_of(env, cid).blocked_at is not None
    capsys.readouterr()
    with freeze_time(env.at(at(10, 20)), tick=True):
        assert cli.main(["--grant", "1.5", "--cluster", "cluster_01", "--reason", "demo day"]) == 0
    out = capsys.readouterr().out
    assert "limit today is now 4.5 DBU" in out and "not blocked" in out
    grant = ledger.grants_on(at(10).date())[0]
    assert (grant.unit, grant.amount) == ("dbu", 1.5)
    with freeze_time(env.now, tick=True):
        assert cli.main(["--cluster_usage", "--json"]) == 0
    line = next(x for x in json.loads(capsys.readouterr().out) if x["cluster_id"] == cid)
    assert (line["quota_unit"], line["max_limit"], line["max_minutes"]) == ("dbu", 4.5, None)
    assert line["group_used"] == pytest.approx(line["dbu"], abs=1e-6)


def test_an_override_in_another_unit_is_left_out_and_said(env, caplog):
    cid = env.ids["cluster_01"]
    env.workspace.session(cid, at(8), None)
    env.poll(at(8, 1))
    ledger.set_override(cid, "minutes", 10, 20, "admin", env.now)   # set before QUOTA_UNIT changed
    with caplog.at_level(logging.WARNING):
        env.poll(at(8, 30))     # 30 minutes: past a 20-minute quota, far below 3 DBU
    assert row_of(env, cid).terminated_at is None and row_of(env, cid).limit_amount == 3_000_000
    assert "its quota override is in minutes, QUOTA_UNIT is dbu: left out" in caplog.text


def test_the_report_shows_dbu_with_minutes_beside_them(env):
    from databricks.teachinglab.adapters.mail.render import render
    from databricks.teachinglab.adapters.report_files import report_csv
    from databricks.teachinglab.services.reports import daily_report
    cid = env.ids["cluster_01"]
    env.workspace.session(cid, at(8), at(9))   # 1 hour on 2 nodes: 1.5 DBU
    env.polls(at(8), at(9, 15), step=15)
    env.close_day(local(2026, 3, 3, 0, 7))
    assert UsageHistory.get(UsageHistory.cluster == cid).quota_unit == "dbu"
    report = daily_report(at(8).date(), env.settings)
    row = next(r for r in report.rows if r.cluster_id == cid)
    assert (row.used_minutes, row.used_in_unit, row.limit_in_unit, row.percent) == (60, "1.50", "3.00", 50)
    assert report.semester[row.group]["used"] == "1.50"
    csv_text = report_csv(report).decode("utf-8-sig").splitlines()
    header, line = csv_text[0].split(","), next(x for x in csv_text if cid in x).split(",")
    assert line[header.index("quota_unit")] == "dbu" and line[header.index("used_in_unit")] == "1.50"
    assert line[header.index("limit_minutes")] == ""
    [mail] = [m for m in OutboxMessage.select() if m.kind == "daily_report"]
    assert "Quotas are in DBU (QUOTA_UNIT=dbu)" in mail.text_body


def test_a_node_type_missing_from_the_price_table_is_enforced_and_exits_2(env, capsys):
    """A student's cluster on a VM the table lacks: counted at the table's dearest rate (an upper
    bound: no escaping the quota by VM choice), and the poll exits 2 naming the type and the file."""
    from databricks import poll_clusters
    ws = env.workspace
    odd = ws.add_cluster("gpu-box", tags={"group": "group_02"}, spec={"node_type_id": "Standard_NC6s_v3"})
    ws.session(odd, at(8), None)
    env.poll(at(8, 1))
    with freeze_time(env.at(at(8, 31)), tick=True):
        assert poll_clusters.main([]) == 2
    err = capsys.readouterr().err
    assert "node type Standard_NC6s_v3" in err and "prices.json" in err and "Traceback" not in err
    # 30 minutes on 2 nodes at the dearest packaged rate (Standard_DS5_v2, 3 DBU/h a node)
    assert row_of(env, odd).used_ms >= 30 * 60_000
    line = next(x for x in cluster_usage(env.settings, env.now) if x.cluster_id == odd)
    assert line.group_used >= 2 * 3.0 * 0.5


class PhotonTypes(Types):
    photon = True


def test_photon_is_counted_at_its_own_rate_or_the_tables_multiplier():
    """Photon instances consume DBUs at their own rate (Azure Databricks Photon docs): a node type's
    photon_dbu_per_hour, else the table's photon_dbu_multiplier; neither: the dearest rate, said."""
    hour = 3_600_000
    m = Measured(used_ms=hour, node_ms=2 * hour)
    own = PriceTable("USD", 0.55, {"Standard_DS3_v2": {"dbu_per_hour": 0.75, "vm_per_hour": 0.293,
                                                       "photon_dbu_per_hour": 1.8}})
    assert DBU.amount(own, PhotonTypes("Standard_DS3_v2"), m) == (3_600_000, True)          # 2 nodes x 1.8
    assert DBU.amount(own, Types("Standard_DS3_v2"), m) == (1_500_000, True)                # not Photon: 0.75
    multiplied = PriceTable("USD", 0.55, PRICES.node_types, photon_multiplier=2.0)
    assert DBU.amount(multiplied, PhotonTypes("Standard_DS3_v2"), m) == (3_000_000, True)
    assert USD.amount(multiplied, PhotonTypes("Standard_DS3_v2"), m)[0] == round((3.0 * 0.55 + 2 * 0.293) * 1e6)
    amount, priced = DBU.amount(PRICES, PhotonTypes("Standard_DS3_v2"), m)                  # no Photon rate at all
    assert not priced and amount == 6_000_000                                               # the dearest: DS5, 3/h


def test_a_photon_cluster_is_stopped_at_its_quota_by_its_photon_dbus(env):
    """Clusters made in the UI run Photon by default; on a DBU quota they reach it twice as fast
    at the packaged table's multiplier, and the emulated bill (Photon's rate) agrees."""
    ws = env.workspace
    photon = ws.add_cluster("ui-photon", tags={"group": "group_02"}, spec={"runtime_engine": "PHOTON"})
    ws.session(photon, at(8), None)
    env.polls(at(8), at(9, 30), step=5)
    row = row_of(env, photon)
    # 1 worker + driver at 0.75 x 2 DBU/h: 3 DBU/h, so the 3 DBU quota is reached at 09:00
    assert row.terminated_at is not None and row.terminated_at <= at(9, 5)
    assert row.used_ms <= 65 * 60_000
    line = next(x for x in cluster_usage(env.settings, env.now) if x.cluster_id == photon)
    assert line.dbu is not None and line.dbu >= 2.99
