"""The daily report: numbers that match the ledger, a valid PNG and CSV, safe cells, CLI files."""
import io
import json
from datetime import date
from email import message_from_bytes, policy

import pandas as pd
import pytest
from freezegun import freeze_time

from conftest import course, local
from databricks import main as cli
from databricks.teachinglab.adapters.ledger.models import OutboxMessage, UsageHistory
from databricks.teachinglab.adapters.prices import load_prices
from databricks.teachinglab.services.reports import daily_report
from databricks.teachinglab.adapters.report_files import report_csv, report_png, safe_cell



@pytest.fixture
def env(make_env, monkeypatch):
    e = make_env(local(2026, 3, 2, 7))
    scenario = course(3, 2)
    scenario["clusters"][2]["tags"]["group"] = "=HYPERLINK(\"http://x\")"
    scenario["groups"].append({"name": "=HYPERLINK(\"http://x\")", "members": []})
    e.ids = e.seed(scenario)
    ws = e.workspace
    ws.session(e.ids["cluster_01"], local(2026, 3, 2, 8), None)                       # stopped at 480
    ws.session(e.ids["cluster_02"], local(2026, 3, 2, 9), local(2026, 3, 2, 9, 40))   # 40 min
    ws.session(e.ids["cluster_02"], local(2026, 3, 3, 10), local(2026, 3, 3, 11))     # 60 min next day
    e.polls(local(2026, 3, 2, 8), local(2026, 3, 2, 16, 15))
    e.close_day(local(2026, 3, 3, 0, 7))
    e.polls(local(2026, 3, 3, 9), local(2026, 3, 3, 11, 15))
    e.close_day(local(2026, 3, 4, 0, 7))
    for key, value in e.env.items():
        monkeypatch.setenv(key, value)
    return e


def test_report_numbers_match_the_ledger(env):
    r = daily_report(date(2026, 3, 2), env.settings)
    ledger = {h.cluster_name: h for h in UsageHistory.select().where(UsageHistory.day == date(2026, 3, 2))}
    assert {row.cluster_name: row.used_ms for row in r.rows} == {n: h.used_ms for n, h in ledger.items()}
    one = next(row for row in r.rows if row.cluster_name == "cluster_01")
    assert (one.used_minutes, one.percent, one.sessions, one.flags) == (480, 100, 1, "warned,terminated,blocked")
    prices = load_prices()
    node = prices.node_types["Standard_DS3_v2"]
    assert one.cost == round(8 * 2 * (node["dbu_per_hour"] * prices.dbu_price + node["vm_per_hour"]), 2)
    assert r.totals["used_minutes"] == 520 and r.totals["terminated"] == 1
    assert r.never_ran == ["cluster_03"] and r.idle_today == ["cluster_03"]
    later = daily_report(date(2026, 3, 3), env.settings)
    assert later.week["group_02"]["used_minutes"] == 100 and later.semester["group_01"]["used_minutes"] == 480


def test_png_and_csv_are_valid_and_cells_are_safe(env):
    r = daily_report(date(2026, 3, 2), env.settings)
    png = report_png(r)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image as mpimg
    assert mpimg.imread(io.BytesIO(png)).shape[0] > 100
    frame = pd.read_csv(io.BytesIO(report_csv(r)), encoding="utf-8-sig", dtype=str)
    assert list(frame["cluster"]) == [row.cluster_name for row in r.rows]
    assert [int(x) for x in frame["used_minutes"]] == [row.used_minutes for row in r.rows]
    bad = frame[frame["cluster"] == "cluster_03"]["group"].iloc[0]
    assert bad.startswith("'=")
    assert safe_cell("-1") == "'-1" and safe_cell("@SUM(A1)") == "'@SUM(A1)" and safe_cell(42) == "42"


