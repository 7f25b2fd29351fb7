"""Issue 21, an admin's first week: mistakes caught (misspelt settings, abbreviated flags, a student
in two groups, an unbalanced quote), every failure one clear line and an alert that says what to
do (and where the log is), the limits every view shows are the ones the poll applied, and the
product installs like any Python tool. Each test runs the real entry points against the emulated
workspace; timings are in `make bench`."""
import ast
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from freezegun import freeze_time

from conftest import ROOT, course, local
from databricks import main as cli
from databricks.teachinglab.cli.variables import DEVELOPMENT, PRODUCT, SDK, misspelt_lines, near_misses

# Read by the code but not the product's settings: the account's home, the OS zone, Azure's own
# identity variable (an auth alternative) and an argparse metavar.
NOT_SETTINGS = {"HOME", "TZ", "XDG_DATA_HOME", "AZURE_CLIENT_ID", "ISO_TIME"}


def run(env: dict, *args: str, timeout: int = 120, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env={**env, "PATH": os.environ["PATH"]},
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def lab(make_env):
    e = make_env(local(2026, 3, 2, 7))
    e.ids = e.seed(course(2, 2))
    return e


# -- the configuration table and misspelt settings ---------------------------------------------------

def _readme_settings() -> set[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1])}


def _settings_the_code_reads() -> set[str]:
    """Every string constant in the configuration code that is a variable name (docstrings aside),
    and every ${VAR:-default} the wrappers read."""
    found = set()
    for path in ("cli/config.py", "cli/courses.py", "core/units.py"):
        tree = ast.parse((ROOT / "databricks" / "teachinglab" / path).read_text())
        docs = {id(n.body[0].value) for n in ast.walk(tree)
                if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef)) and n.body
                and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        found |= {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
                  and id(n) not in docs and re.fullmatch(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+", n.value)}
    for script in (ROOT / "scripts").glob("*.sh"):
        found |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]+):-", script.read_text()))
    return found - (SDK - PRODUCT) - DEVELOPMENT - NOT_SETTINGS


def test_the_readme_configuration_table_lists_exactly_the_settings_the_code_reads():
    readme = _readme_settings()
    assert readme == PRODUCT, (f"in the README only: {sorted(readme - PRODUCT)}; "
                               f"missing from the README: {sorted(PRODUCT - readme)}")
    code = _settings_the_code_reads()
    assert code == PRODUCT, f"read but not listed: {sorted(code - PRODUCT)}; listed but never read: {sorted(PRODUCT - code)}"


def test_the_readme_defaults_are_the_code_defaults():
    """Each plain default in the table against what load_settings gives when the variable is
    unset (COURSE_NAME: required by --create_from_csv, `course` for the jobs)."""
    from databricks.teachinglab.cli.config import load_settings
    section = (ROOT / "README.md").read_text().split("\n## Configuration", 1)[1].split("\n## ", 1)[0]
    default = {m.group(1): m.group(2).strip() for m in re.finditer(r"^\| `([A-Z_0-9]+)` \|[^|]*\| ([^|]*) \|$",
                                                                     section, re.M)}
    s = load_settings({"DATABRICKS_HOST": "https://adb-1.azuredatabricks.net", "DATABRICKS_TOKEN": "t", "HOME": "/h"})
    code = {"DATABRICKS_WARN_UPTIME": s.quota.warn_limit, "DATABRICKS_MAX_UPTIME": s.quota.max_limit,
            "WAREHOUSE_WAIT_SECONDS": s.workspace.warehouse_wait_seconds, "WAREHOUSE_START": s.workspace.warehouse_start,
            "MAIL_BUDGET_SECONDS": s.mail.budget_seconds, "API_PARALLELISM": s.workspace.api_parallelism,
            "POLL_INTERVAL_MINUTES": s.workspace.poll_interval_seconds // 60,
            "POLL_DEADLINE_SECONDS": s.workspace.poll_deadline_seconds, "EMAIL_TRANSPORT": s.mail.transport,
            "QUOTA_UNIT": s.quota.unit.name, "SERVERLESS_NOTEBOOKS": s.workspace.serverless_notebooks,
            "CLUSTER_SPARK_VERSION": s.cluster.spark_version,
            "CLUSTER_AUTOTERMINATION_MINUTES": s.cluster.autotermination_minutes}
    for name, value in code.items():
        shown = f"{value:g}" if isinstance(value, float) else str(value)
        assert default[name].strip("`") == shown, name
    assert "`course` when unset" in default["COURSE_NAME"] and s.cluster.course == "course"
    assert "required by `--create_from_csv`" in default["COURSE_NAME"]
    timeouts = next(line for line in section.splitlines() if line.startswith("| `POLL_TIMEOUT_SECONDS`"))
    assert timeouts.rstrip(" |").endswith("30, 600")
    assert "${POLL_TIMEOUT_SECONDS:-30}" in (ROOT / "scripts" / "periodic_poll.sh").read_text()
    assert "${END_OF_DAY_TIMEOUT_SECONDS:-600}" in (ROOT / "scripts" / "end_of_day_ops.sh").read_text()


