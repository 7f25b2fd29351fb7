"""Values and files that cannot hurt: numbers that pass validation never switch enforcement off,
two courses never share a ledger, secrets in URLs are never printed, http:// only to this
machine, every CSV cell is inert, every file the product writes is private and written through
no planted link. Each through the real CLI or job, as a subprocess where the exit code matters."""
import csv
import io
import json
import os
import stat
import subprocess
import sys

import pytest

from conftest import ROOT, course, local

POLL = "databricks.poll_clusters"


def run(module, *args, env, timeout=60):
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env={"PATH": os.environ["PATH"], **env},
                          capture_output=True, text=True, timeout=timeout)


def base(tmp_path, **extra):
    return {"HOME": str(tmp_path), "DATABRICKS_HOST": "http://127.0.0.1:9", "DATABRICKS_TOKEN": "x",
            "CLUSTER_UPTIMES_DB": str(tmp_path / "l.db"), "EMAIL_TRANSPORT": "file", **extra}


@pytest.mark.parametrize("value", ["1e17", "inf", "1e308", "nan"])
def test_a_policy_number_out_of_range_is_exit_2_at_its_line_not_an_overflow(tmp_path, value):
    policy = tmp_path / "policy.toml"
    policy.write_text(f"[daily]\nwarn_minutes = 100\nmax_minutes = {value}\n")
    r = run(POLL, env=base(tmp_path, QUOTA_POLICY_FILE=str(policy)))
    assert r.returncode == 2, r.stderr
    assert f"{policy}:3: daily.max_minutes" in r.stderr and "at most 1440" in r.stderr
    assert "Traceback" not in r.stderr and "OverflowError" not in r.stderr


@pytest.mark.parametrize("var, value", [("MAIL_BUDGET_SECONDS", "inf"), ("MAIL_BUDGET_SECONDS", "nan"),
                                        ("DATABRICKS_MAX_UPTIME", "1e17"), ("POLL_DEADLINE_SECONDS", "inf")])
def test_an_environment_number_out_of_range_names_the_variable(tmp_path, var, value):
    r = run(POLL, env=base(tmp_path, **{var: value}))
    assert r.returncode == 2 and var in r.stderr and "Traceback" not in r.stderr


def test_a_price_table_with_an_impossible_price_is_refused(tmp_path):
    table = tmp_path / "prices.json"
    table.write_text(json.dumps({"dbu_price": float("inf"), "node_types": {"Standard_DS3_v2": {
        "dbu_per_hour": 0.75, "vm_per_hour": 0.3}}}).replace("Infinity", "1e999"))
    r = run(POLL, env=base(tmp_path, PRICE_TABLE_FILE=str(table)))
    assert r.returncode == 2 and "PRICE_TABLE_FILE" in r.stderr and "not a price" in r.stderr


def test_two_courses_on_one_ledger_file_are_refused(tmp_path):
    courses = tmp_path / "courses.toml"
    courses.write_text('[courses.aa]\ndb_path = "{p}"\n\n[courses.bb]\nhost = "http://localhost:9"\n'
                       'token_env = "B_TOKEN"\ndb_path = "{p}"\n'.format(p=tmp_path / "shared.db"))
    r = run("databricks.main", "--cluster_usage",
            env=base(tmp_path, TEACHINGLAB_COURSES_FILE=str(courses), B_TOKEN="y"))
    assert r.returncode == 2 and f"{courses}:7: courses.bb.db_path: the same ledger as courses.aa" in r.stderr


def test_two_courses_on_one_sqlite_url_get_a_file_each(tmp_path):
    from databricks.teachinglab.cli.courses import read_courses
    courses = tmp_path / "courses.toml"
    courses.write_text('[courses.aa]\n\n[courses.bb]\nhost = "http://localhost:9"\ntoken_env = "B_TOKEN"\n')
    found = read_courses(base(tmp_path, TEACHINGLAB_COURSES_FILE=str(courses), B_TOKEN="y",
                              DATABASE_URL=f"sqlite:///{tmp_path / 'lab.db'}"))
    assert [c.settings.ledger.db_path.name for c in found] == ["lab-aa.db", "lab-bb.db"]
    assert len({c.settings.ledger.lock_path for c in found}) == 2


