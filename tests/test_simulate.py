"""--simulate: the recorded sessions replayed under another policy, through the real CLI, against
a ledger the emulated workspace filled (real WorkspaceClient): stops, minutes denied, cost saved,
the nearest stop to a top-up window, the current policy beside it, and files. The ledger is never
changed."""
import hashlib
import json
from datetime import date

import pytest
from freezegun import freeze_time

from conftest import course, ledger_dump, local
from databricks.teachinglab.core.simulate import Piece, stop_instant

DAYS = [(2026, 3, 2), (2026, 3, 3), (2026, 3, 4)]   # Monday to Wednesday

TIGHT = """\
[daily]
warn_minutes = 60
max_minutes = 120

[weekly]
max_minutes = 300

[[topup]]
groups = ["group_01"]
minutes = 30
from = 2026-03-04
until = 2026-03-04
reason = "deadline"
"""


def test_the_stop_instant_is_where_the_summed_rate_reaches_the_limit():
    t0 = local(2026, 3, 2, 8)
    two = [Piece(t0, local(2026, 3, 2, 10), 1.0, 0.0), Piece(local(2026, 3, 2, 9), local(2026, 3, 2, 10), 1.0, 0.0)]
    # 60 min alone, then both clusters: 90 minutes of quota are reached at 09:15
    assert stop_instant(two, 90 * 60_000) == local(2026, 3, 2, 9, 15)
    assert stop_instant(two, 200 * 60_000) is None


@pytest.fixture
def filled(make_env, tmp_path, monkeypatch):
    """Three days: group_01 runs 08:00-11:00 each day (180 min), group_02 08:00-09:00 (60 min),
    under the default daily 400/480: nobody was stopped."""
    e = make_env(local(*DAYS[0], 7))
    ids = e.seed(course(2, 2))
    for key, value in e.env.items():
        monkeypatch.setenv(key, value)
    for i, day in enumerate(DAYS):
        e.workspace.session(ids["cluster_01"], local(*day, 8), local(*day, 11))
        e.workspace.session(ids["cluster_02"], local(*day, 8), local(*day, 9))
        e.polls(local(*day, 8), local(*day, 11, 15))
        e.close_day(local(day[0], day[1], day[2] + 1, 0, 7))
    e.policy = tmp_path / "tight.toml"
    e.policy.write_text(TIGHT)
    return e


def ledger_digest(env) -> str:
    return hashlib.sha256(repr(ledger_dump(env)).encode()).hexdigest()


def test_a_tighter_policy_shows_its_stops_denied_minutes_and_savings_against_the_current(filled, capsys, tmp_path):
    from databricks import main as cli
    before = ledger_digest(filled)
    with freeze_time(local(2026, 3, 5, 9)):
        assert cli.main(["--simulate", str(filled.policy), "--json", "--out", str(tmp_path / "sim")]) == 0
    rows = {r["group"]: r for r in json.loads(capsys.readouterr().out)}
    one, two = rows["group_01"], rows["group_02"]
    # Mon, Tue stopped at 120 (60 denied each); Wed: 300-240 = 60 left of the week + 30 of top-up
    assert one["stops"] == 3 and one["denied_minutes"] == 60 + 60 + 90
    assert one["stop_days"] == ["2026-03-02", "2026-03-03", "2026-03-04"]
    assert one["cost_saved_usd"] > 0
    assert one["current"] == {"stops": 0, "denied_minutes": 0, "denied_amount": 0, "cost_saved_usd": 0,
                              "stop_days": []}
    assert one["recorded_stops"] == 0
    [window] = one["nearest_stops"]
    assert window["window"] == "2026-03-04..2026-03-04" and window["days_away"] == 0
    assert window["nearest_stop"].startswith("2026-03-04T09:30")
    assert (two["stops"], two["denied_minutes"]) == (0, 0)
    assert {p.name for p in (tmp_path / "sim").iterdir()} == {"simulation.html", "simulation.csv", "simulation.png"}
    assert (tmp_path / "sim" / "simulation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "group_01,3,210," in (tmp_path / "sim" / "simulation.csv").read_text(encoding="utf-8-sig")
    assert ledger_digest(filled) == before   # the ledger is untouched


def test_the_window_and_the_text_summary(filled, capsys):
    from databricks import main as cli
    with freeze_time(local(2026, 3, 5, 9)):
        assert cli.main(["--simulate", str(filled.policy), "--from", "2026-03-03", "--to", "2026-03-03"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("group_01"))
    assert line.split()[1:3] == ["1", "(0)"]    # only Tuesday is reported: one stop, none now
    assert "cannot show the demand" in out


def test_a_bad_candidate_policy_exits_2_with_its_line(filled, capsys, tmp_path):
    from databricks import main as cli
    bad = tmp_path / "bad.toml"
    bad.write_text("[daily]\nwarn_minutes = 60\nmax_minutes = 50\n")
    assert cli.main(["--simulate", str(bad)]) == 2
    assert f"{bad}:2: daily.warn_minutes" in capsys.readouterr().err


def test_dry_run_prints_the_comparison_and_writes_no_file(filled, capsys, tmp_path):
    from databricks import main as cli
    with freeze_time(local(2026, 3, 5, 9)):
        assert cli.main(["--simulate", str(filled.policy), "--out", str(tmp_path / "none"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "group_01" in out and "nothing written" in out
    assert not (tmp_path / "none").exists()