def test_the_sdk_variables_are_the_ones_the_installed_sdk_reads():
    """A setting of databricks-sdk's unified auth is never taken for a typo of ours."""
    from databricks.sdk.config import Config
    assert SDK == {a.env for a in Config.attributes() if a.env}


@pytest.mark.parametrize("given, meant", [("DATABRICKS_MAX_UPTIM", "DATABRICKS_MAX_UPTIME"),
                                          ("QUOTA_TIMEZON", "QUOTA_TIMEZONE"), ("SMTP_PASWORD", "SMTP_PASSWORD"),
                                          ("STATUS_PAGE_SECRT", "STATUS_PAGE_SECRET"),
                                          ("TEACHINGLAB_COURSE_FILE", "TEACHINGLAB_COURSES_FILE")])
def test_a_near_miss_of_a_setting_is_named_with_the_setting_meant(given, meant):
    assert near_misses([given, "DATABRICKS_CLIENT_SECRET", "PATH", "DATABRICKS_BUNDLE_ROOT"]) == [(given, meant)]
    line = misspelt_lines({}, {given: "30"}, "/opt/lab/.env")[0]
    assert f"{given} (set in /opt/lab/.env)" in line and f"did you mean {meant}?" in line


@pytest.mark.sqlite_only
def test_a_misspelt_variable_is_a_warning_and_with_strict_config_exit_2(lab):
    env = {**lab.env, "DATABRICKS_MAX_UPTIM": "30"}
    warned = run(env, "databricks.poll_clusters", "--dry-run")
    assert warned.returncode == 0, warned.stderr
    assert ("DATABRICKS_MAX_UPTIM (set in the environment) is not a setting, so it is ignored: did you mean "
            "DATABRICKS_MAX_UPTIME?") in warned.stderr
    calls = len(lab.workspace.requests)
    for args in (["databricks.poll_clusters", "--strict-config"], ["databricks.main", "--cluster_usage", "--strict-config"]):
        strict = run(env, *args)
        assert strict.returncode == 2 and "did you mean DATABRICKS_MAX_UPTIME?" in strict.stderr
        assert "Traceback" not in strict.stderr
    assert len(lab.workspace.requests) == calls  # refused before anything ran


# -- the CLI refuses abbreviations and names unknown flags ----------------------------------------------

@pytest.mark.sqlite_only
@pytest.mark.parametrize("args, says", [
    (["databricks.main", "--purge", "--yes"], "unknown option --purge: did you mean --purge_clusters?"),
    (["databricks.main", "--print_cluster"], "unknown option --print_cluster: did you mean --print_clusters?"),
    (["databricks.main", "--frobnicate"], "unknown option --frobnicate"),
    (["databricks.poll_clusters", "--dry"], "unknown option --dry: did you mean --dry-run?"),
])
def test_an_abbreviated_or_unknown_flag_is_refused_and_named(lab, args, says):
    """Regression (issue 21): argparse ran --purge as --purge_clusters, a teardown."""
    r = run(lab.env, *args)
    assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr
    assert "one of the arguments" not in r.stderr
    assert not [q for q in lab.workspace.requests if q.method != "GET"]  # nothing deleted, nothing changed