def test_cli_writes_the_three_files_and_sends_with_inline_chart(env, tmp_path, capsys):
    out = tmp_path / "rep"
    with freeze_time(local(2026, 3, 4, 9), tick=True):
        assert cli.main(["--report", "--date", "2026-03-02", "--out", str(out), "--send"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["report.csv", "report.html", "report.png"]
    assert "report.png" in (out / "report.html").read_text()
    sent = [m for m in OutboxMessage.select() if m.kind == "daily_report" and "resend" in m.dedupe_key]
    assert len(sent) == 1 and sent[0].status == "sent"
    eml = next(p for p in (env.tmp / "mail").glob("daily_report_resend*.eml"))
    mail = message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert mail["X-Teachinglab-Event"] == "daily-report"
    kinds = [part.get_content_type() for part in mail.walk()]
    assert "multipart/related" in kinds and "image/png" in kinds and "text/csv" in kinds
    assert "cid:usage-chart" in mail.get_body(("html",)).get_content()


def test_cli_refuses_a_day_not_yet_closed(env, capsys):
    with freeze_time(local(2026, 3, 4, 9), tick=True):
        assert cli.main(["--report", "--date", "2026-03-04"]) == 2
    assert "not closed yet" in capsys.readouterr().err


def test_nightly_report_carries_chart_csv_and_failed_messages(env):
    report = [m for m in OutboxMessage.select() if m.dedupe_key == "daily_report:all:2026-03-02"][0]
    names = sorted(a.filename for a in report.attachments)
    assert names == ["usage-chart.png", "usage.csv"]
    assert "estimated cost" in report.text_body and "not a bill" in report.text_body
    assert "Never ran this semester: cluster_03" in report.text_body
    OutboxMessage.update(status="failed", last_error="550 no such user").where(
        OutboxMessage.kind == "warning").execute()
    r = daily_report(date(2026, 3, 3), env.settings)
    assert [m["error"] for m in r.failed_messages] == ["550 no such user"]


def test_price_table_can_be_overridden(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"currency": "EUR", "dbu_price": 1.0,
                                "node_types": {"X": {"dbu_per_hour": 2, "vm_per_hour": 1}}}))
    prices = load_prices(path)
    assert prices.hourly("X", 3) == 9.0 and prices.hourly("unknown", 1) is None


def _row(cid, name, group, used_min, limit_min, **flags):
    from databricks.teachinglab.core.report import ReportRow
    return ReportRow(cid, name, group, used_min * 60_000, limit_min * 60_000, 1, flags.get("warned", False),
                     flags.get("terminated", False), False, False, exempt=flags.get("exempt", False),
                     used=used_min * 60_000)


def test_the_chart_has_one_bar_per_group_with_its_clusters_stacked_against_the_group_quota():
    """Regression (issue 21): a group with two clusters was drawn twice, each bar against the
    whole quota, and a Hebrew group was labelled by its cluster's name."""
    from databricks.teachinglab.core.report import chart_bars
    rows = [_row("c1", "cluster_01", "group_01", 300, 480, warned=True), _row("c1b", "extra", "group_01", 180, 480,
                                                                             warned=True, terminated=True),
            _row("c2", "bigdata-g1044", "קבוצה שלוש", 60, 480), _row("c3", "teacher-demo", None, 90, 0, exempt=True)]
    bars = {b.label: b for b in chart_bars(rows)}
    assert set(bars) == {"group_01", "קבוצה שלוש", "teacher-demo"}
    g1 = bars["group_01"]
    assert g1.segments == (("cluster_01", 300.0), ("extra", 180.0)) and g1.total == 480 and g1.quota == 480
    assert g1.state == "stopped" and bars["teacher-demo"].quota is None and bars["teacher-demo"].state == "exempt"


def test_every_colour_on_the_chart_is_in_its_legend_and_rtl_names_are_drawn_as_names(env):
    import matplotlib.colors as mcolors
    import matplotlib.pyplot as plt
    from dataclasses import replace
    from databricks.teachinglab.adapters.report_files import chart_figure
    from bidi import get_display
    r = daily_report(date(2026, 3, 2), env.settings)
    r = replace(r, rows=[*r.rows, _row("c9", "bigdata-g1044", "קבוצה שלוש", 60, 480)])
    fig = chart_figure(r)
    try:
        ax = fig.axes[0]
        drawn = {mcolors.to_hex(p.get_facecolor()) for p in ax.patches}
        legend = ax.get_legend()
        in_legend = {mcolors.to_hex(h.get_facecolor()) for h in legend.legend_handles if hasattr(h, "get_facecolor")}
        assert drawn and drawn <= in_legend
        assert "quota" in [t.get_text() for t in legend.get_texts()]
        labels = [t.get_text() for t in ax.get_xticklabels()]
        assert get_display("קבוצה שלוש") in labels and "bigdata-g1044" not in labels
        assert len(labels) == len({row.group or row.cluster_name for row in r.rows if not row.exempt})
    finally:
        plt.close(fig)