def test_a_course_token_variable_must_end_in_token(tmp_path):
    courses = tmp_path / "courses.toml"
    courses.write_text('[courses.aa]\nhost = "https://adb-1.azuredatabricks.net"\ntoken_env = "SMTP_PASSWORD"\n')
    r = run("databricks.main", "--cluster_usage",
            env=base(tmp_path, TEACHINGLAB_COURSES_FILE=str(courses), SMTP_PASSWORD="hunter2-secret"))
    assert r.returncode == 2 and "must be a variable name ending in _TOKEN" in r.stderr
    assert "hunter2-secret" not in r.stderr


@pytest.mark.parametrize("var, value", [
    ("DATABRICKS_HOST", "http://adb-1.azuredatabricks.net"),
    ("AZURE_EMAIL_CONNECTION_STRING", "endpoint=http://lab.communication.azure.com/;accesskey=abc"),
])
def test_plain_http_is_refused_except_to_this_machine(tmp_path, var, value):
    extra = {var: value}
    if var.startswith("AZURE"):
        extra.update(EMAIL_TRANSPORT="acs", EMAIL_SENDER="lab@uni.example")
    r = run(POLL, env=base(tmp_path, **extra))
    assert r.returncode == 2 and "uses http://" in r.stderr and "clear text" in r.stderr


def test_the_account_host_must_be_https(tmp_path):
    r = run(POLL, env=base(tmp_path, DATABRICKS_ACCOUNT_ID="00000000-0000-4000-8000-000000000001",
                           DATABRICKS_ACCOUNT_TOKEN="t", DATABRICKS_ACCOUNT_HOST="http://accounts.example.net"))
    assert r.returncode == 2 and "DATABRICKS_ACCOUNT_HOST" in r.stderr and "uses http://" in r.stderr


@pytest.mark.parametrize("url", ["postgresql://lab:Sup3r#Secr3t@127.0.0.1:9/lab",
                                 "postgresql://lab:p@ss?w0rd@127.0.0.1:9/lab",
                                 "postgresql://lab:Sup3rSecr3t@127.0.0.1:notaport/lab"])
def test_no_part_of_a_database_urls_userinfo_is_printed_however_it_parses(tmp_path, url):
    r = run(POLL, env=base(tmp_path, DATABASE_URL=url))
    out = r.stdout + r.stderr
    assert r.returncode in (2, 4) and "Traceback" not in out
    for part in ("Sup3r", "Secr3t", "p@ss", "w0rd", "lab:Sup", "lab:p"):
        assert part not in out, out


def test_migrate_ledger_refuses_a_course_name_that_is_not_a_name(tmp_path):
    r = run("databricks.main", "--migrate_ledger", str(tmp_path / "a.db"), str(tmp_path / "b.db"), "--course",
            'x"; DROP SCHEMA public; --', env={"HOME": str(tmp_path)})
    assert r.returncode == 2 and "a course name is lowercase letters" in r.stderr