# -- files: a student in two groups, an unbalanced quote ------------------------------------------------

@pytest.mark.sqlite_only
def test_create_from_csv_refuses_a_student_in_two_groups_at_file_and_line(lab, tmp_path):
    users = tmp_path / "users.csv"
    users.write_text("group_key,group_name,email,first_name,last_name\n"
                     "g1,Team 1,ann@uni.edu,Ann,A\ng2,Team 2,bob@uni.edu,Bob,B\ng2,Team 2,ann@uni.edu,Ann,A\n")
    before = len(lab.workspace.requests)
    r = run({**lab.env, "COURSE_NAME": "bigdata"}, "databricks.main", "--create_from_csv", str(users))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"{users}:4: ann@uni.edu is in 'g1' (line 2) and in 'g2'" in r.stderr
    assert not [q for q in lab.workspace.requests[before:] if q.method != "GET"]


@pytest.mark.parametrize("body, line, says", [
    ('1,"Team A,A,a@x.edu\n2,Team B,B,b@x.edu\n3,Team C,C,c@x.edu\n', 2, "is never closed"),
    ('1,"Team A,A,a@x.edu\n2,Team B,B,b@x.edu\n3,Team" C,C,c@x.edu\n', 2, "closes only on line 4"),
])
def test_an_unbalanced_quote_in_a_moodle_export_is_reported_where_the_field_opens(tmp_path, body, line, says):
    """Regression (issue 21): the csv module read the rest of the file as one cell, exit 0."""
    src = tmp_path / "moodle.csv"
    src.write_text("Group ID,Group Name,Member 1 Lastname,Member 1 Email\n" + body)
    out = tmp_path / "users.csv"
    r = run({"HOME": str(tmp_path)}, "databricks.main", "--convert_moodle", str(src), "-o", str(out))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"{src}:{line}: an unbalanced quote" in r.stderr and says in r.stderr
    assert not out.exists()


def test_a_quoted_name_on_two_lines_is_still_one_group(tmp_path):
    from databricks.teachinglab.core.roster import parse_roster
    roster = parse_roster('Group ID,Group Name,Member 1 Email\n1,"Team\nOne",a@x.edu\n2,"The ""B"" team",b@x.edu\n')
    assert [g.name for g in roster.groups] == ["Team\nOne", 'The "B" team'] and not roster.problems


# -- failures: one line each, what was handled, where the log is ----------------------------------------

def _alert_text(mail_dir: Path) -> str:
    found = sorted(mail_dir.glob("failure_*.eml"))
    assert len(found) == 1, [p.name for p in found]
    from email import message_from_bytes, policy
    return message_from_bytes(found[0].read_bytes(), policy=policy.default).get_body(("plain",)).get_content()


@pytest.mark.sqlite_only
def test_a_refused_token_is_one_line_with_the_fix_and_never_claims_other_clusters_were_handled(lab):
    """Regression (issue 21): "failed for 1 cluster … The other clusters were handled", and a
    traceback, when the token was wrong and nothing was handled."""
    lab.poll(local(2026, 3, 2, 8))  # the ledger exists; the next run's token is wrong
    r = run({**lab.env, "DATABRICKS_TOKEN": "not-the-token"}, "databricks.poll_clusters")
    assert r.returncode == 3
    text = _alert_text(lab.tmp / "mail")
    assert ("(the cluster list): the workspace refused the token: create a new one (User settings > Developer > "
            "Access tokens) and set DATABRICKS_TOKEN") in text
    assert "Nothing was handled this run." in text and "were handled" not in text
    assert "Traceback" not in text and "traceback" not in text
    assert "not-the-token" not in text