@pytest.mark.parametrize("used_ms, limit_min, want", [(3 * 60_000 + 4_000, 3, 100), (479 * 60_000, 480, 99),
                                                     (481 * 60_000, 480, 100), (0, 480, 0)])
def test_a_percentage_never_says_more_than_the_two_figures_beside_it(used_ms, limit_min, want):
    """Regression (issue 21): "3 min / 3 quota = 102%"."""
    from databricks.teachinglab.core.report import ReportRow
    row = ReportRow("c", "n", "g", used_ms, limit_min * 60_000, 1, False, False, False, False, used=used_ms)
    assert row.percent == want == 100 * row.used_minutes // row.limit_minutes


def test_honest_records_after_a_grant_exempt_clusters_and_the_close_time(make_env):
    """The report keeps what happened before a grant, flags exempt clusters instead of showing
    141 %, and says when the day was closed, not when a file was made; the warning after a grant
    says a grant was made."""
    from conftest import course, local
    from databricks.teachinglab.services import grants as admin
    from databricks.teachinglab.adapters.ledger.models import OutboxMessage
    from databricks.teachinglab.adapters.report_files import bundle
    env = make_env(local(2026, 3, 2, 7))
    ids = env.seed(course(1, 1))
    demo = env.workspace.add_cluster("teacher-demo", tags={"quota": "exempt"})
    env.workspace.session(ids["cluster_01"], local(2026, 3, 2, 8), None)
    env.workspace.session(demo, local(2026, 3, 2, 7, 30), None)
    env.polls(local(2026, 3, 2, 8), local(2026, 3, 2, 16, 15))  # stopped at 16:00
    cluster = admin.find_cluster("cluster_01")
    admin.grant(env.settings, cluster, 60, "alice", "deadline", local(2026, 3, 2, 16, 20))
    env.workspace.user_action(local(2026, 3, 2, 16, 25), "start", ids["cluster_01"])
    env.polls(local(2026, 3, 2, 16, 30), local(2026, 3, 2, 18))
    warnings = [m for m in OutboxMessage.select() if m.kind == "warning"]
    assert "60 extra minutes granted" in warnings[-1].text_body
    env.close_day(local(2026, 3, 3, 0, 7))
    report = daily_report(local(2026, 3, 2, 12).astimezone(env.settings.quota.timezone).date(), env.settings)
    row = next(r for r in report.rows if r.cluster_name == "cluster_01")
    assert row.terminated and row.warned
    assert "stopped at 16:00" in row.notes and "granted 60 min at 16:20 by alice (deadline)" in row.notes
    exempt = next(r for r in report.rows if r.cluster_name == "teacher-demo")
    assert exempt.percent == "exempt" and "exempt" in exempt.flags
    later = bundle(report, env.settings, local(2026, 3, 5, 9))
    assert "closed at 2026-03-03 00:07" in later.text and "2026-03-05" not in later.text.split("\n")[0]


def test_a_node_type_missing_from_the_price_table_is_named_in_the_report_not_guessed(make_env):
    from databricks.teachinglab.adapters.report_files import bundle
    env = make_env(local(2026, 3, 2, 7))
    gpu = env.workspace.add_cluster("gpu-lab", tags={"group": "group_01"}, spec={"node_type_id": "Custom_GPU_X9"})
    env.workspace.session(gpu, local(2026, 3, 2, 8), local(2026, 3, 2, 9))
    env.polls(local(2026, 3, 2, 8), local(2026, 3, 2, 9, 15))
    env.close_day(local(2026, 3, 3, 0, 7))
    report = daily_report(date(2026, 3, 2), env.settings)
    row = next(r for r in report.rows if r.cluster_name == "gpu-lab")
    assert row.used_minutes == 60 and row.cost is None and report.unpriced == ["Custom_GPU_X9"]
    text = bundle(report, env.settings, local(2026, 3, 3, 9)).text
    assert "Cost not estimated for node types missing from the price table: Custom_GPU_X9" in text
