"""--plan_course (issue 23, part 1): the semester's worst case before anything is created, a budget
that refuses it, the largest quota that fits, and the node types the workspace offers."""
from __future__ import annotations

import json

import pytest

from conftest import course, local, roster_env
from databricks import main as cli
from databricks.teachinglab.adapters.prices import load_prices
from databricks.teachinglab.core.plan import plan_course
from databricks.teachinglab.core.policy import build_policy
from databricks.teachinglab.core.units import UNITS


def test_the_worst_case_is_every_group_at_its_binding_cap_on_its_largest_cluster():
    """Two groups, two weeks, daily 120 and weekly 300 minutes: the weekly cap binds (600 < 1680).
    Standard_DS3_v2 with a driver and 2 workers: 2.25 DBU/h and 0.879 USD/h of VMs."""
    policy = build_policy({"daily": {"warn_minutes": 100, "max_minutes": 120}, "weekly": {"max_minutes": 300}},
                          UNITS["minutes"], defaults=None, source="test")
    plan = plan_course([("g1", 3), ("g2", 2)], policy, load_prices(None), days=14, node_type="Standard_DS3_v2",
                       driver_type=None, max_workers=2, budget_usd=30)
    assert [(g.max_amount, g.limited_by) for g in plan.groups] == [(600, "weekly"), (600, "weekly")]
    assert plan.worst_dbu == pytest.approx(45.0)                 # 2 x 10 h x 2.25 DBU/h
    assert plan.worst_dbu_usd == pytest.approx(45.0 * 0.55)
    assert plan.worst_vm_usd == pytest.approx(2 * 10 * 0.879)
    assert plan.serverless_unbounded == ["g1", "g2"]
    assert plan.within_budget is False                          # 42.33 USD > 30
    fit = plan.largest_fitting                                  # 30 USD / 2 groups / 0.035275 USD a minute
    assert fit["semester"] == 425 and fit["weekly"] == 212 and fit["daily"] == 30 and fit["unit"] == "minutes"


def test_top_ups_and_serverless_caps_count_in_the_worst_case():
    policy = build_policy({"daily": {"warn_dbu": 3, "max_dbu": 4}, "topup": [
        {"groups": ["g1"], "dbu": 5, "from": local(2026, 3, 2).date(), "until": local(2026, 3, 9).date()}],
        "serverless": {"weekly_max_dbu": 2}}, UNITS["dbu"], defaults=None, source="test")
    plan = plan_course([("g1", 2), ("g2", 2)], policy, load_prices(None), days=7, node_type="Standard_DS3_v2",
                       driver_type=None, max_workers=2)
    assert [g.max_amount for g in plan.groups] == [33, 28]      # 7 x 4, and g1's 5 of top-up
    assert plan.worst_dbu == pytest.approx(61)
    assert plan.worst_serverless_usd == pytest.approx(2 * 2 * 0.95)
    assert plan.serverless_unbounded == [] and plan.within_budget is None


@pytest.fixture
def env(make_env, monkeypatch, tmp_path):
    return roster_env(make_env, monkeypatch, tmp_path, local(2026, 3, 1, 9), COURSE_NAME="bigdata",
                      DATABRICKS_MAX_UPTIME="240", DATABRICKS_WARN_UPTIME="200")


def test_plan_course_prints_the_worst_case_and_the_node_types_cheapest_first(env, capsys):
    capsys.readouterr()
    assert cli.main(["--plan_course", str(env.users_csv), "--weeks", "10", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["days"] == 70 and len(plan["groups"]) == 4 and plan["within_budget"] is None
    assert all(g["max_amount"] == 70 * 240 and g["limited_by"] == "daily" for g in plan["groups"])
    assert plan["worst_usd"] == pytest.approx(4 * 70 * 4 * (2.25 * 0.55 + 0.879), abs=0.01)
    ids = [o["node_type_id"] for o in plan["node_types"]]
    assert ids[:2] == ["Standard_DS3_v2", "Standard_D4ds_v5"] and ids[-1] == "Standard_NC6s_v3"  # unpriced last
    assert "Standard_F4s" not in ids                                          # deprecated
    assert plan["expected"] is None                                           # no ledger yet


def test_a_budget_below_the_worst_case_exits_1_with_the_largest_quota_that_fits(env, capsys):
    capsys.readouterr()
    assert cli.main(["--plan_course", str(env.users_csv), "--weeks", "10", "--budget", "500"]) == 1
    out = capsys.readouterr().out
    assert "budget 500.00 USD: the worst case is OVER it" in out
    assert "largest quota that fits" in out and "daily 50," in out  # 500 / 4 groups / 70 days / 0.035275 USD/min
    assert cli.main(["--plan_course", str(env.users_csv), "--weeks", "10", "--budget", "100000"]) == 0


def test_a_bad_budget_or_roster_is_refused_with_exit_2(env, capsys, tmp_path):
    with pytest.raises(SystemExit) as stop:
        cli.main(["--plan_course", str(env.users_csv), "--budget", "lots"])
    assert stop.value.code == 2 and "not an amount of USD" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("email,group\n")
    assert cli.main(["--plan_course", str(bad)]) == 2


def test_create_from_csv_refuses_a_plan_over_course_budget_unless_told(env, capsys, monkeypatch):
    monkeypatch.setenv("COURSE_BUDGET_USD", "300")
    capsys.readouterr()
    assert cli.main(["--create_from_csv", str(env.users_csv)]) == 1
    assert "over COURSE_BUDGET_USD=300: nothing created" in capsys.readouterr().err
    assert not env.workspace.cluster_views(include_deleted=True)
    assert cli.main(["--create_from_csv", str(env.users_csv), "--over_budget", "--dry-run"]) == 0
    assert "OVER (--over_budget)" in capsys.readouterr().out


def test_the_expected_cost_comes_from_a_previous_ledgers_sessions(make_env, monkeypatch, tmp_path, capsys):
    e = roster_env(make_env, monkeypatch, tmp_path, local(2026, 3, 2, 7), COURSE_NAME="bigdata")
    e.ids = e.seed(course(2, 2))
    e.workspace.session(e.ids["cluster_01"], local(2026, 3, 2, 8), local(2026, 3, 2, 10))
    e.polls(local(2026, 3, 2, 8), local(2026, 3, 2, 10, 15))
    capsys.readouterr()
    assert cli.main(["--plan_course", str(e.users_csv), "--weeks", "10", "--json"]) == 0
    expected = json.loads(capsys.readouterr().out)["expected"]
    # one group seen for one week ran 2 h on a driver and one worker (0.75 DBU/h each): 3 DBU; the
    # roster's 4 groups for 10 weeks at that rate: 120 DBU
    assert expected["groups_seen"] == 1 and expected["weeks_seen"] == 1 and expected["from_sessions"] >= 1
    assert expected["dbu"] == pytest.approx(120, abs=0.5)
    assert expected["usd"] == pytest.approx(120 * 0.55 + 40 * 2 * 2 * 0.293, abs=0.5)