@pytest.mark.sqlite_only
def test_a_partial_failure_says_which_clusters_were_handled_and_which_were_not(make_env):
    from datetime import datetime, timedelta, timezone
    from conftest import evening_zone
    from databricks.sandbox import Fault
    now = datetime.now(timezone.utc).replace(microsecond=0)
    e = make_env(now - timedelta(hours=10), QUOTA_TIMEZONE=evening_zone(now))
    ids = e.seed(course(2, 1))
    e.workspace.session(ids["cluster_01"], now - timedelta(hours=9), None)
    e.at(now)
    e.workspace.inject(Fault(method="PUT", path="/permissions/", status=500, times=None))
    r = run(e.env, "databricks.poll_clusters")
    assert r.returncode == 1
    text = _alert_text(e.tmp / "mail")
    assert "cluster_01: the workspace answered with an error" in text
    assert "Handled this run (1): cluster_02." in text and "Not handled, tried again on the next run: cluster_01" in text
    assert "traceback" not in text.lower()


def test_an_unexpected_error_gets_its_traceback_below_the_summary():
    from databricks.teachinglab.adapters.mail.render import render
    from databricks.teachinglab.core.messages import FailureItem, failure_context
    from databricks.teachinglab.services.alerts import diagnose
    line, expected = diagnose(ZeroDivisionError("division by zero"))
    assert not expected and "unexpected error (ZeroDivisionError: division by zero): a bug" in line
    assert diagnose(Exception.__new__(__import__("databricks.teachinglab.core.errors",
                                                 fromlist=["x"]).DeadlineReached))[1]
    context = failure_context("poll_clusters", "2026-03-02 08:00 IST", "Asia/Jerusalem",
                              [FailureItem("cluster_07", line, "Traceback (most recent call last):\n  boom")],
                              handled=["cluster_01"], contact="admin@example.edu", log_hint="journalctl -t dbr_scripts -r")
    text = render("failure", context).text
    assert text.index("What went wrong") < text.index("Handled this run (1): cluster_01") < text.index(
        "Logs: journalctl -t dbr_scripts -r") < text.index("Traceback (most recent call last)")


@pytest.mark.parametrize("target, says", [("journald", "journalctl -t dbr_scripts -r"),
                                          ("syslog", "grep dbr_scripts /var/log/syslog"),
                                          ("file", "tail -n 100 /var/lib/lab/teachinglab.log"),
                                          ("stderr", "the run's own output")])
def test_the_log_pointer_follows_where_the_run_logs(target, says):
    from databricks.teachinglab.core.settings import LoggingSettings
    assert says in LoggingSettings(target=target, log_file=Path("/var/lib/lab/teachinglab.log")).hint


def _no_journal(env: dict, tmp_path: Path) -> dict:
    """A machine with neither journald nor syslog (a plain VM, a container): the wrapper's job
    then writes its own log file."""
    return {**env, "TEACHINGLAB_JOURNAL_SOCKET": str(tmp_path / "none-journal"),
            "TEACHINGLAB_SYSLOG_SOCKET": str(tmp_path / "none-syslog"), "TEACHINGLAB_PYTHON": sys.executable,
            "PATH": os.environ["PATH"]}


