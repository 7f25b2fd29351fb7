"""`make demo` runs the whole simulated day and checks itself; here it runs quietly."""
from databricks.devtools import demo
from databricks.teachinglab.adapters.ledger.models import OutboxMessage


def test_demo_day_goes_as_described(tmp_path, capsys):
    assert demo.main(["--out", str(tmp_path / "demo"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out and out.count("ok ") == 25
    assert (tmp_path / "demo" / "timeline.log").read_text().count("terminated") == 3 + 1  # part 2: group_02
    assert len(list((tmp_path / "demo" / "mail").glob("*.eml"))) == 7
    assert len(list((tmp_path / "demo" / "dbu" / "mail").glob("*.eml"))) == 2   # part 2: a warning, a stop
    # Part 3's ledger is the one bound last: every message it queued was written out
    assert len(list((tmp_path / "demo" / "policy" / "mail").glob("*.eml"))) == OutboxMessage.select().count() > 0
    assert (tmp_path / "demo" / "status-page-group_02.png").exists() or "no Chromium here" in out


def test_the_mail_bench_runs_and_every_message_it_queues_is_sent():
    """`make bench` is not run by the suite (timings are not asserted), but its mail part must
    still work: it renders real warnings, so a template change that breaks it shows here."""
    from databricks.devtools import bench
    results = bench.measure_mail(2)
    assert results["acs"][1] == 2 and results["acs stalled, 3 s budget"][1] == 0
    assert [sent for name, (_, sent) in results.items() if name.startswith("smtp")] == [2]


def test_the_simulator_bench_replays_a_small_semester():
    """`make bench` times --simulate over 300 clusters x 120 days; here a small one must run and
    find the stops its tight policy implies (the timing itself is not asserted)."""
    from databricks.devtools.bench_simulate import measure_simulator
    r = measure_simulator(3, 14)
    assert r["groups"] == 3 and r["sessions"] > 0 and r["stops"] > 0


def test_the_courses_bench_polls_every_course_with_exit_0():
    """`make bench` times one poll over 10 courses; here 2 small ones must poll cleanly, as a real
    process over a real courses file (the timing itself is not asserted)."""
    from databricks.devtools.bench_courses import measure_courses
    r = measure_courses(2, 6, 2, 0.0)
    assert [r["first"][1], r["steady"][1], r["one_course"][1]] == [0, 0, 0]