@pytest.mark.postgresql_only
def test_a_migrate_dry_run_creates_no_schema(tmp_path, database_urls):
    import psycopg2
    from datetime import datetime, timezone
    from databricks.teachinglab.adapters.ledger.models import open_ledger
    open_ledger(db_path=tmp_path / "source.db", database_url=None, now=datetime.now(timezone.utc)).close()
    target = database_urls()
    r = run("databricks.main", "--migrate_ledger", str(tmp_path / "source.db"), target, "--course", "ml", "--dry-run",
            env={"HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    con = psycopg2.connect(target)
    try:
        with con.cursor() as cur:
            cur.execute("SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'course_ml'")
            assert cur.fetchone()[0] == 0
    finally:
        con.close()


def test_csvs_the_product_writes_cannot_run_as_formulas(tmp_path):
    moodle = tmp_path / "moodle.csv"
    moodle.write_text('Group,Email address,First name,Last name\n'
                      '"=HYPERLINK(""http://x"")",a@uni.edu,@SUM(1),-2+3\n'
                      'Team B,b@uni.edu,"=cmd|\' /C calc\'!A0",Plain\n')
    out = tmp_path / "users.csv"
    r = run("databricks.main", "--convert_moodle", str(moodle), "-o", str(out), env={"HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert "starts like a spreadsheet formula" in r.stderr
    cells = [c for row in csv.reader(io.StringIO(out.read_text())) for c in row]
    assert cells and not any(c.startswith(("=", "+", "-", "@", "\t", "\r")) for c in cells)
    assert "'=HYPERLINK(\"http://x\")" in cells and "'@SUM(1)" in cells and "'-2+3" in cells


def _as_the_cli_sees_it(env, monkeypatch) -> None:
    """The lab's settings in the process environment, where the in-process CLI reads them."""
    for key, value in env.env.items():
        monkeypatch.setenv(key, value)


@pytest.mark.sqlite_only
def test_simulation_csv_cells_are_inert_and_files_are_private(make_env, tmp_path, monkeypatch):
    from freezegun import freeze_time
    from databricks import main as cli
    env = make_env(local(2026, 3, 2, 7))
    scenario = course(1, 1)
    scenario["groups"][0]["name"] = "=HYPERLINK(1)"
    scenario["clusters"][0]["group"] = "=HYPERLINK(1)"
    env.ids = env.seed(scenario)
    env.workspace.session(env.ids["cluster_01"], local(2026, 3, 2, 8), local(2026, 3, 2, 9))
    env.polls(local(2026, 3, 2, 8), local(2026, 3, 2, 9, 15))
    _as_the_cli_sees_it(env, monkeypatch)
    policy = tmp_path / "p.toml"
    policy.write_text("[daily]\nwarn_minutes = 20\nmax_minutes = 30\n")
    out = tmp_path / "sim"
    with freeze_time(local(2026, 3, 3, 8), tick=True):
        assert cli.main(["--simulate", str(policy), "--out", str(out)]) == 0
    text = (out / "simulation.csv").read_text(encoding="utf-8-sig")
    assert "'=HYPERLINK(1)" in text and "\n=HYPERLINK" not in text
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in out.iterdir())


@pytest.mark.sqlite_only
def test_report_files_are_private_and_a_planted_link_is_replaced_not_followed(make_env, tmp_path, monkeypatch):
    from freezegun import freeze_time
    from databricks import main as cli
    env = make_env(local(2026, 3, 2, 7))
    env.ids = env.seed(course(1, 1))
    env.poll(local(2026, 3, 2, 8))
    _as_the_cli_sees_it(env, monkeypatch)
    out = tmp_path / "report-out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("do not touch")
    (out / "report.csv").symlink_to(victim)     # planted by someone who can write the folder
    with freeze_time(local(2026, 3, 2, 9), tick=True):
        assert cli.main(["--report", "--out", str(out)]) == 0
    assert victim.read_text() == "do not touch"
    assert not (out / "report.csv").is_symlink() and stat.S_IMODE((out / "report.csv").stat().st_mode) == 0o600
    fresh = tmp_path / "fresh" / "deeper"
    with freeze_time(local(2026, 3, 2, 9), tick=True):
        assert cli.main(["--report", "--out", str(fresh)]) == 0
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700 and stat.S_IMODE(fresh.parent.stat().st_mode) == 0o700


@pytest.mark.sqlite_only
def test_mail_files_are_private(make_env):
    env = make_env(local(2026, 3, 2, 7))
    env.ids = env.seed(course(1, 1))
    env.workspace.session(env.ids["cluster_01"], local(2026, 3, 2, 8), None)
    env.polls(local(2026, 3, 2, 8), local(2026, 3, 2, 15))
    files = list((env.tmp / "mail").glob("*.eml"))
    assert files and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files)
    assert stat.S_IMODE((env.tmp / "mail").stat().st_mode) == 0o700


def test_import_notebooks_refuses_manifest_entries_outside_the_backup(make_env, tmp_path, monkeypatch):
    import hashlib
    from freezegun import freeze_time
    from databricks import main as cli
    env = make_env(local(2026, 3, 2, 7))
    env.seed(course(1, 1))
    _as_the_cli_sees_it(env, monkeypatch)
    backup = tmp_path / "backup"
    backup.mkdir()
    secret = tmp_path / ".env"
    secret.write_text("DATABRICKS_TOKEN=dapi-top-secret\n")
    entry = {"path": "/Users/student011@students.example.edu/stolen", "kind": "NOTEBOOK", "language": "PYTHON",
             "format": "SOURCE", "file": "../.env", "size": 31, "status": "exported",
             "sha256": hashlib.sha256(secret.read_bytes()).hexdigest()}
    (backup / "manifest.json").write_text(json.dumps({"files": [entry], "skipped": []}))
    with freeze_time(local(2026, 3, 2, 8), tick=True):
        assert cli.main(["--import_notebooks", str(backup)]) == 1
    assert env.workspace.object_status("/Users/student011@students.example.edu/stolen") is None