@pytest.mark.sqlite_only
def test_without_journald_or_syslog_the_wrapper_logs_to_a_file_and_cron_mails_only_failures(lab, tmp_path):
    env = _no_journal(lab.env, tmp_path)
    log = Path(lab.env["CLUSTER_UPTIMES_DB"]).parent / "teachinglab.log"
    ok = subprocess.run(["bash", str(ROOT / "scripts" / "periodic_poll.sh")], cwd=ROOT, env=env, capture_output=True,
                        text=True, timeout=120)
    assert ok.returncode == 0 and ok.stdout == "" and ok.stderr == ""  # nothing for cron to mail
    assert "poll done" in log.read_text() and log.stat().st_mode & 0o777 == 0o600
    bad = subprocess.run(["bash", str(ROOT / "scripts" / "periodic_poll.sh")], cwd=ROOT, timeout=120,
                         env={**env, "DATABRICKS_TOKEN": "not-the-token"}, capture_output=True, text=True)
    assert bad.returncode == 3 and bad.stdout == ""
    [line] = bad.stderr.splitlines()
    assert line.startswith("poll_clusters failed (exit 3): ") and "refused the credentials" in line
    assert line.endswith(f"the whole log: {log}")
    assert "refused the credentials" in log.read_text()
    assert f"Logs: tail -n 100 {log}" in _alert_text(lab.tmp / "mail")


# -- the ledger: any failure is exit 4 and one alert a day per cause ------------------------------------

class _Unwritable:
    """Make a path unwritable even for root (chattr +i), or by mode for another account."""

    def __init__(self, path: Path):
        self.path, self.root = path, os.geteuid() == 0

    def __enter__(self):
        if self.root:
            subprocess.run(["chattr", "+i", str(self.path)], check=True)
        else:
            self.mode = self.path.stat().st_mode
            self.path.chmod(0o555 if self.path.is_dir() else 0o444)
        return self

    def __exit__(self, *exc):
        if self.root:
            subprocess.run(["chattr", "-i", str(self.path)], check=True)
        else:
            self.path.chmod(self.mode)


@pytest.mark.sqlite_only
@pytest.mark.parametrize("what", ["folder", "file"])
def test_a_ledger_that_cannot_be_written_is_exit_4_and_one_alert_for_every_job_and_command(lab, tmp_path, what):
    """Regression (issue 21): a read-only ledger folder gave "unexpected error: OSError … (report
    it)", exit 1 and no alert, for the poll and --grant."""
    ledger = Path(lab.env["CLUSTER_UPTIMES_DB"])
    assert run(lab.env, "databricks.poll_clusters").returncode == 0
    (ledger.parent / "ledger.lock").unlink()  # a fresh lock file must be made, in the folder
    env = {**lab.env, "EMAIL_FILE_DIR": str(tmp_path / "alerts")}
    with _Unwritable(ledger.parent if what == "folder" else ledger):
        results = [run(env, *args) for args in (["databricks.poll_clusters"], ["databricks.end_of_day_operations"],
                                                ["databricks.main", "--grant", "10", "--cluster", "cluster_01"])]
    for r in results:
        assert r.returncode == 4, r.stderr
        assert "Traceback" not in r.stderr and "unexpected error" not in r.stderr
        assert ("cannot be opened" in r.stderr or "cannot be opened for writing" in r.stderr)
    alerts = list((tmp_path / "alerts").glob("failure_*.eml"))
    assert len(alerts) == 1  # one cause, one alert, whichever job met it first


@pytest.mark.sqlite_only
def test_a_missing_ledger_alerts_once_a_day_at_a_one_minute_cadence(lab):
    """Regression (issue 21): 28 direct alerts in 28 one-minute runs."""
    assert run(lab.env, "databricks.poll_clusters").returncode == 0
    Path(lab.env["CLUSTER_UPTIMES_DB"]).unlink()
    for minute in range(5):
        at = local(2026, 3, 2, 9, minute).isoformat()
        assert run(lab.env, "databricks.poll_clusters", "--at", at).returncode == 4
    assert run(lab.env, "databricks.main", "--cluster_usage", "--at", local(2026, 3, 2, 9, 6).isoformat()).returncode == 4
    assert len(list((lab.tmp / "mail").glob("failure_*.eml"))) == 1


