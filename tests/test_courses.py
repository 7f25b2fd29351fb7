"""Many courses from one deployment (TEACHINGLAB_COURSES_FILE): two emulated workspaces, one
poll for both, each course with its own limits, ledger and recipients; one failing workspace never
stops the other; the admin CLI covers every course, or the one --course names; a bad courses
file is exit 2 with file:line: key."""
import json
import os
import subprocess
import sys
from datetime import datetime, timezone

import pytest

from conftest import ROOT, course, evening_zone, timedelta

pytestmark = pytest.mark.timeout(300)

COURSES = """\
[courses.bigdata]
host = "{a}"
token_env = "BIGDATA_TOKEN"
warn_minutes = 100
max_minutes = 150
admin_email = "bigdata-staff@uni.example"

[courses.ml]
host = "{b}"
token_env = "ML_TOKEN"
report_recipient = "ml-reports@uni.example"
"""


@pytest.fixture
def two(make_env, tmp_path):
    """Course bigdata on workspace A (150-minute days), course ml on workspace B (the
    environment's 480); in each, group_01's cluster has run for two hours."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    zone = evening_zone(now)
    a, b = make_env(now - timedelta(hours=10), QUOTA_TIMEZONE=zone), make_env(now - timedelta(hours=10))
    for e in (a, b):
        e.ids = e.seed(course(1, 1))
        e.workspace.session(e.ids["cluster_01"], now - timedelta(hours=2), None)
        e.at(now)
    path = tmp_path / "courses.toml"
    path.write_text(COURSES.format(a=a.server.url, b=b.server.url))
    env = {**a.env, "PATH": os.environ["PATH"], "TEACHINGLAB_COURSES_FILE": str(path),
           "BIGDATA_TOKEN": "sandbox-token", "ML_TOKEN": "sandbox-token"}
    env.pop("DATABRICKS_HOST")
    env.pop("DATABRICKS_TOKEN")
    return a, b, env, path


def run(env, module, *args, timeout=120):
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def usage(env, *args) -> list[dict]:
    r = run(env, "databricks.main", "--cluster_usage", "--json", *args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def sent(a) -> list[str]:
    folder = a.tmp / "mail"
    return sorted(p.read_text().split("\nTo: ", 1)[1].split("\n", 1)[0] + " " + p.name
                  for p in folder.glob("*.eml")) if folder.exists() else []


def test_one_poll_measures_every_course_with_its_own_limits_and_ledger(two):
    a, b, env, _ = two
    r = run(env, "databricks.poll_clusters")
    assert r.returncode == 0, r.stderr
    assert "[bigdata]" in r.stderr and "[ml]" in r.stderr  # each line names its course
    rows = usage(env)
    assert sorted((row["course"], row["cluster_id"]) for row in rows) == \
        sorted([("bigdata", a.ids["cluster_01"]), ("ml", b.ids["cluster_01"])])
    by_course = {row["course"]: row for row in rows}
    assert by_course["bigdata"]["max_minutes"] == 150 and by_course["ml"]["max_minutes"] == 480
    assert by_course["bigdata"]["warned"] and not by_course["ml"]["warned"]  # 120 of 150 vs. 120 of 480
    assert all(119 * 60 <= row["used_seconds"] <= 122 * 60 for row in rows)
    warnings = [m for m in sent(a) if "warning" in m]
    assert len(warnings) == 1 and "bigdata-staff@uni.example" in open(a.tmp / "mail" / warnings[0].split()[-1]).read()
    only = usage(env, "--course", "ml")
    assert [row["course"] for row in only] == ["ml"]
    # a second poll of both counts nothing twice and sends nothing again
    assert run(env, "databricks.poll_clusters").returncode == 0
    assert all(row["used_seconds"] <= 123 * 60 for row in usage(env)) and len([m for m in sent(a) if "warning" in m]) == 1


def test_a_failing_workspace_never_stops_the_other_course(two):
    from databricks.sandbox import Fault
    a, b, env, _ = two
    b.workspace.inject(Fault(method="GET", path="/clusters/list", status=500, times=None))
    r = run(env, "databricks.poll_clusters")
    assert r.returncode == 3, r.stderr  # the worst course's code: ml's workspace cannot be used
    assert "Traceback" not in r.stderr and "ml=3" in r.stderr and "bigdata=0" in r.stderr
    rows = usage(env, "--course", "bigdata")
    assert rows and rows[0]["warned"] and rows[0]["used_seconds"] >= 119 * 60


def test_the_nightly_close_reports_each_course_to_its_own_recipients(two):
    a, b, env, _ = two
    assert run(env, "databricks.poll_clusters").returncode == 0
    for e in (a, b):  # past local midnight in both (the close reads the real clock: --at moves it)
        e.at(e.now + timedelta(hours=5))
    at = a.now.isoformat()
    r = run(env, "databricks.end_of_day_operations", "--at", at)
    assert r.returncode == 0, r.stderr
    reports = [m for m in sent(a) if "report" in m]
    recipients = sorted(m.split()[0] for m in reports)
    # ml names its own; bigdata has none, so the environment's REPORT_RECIPIENT_EMAIL applies
    assert recipients == ["ml-reports@uni.example", "reports@example.edu"]
    assert sorted(m.split()[1].split("_", 1)[0] for m in reports) == ["bigdata", "ml"]  # keys scoped by course
    history = json.loads(run(env, "databricks.main", "--history", "--json").stdout)
    assert sorted({row["course"] for row in history}) == ["bigdata", "ml"]
    out = a.tmp / "reports"
    r = run(env, "databricks.main", "--report", "--at", at, "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "== course bigdata ==" in r.stdout and "== course ml ==" in r.stdout
    assert (out / "bigdata" / "report.csv").exists() and (out / "ml" / "report.csv").exists()


def test_a_command_on_one_cluster_finds_its_course_or_asks_for_it(two):
    """--grant names a cluster: the course whose ledger has it is the one; a name both courses
    have (each workspace has a cluster_01) needs --course; a roster command always does."""
    a, b, env, _ = two
    b.workspace.add_cluster("ml-extra", tags={"group": "group_01"},
                            acl=[{"group_name": "group_01", "permission_level": "CAN_RESTART"}])
    assert run(env, "databricks.poll_clusters").returncode == 0
    r = run(env, "databricks.main", "--grant", "30", "--cluster", "cluster_01")
    assert r.returncode == 2 and "is in bigdata, ml" in r.stderr and "--course NAME" in r.stderr
    r = run(env, "databricks.main", "--grant", "30", "--cluster", "no-such-cluster")
    assert r.returncode == 2 and "in no course's ledger" in r.stderr
    r = run(env, "databricks.main", "--grant", "30", "--cluster", "ml-extra", "--reason", "lab exam")
    assert r.returncode == 0, r.stderr
    rows = {row["course"]: row for row in usage(env)}
    assert rows["ml"]["max_limit"] == 480 + 30 and rows["bigdata"]["max_limit"] == 150
    r = run(env, "databricks.main", "--create_from_csv", "users.csv")
    assert r.returncode == 2 and "acts on one course" in r.stderr and "bigdata, ml" in r.stderr
    r = run(env, "databricks.main", "--cluster_usage", "--course", "physics")
    assert r.returncode == 2 and "no such course" in r.stderr and "bigdata, ml" in r.stderr


@pytest.mark.parametrize("mistake, expected", [
    ('[courses.ml]\nhost = "{b}"\ntoken_env = "ML_TOKEN"\ncolour = "blue"\n', ":4: courses.ml.colour: unknown key"),
    ('[courses.ml]\nhost = "{b}"\ntoken_env = "ML_TOKEN"\n[courses.ml]\nmax_minutes = 10\n',
     ":4: not valid TOML"),
    ('[courses.ml]\nhost = "{b}"\ntoken_env = "NO_SUCH_TOKEN"\n',
     ":3: courses.ml.token_env: NO_SUCH_TOKEN is not set"),
    ('[courses.ml]\nhost = "{b}"\nprofile = "ml"\nmax_minutes = "lots"\n', ":4: courses.ml.max_minutes: DATABRICKS_MAX_UPTIME"),
    ('[courses.ml]\nhost = "{b}"\ntoken_env = "ML_TOKEN"\n[courses.ml2]\nhost = "{b}"\ntoken_env = "ML_TOKEN"\n',
     ":5: courses.ml2.host: the same workspace as courses.ml"),
])
def test_a_bad_courses_file_exits_2_naming_file_line_and_key(two, mistake, expected):
    a, b, env, path = two
    path.write_text(mistake.format(b=b.server.url))
    r = run(env, "databricks.poll_clusters")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"{path}{expected}" in r.stderr, r.stderr
    assert "sandbox-token" not in r.stderr
    if "twice" in r.stderr or "TOML" in expected:
        assert "listed twice" in r.stderr


def test_a_hanging_workspace_is_cut_at_the_deadline_and_the_other_course_is_done(two):
    """ml's workspace answers nothing for a minute; the run's deadline (5 s here) ends ml's part,
    while bigdata is measured and warned as usual."""
    a, b, env, _ = two
    b.workspace.latency = 60.0
    r = run({**env, "POLL_DEADLINE_SECONDS": "5"}, "databricks.poll_clusters", timeout=60)
    b.workspace.latency = 0.0
    assert r.returncode in (1, 3) and "Traceback" not in r.stderr, r.stderr
    assert "bigdata=0" in r.stderr and "ml=0" not in r.stderr
    rows = usage(env, "--course", "bigdata")
    assert rows and rows[0]["warned"]


def test_the_crontab_closes_hourly_when_the_courses_live_in_different_zones(two):
    """bigdata's days are in the environment's zone, ml's in Pacific/Auckland: no single 00:07
    fits both, so the close runs at :07 every hour; one zone keeps the nightly line."""
    a, b, env, path = two
    one = run(env, "databricks.main", "--crontab")
    assert one.returncode == 0 and "\n7 0 * * *" in one.stdout and "7 * * * *" not in one.stdout
    path.write_text(path.read_text() + 'timezone = "Pacific/Auckland"\n')  # the last table is ml's
    many = run(env, "databricks.main", "--crontab")
    assert many.returncode == 0, many.stderr
    assert "\n7 * * * *" in many.stdout and "7 0 * * *" not in many.stdout and "Pacific/Auckland" in many.stdout
    assert many.stdout.count("end_of_day_ops.sh") == 1 and "periodic_poll.sh" in many.stdout


def test_a_course_can_authenticate_with_a_profile(two, tmp_path):
    """ml names a databricks-sdk profile (unified auth) instead of a host and token variable."""
    a, b, env, path = two
    config = tmp_path / "databrickscfg"
    config.write_text(f"[ml]\nhost = {b.server.url}\ntoken = sandbox-token\n")
    path.write_text(COURSES.format(a=a.server.url, b=b.server.url).split("[courses.ml]")[0]
                    + '[courses.ml]\nprofile = "ml"\n')
    env = {**env, "DATABRICKS_CONFIG_FILE": str(config)}
    env.pop("ML_TOKEN")
    r = run(env, "databricks.poll_clusters")
    assert r.returncode == 0, r.stderr
    assert sorted(row["course"] for row in usage(env)) == ["bigdata", "ml"]
    assert "sandbox-token" not in r.stderr