@pytest.mark.sqlite_only
def test_a_direct_alert_that_cannot_be_sent_is_tried_three_times_a_day_an_hour_apart(lab, tmp_path):
    """The mail server is down as well: each try is remembered before it is made, so a run at
    every minute does not send (or try to send) at every minute."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    assert run(lab.env, "databricks.poll_clusters").returncode == 0
    Path(lab.env["CLUSTER_UPTIMES_DB"]).unlink()
    env = {**lab.env, "EMAIL_TRANSPORT": "smtp", "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port),
           "SMTP_STARTTLS": "0", "EMAIL_SENDER": "lab@example.edu"}
    tries = []
    for hh, mm in ((9, 0), (9, 1), (9, 30), (10, 1), (10, 2), (11, 5), (12, 10), (13, 15)):
        r = run(env, "databricks.poll_clusters", "--at", local(2026, 3, 2, hh, mm).isoformat())
        assert r.returncode == 4
        tries += re.findall(r"try (\d) of 3 today", r.stderr)
    assert tries == ["1", "2", "3"]
    state = json.loads((lab.tmp / ".local" / "share" / "teachinglab" / "alerts-sent.json").read_text())
    assert [v["tries"] for v in state.values()] == [3]


# -- Ctrl-C -------------------------------------------------------------------------------------------

def interruptible_child() -> None:
    """Ctrl-C as a terminal delivers it: a suite started in the background (`cmd &` in a script,
    nohup) passes SIGINT on as ignored, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.sqlite_only
@pytest.mark.parametrize("module, args", [("databricks.poll_clusters", []),
                                          ("databricks.main", ["--print_clusters"])])
def test_ctrl_c_is_one_line_and_exit_130_and_keeps_nothing_half_written(lab, module, args):
    lab.poll(local(2026, 3, 2, 8))
    lab.workspace.latency = 3.0  # the run is waiting on the workspace when Ctrl-C comes
    seen = len(lab.workspace.requests)
    process = subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT, text=True,
                               env={**lab.env, "PATH": os.environ["PATH"]}, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, preexec_fn=interruptible_child)
    give_up = time.monotonic() + 60
    while len(lab.workspace.requests) == seen and time.monotonic() < give_up:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "interrupted (Ctrl-C)" in err and "Traceback" not in err and "KeyboardInterrupt" not in err
    lab.workspace.latency = 0.0
    con = sqlite3.connect(lab.env["CLUSTER_UPTIMES_DB"])
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    again = run(lab.env, "databricks.poll_clusters")
    assert again.returncode == 0 and "did not finish" not in again.stderr  # no "killed" run to report


@pytest.mark.sqlite_only
def test_ctrl_c_during_start_up_is_one_line_and_exit_130(lab):
    process = subprocess.Popen([sys.executable, "-m", "databricks.poll_clusters"], cwd=ROOT, text=True,
                               env={**lab.env, "PATH": os.environ["PATH"]}, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, preexec_fn=interruptible_child)
    time.sleep(0.3)  # inside the imports (the SDK alone takes most of a second)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and "interrupted (Ctrl-C)" in err and "Traceback" not in err


# -- numbers that agree: the limits the poll applied -------------------------------------------------------

def test_the_limits_shown_are_the_ones_the_poll_applied_until_the_next_poll(lab, monkeypatch, capsys):
    """Regression (issue 21): after .env changed between polls, --cluster_usage showed
    "warn -449 max 30", a mix of the stored hard limit and the new settings."""
    cid = lab.ids["cluster_01"]
    lab.workspace.session(cid, local(2026, 3, 2, 8), None)
    lab.polls(local(2026, 3, 2, 8), local(2026, 3, 2, 8, 45))
    for key, value in {**lab.env, "DATABRICKS_WARN_UPTIME": "20", "DATABRICKS_MAX_UPTIME": "30"}.items():
        monkeypatch.setenv(key, value)

    def usage():
        with freeze_time(lab.now, tick=True):
            assert cli.main(["--cluster_usage", "--json"]) == 0
        return {u["cluster_name"]: u for u in json.loads(capsys.readouterr().out)}["cluster_01"]

    capsys.readouterr()
    before = usage()
    assert (before["warn_minutes"], before["max_minutes"]) == (400, 480)  # what the 08:45 poll enforced
    assert run({**lab.env, "DATABRICKS_WARN_UPTIME": "20", "DATABRICKS_MAX_UPTIME": "30"}, "databricks.poll_clusters",
               "--at", local(2026, 3, 2, 9).isoformat()).returncode == 0
    after = usage()
    assert (after["warn_minutes"], after["max_minutes"]) == (20, 30) and after["blocked"]


# -- --status_links --------------------------------------------------------------------------------

def test_status_links_prints_each_groups_page_link_and_each_opens_that_groups_page(lab, monkeypatch, capsys):
    from databricks.teachinglab.services.status import group_for_token
    lab.poll(local(2026, 3, 2, 8))
    for key, value in {**lab.env, "STATUS_PAGE_URL": "https://lab.example.edu/status"}.items():
        monkeypatch.setenv(key, value)
    capsys.readouterr()
    with freeze_time(lab.now, tick=True):
        assert cli.main(["--status_links", "--json"]) == 0
        links = json.loads(capsys.readouterr().out)
        assert cli.main(["--status_links"]) == 0
        table = capsys.readouterr().out
    assert [x["group"] for x in links] == ["group_01", "group_02"]
    settings = __import__("dataclasses").replace(lab.settings, status=__import__("dataclasses").replace(
        lab.settings.status, url="https://lab.example.edu/status"))
    for x in links:
        assert x["url"].startswith("https://lab.example.edu/status/g/") and x["url"] in table
        assert group_for_token(settings, x["url"].rsplit("/", 1)[1], lab.now) == x["group"]
    monkeypatch.delenv("STATUS_PAGE_URL")
    with freeze_time(lab.now, tick=True):
        assert cli.main(["--status_links"]) == 2
    assert "STATUS_PAGE_URL is not set" in capsys.readouterr().err


# -- installed like any Python tool -------------------------------------------------------------------

def test_pyproject_pins_the_same_runtime_dependencies_as_requirements_txt():
    import tomllib
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    text = (ROOT / "requirements.txt").read_text()
    runtime = text.split("# Runtime", 1)[1].split("# Tests", 1)[0]
    tests = text.split("# Tests", 1)[1]

    def pins(block):
        return sorted(line.split("#")[0].strip() for line in block.splitlines() if line.split("#")[0].strip())
    assert sorted(project["dependencies"]) == pins(runtime)
    assert sorted(project["optional-dependencies"]["test"]) == pins(tests)
    assert project["scripts"]["teachinglab"] == "databricks.main:console"


def test_pip_install_e_makes_the_commands_work_from_any_folder(tmp_path):
    """A virtual environment of its own (the suite's packages reached through a .pth file, so
    nothing is downloaded but the build backend), `pip install -e .`, then every entry point
    from a folder that is not the checkout."""
    import site
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    target = next((venv / "lib").glob("python3*/site-packages"))
    (target / "suite.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    install = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps",
                              "--disable-pip-version-check", "-e", str(ROOT)], capture_output=True, text=True,
                             timeout=600)
    assert install.returncode == 0, install.stderr[-2000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    for argv in ([str(venv / "bin" / "teachinglab"), "--help"],
                 [str(venv / "bin" / "python"), "-m", "databricks.main", "--help"],
                 [str(venv / "bin" / "python"), "-m", "databricks.poll_clusters", "--help"],
                 [str(venv / "bin" / "python"), "-m", "databricks.end_of_day_operations", "--help"]):
        r = subprocess.run(argv, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and "usage:" in r.stdout, (argv, r.stderr)
    crontab = subprocess.run([str(venv / "bin" / "teachinglab"), "--crontab"], cwd=elsewhere, capture_output=True,
                             text=True, timeout=120, env={**env, "QUOTA_TIMEZONE": "Asia/Jerusalem"})
    assert crontab.returncode == 0 and f"{ROOT}/scripts/periodic_poll.sh" in crontab.stdout
