"""A standby VM: two machines with the same cron lines and the same PostgreSQL ledger. Played
here by two processes with their own lock files, mail folders and HOME, started at the same
moment against one database: the ledger's advisory lock lets one run; usage is counted once and
the warning sent once. A holder that dies frees the lock with its connection."""
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone

import pytest

from conftest import ROOT, course, evening_zone, timedelta

pytestmark = [pytest.mark.timeout(300), pytest.mark.postgresql_only]


@pytest.fixture
def lab(make_env):
    """A PostgreSQL ledger; group_01's cluster has run 7 hours (420 of 480 minutes: past the
    400-minute warning); the workspace answers each request after 1 s, so a poll takes seconds."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    e = make_env(now - timedelta(hours=10), QUOTA_TIMEZONE=evening_zone(now))  # PostgreSQL: the marker
    e.ids = e.seed(course(2, 1))
    e.workspace.session(e.ids["cluster_01"], now - timedelta(hours=7), None)
    e.at(now)
    e.workspace.latency = 1.0  # a poll holds the lock for seconds: far longer than the two starts differ
    return e


def vm(lab, name: str) -> dict:
    """The environment of one VM: the shared DATABASE_URL, everything else its own."""
    home = lab.tmp / name
    home.mkdir(exist_ok=True)
    return {**lab.env, "PATH": os.environ["PATH"], "HOME": str(home), "EMAIL_FILE_DIR": str(home / "mail"),
            "TEACHINGLAB_LOCK_FILE": str(home / "teachinglab.lock")}


def poll(env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "databricks.poll_clusters"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def ledger_facts(lab):
    """Today's usage and the messages, read from the shared database."""
    import psycopg2
    con = psycopg2.connect(lab.env["DATABASE_URL"])
    try:
        with con.cursor() as cur:
            cur.execute("SELECT used_ms, warned_at IS NOT NULL FROM cluster_day WHERE cluster_id = %s",
                        (lab.ids["cluster_01"],))
            days = cur.fetchall()
            cur.execute("SELECT kind, status FROM outbox_message ORDER BY id")
            return days, cur.fetchall()
    finally:
        con.close()


def mails(lab, *names) -> list[str]:
    return sorted(p.name for n in names for p in (lab.tmp / n / "mail").glob("*.eml"))


def test_two_vms_polling_at_the_same_moment_count_usage_once_and_mail_once(lab):
    a, b = poll(vm(lab, "vm-a")), poll(vm(lab, "vm-b"))
    (out_a, err_a), (out_b, err_b) = a.communicate(timeout=120), b.communicate(timeout=120)
    codes = sorted([a.returncode, b.returncode])
    assert codes == [0, 75], (err_a, err_b)
    loser = err_a if a.returncode == 75 else err_b
    assert "another run is in progress" in loser and "advisory lock" in loser
    days, messages = ledger_facts(lab)
    assert len(days) == 1 and days[0][1] is True
    counted = days[0][0]
    assert 420 * 60_000 <= counted <= 425 * 60_000  # 7 hours, once (twice would be 840 minutes)
    assert messages == [("warning", "sent")]
    assert len(mails(lab, "vm-a", "vm-b")) == 1
    # the standby's next run, alone: nothing new to count twice, nothing sent again
    again = poll(vm(lab, "vm-b"))
    _, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    days, messages = ledger_facts(lab)
    assert messages == [("warning", "sent")] and len(mails(lab, "vm-a", "vm-b")) == 1
    assert days[0][0] - counted < 5 * 60_000  # only the minutes since, not the day again


def test_a_lock_holder_that_dies_frees_the_lock_with_its_connection(lab):
    lab.workspace.latency = 2.0  # the first poll is still listing clusters when it is killed
    doomed = poll(vm(lab, "vm-a"))
    deadline = time.monotonic() + 60
    while not _advisory_lock_held(lab) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _advisory_lock_held(lab), "the first poll never took the lock"
    doomed.send_signal(signal.SIGKILL)  # the VM is lost mid-run: no cleanup, no unlock
    doomed.communicate(timeout=30)
    lab.workspace.latency = 0.0
    standby = poll(vm(lab, "vm-b"))
    _, err = standby.communicate(timeout=120)
    assert standby.returncode == 0, err
    days, messages = ledger_facts(lab)
    assert days and 420 * 60_000 <= days[0][0] <= 425 * 60_000
    assert messages == [("warning", "sent")] and len(mails(lab, "vm-a", "vm-b")) == 1


def _advisory_lock_held(lab) -> bool:
    import psycopg2
    con = psycopg2.connect(lab.env["DATABASE_URL"])
    try:
        with con.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted")
            return cur.fetchone()[0] > 0
    finally:
        con.close()


def test_a_wrong_password_exits_2_and_an_unreachable_server_4_without_the_password(lab):
    """A refused password is configuration (exit 2); a server that cannot be reached right now
    (maintenance, a failover) is not: "the ledger cannot be used right now", exit 4. Either way
    the admin is told straight through the transport, once a cause a day."""
    from tests.pgserver import PASSWORD
    good = lab.env["DATABASE_URL"]
    wrong = good.replace(PASSWORD, "not-the-Password-7")
    closed = good.replace(good.split("@")[1].split("/")[0], "127.0.0.1:9")  # nothing listens on port 9
    for url, says, code in ((wrong, "refused the user or the password", 2), (closed, "cannot be reached", 4)):
        for module in ("databricks.poll_clusters", "databricks.main"):
            args = ["--cluster_usage"] if module == "databricks.main" else []
            r = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env={**vm(lab, "vm-a"), "DATABASE_URL": url},
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == code, r.stderr
            if code == 4:
                assert "cannot be used right now" in r.stderr
            assert "DATABASE_URL" in r.stderr and says in r.stderr and "Traceback" not in r.stderr
            assert "not-the-Password-7" not in r.stderr and PASSWORD not in r.stderr
            assert len([line for line in r.stderr.splitlines() if "DATABASE_URL" in line]) == 1
    # the jobs told the admin straight through the transport (the outbox is in the database), once a cause
    alerts = sorted((lab.tmp / "vm-a" / "mail").glob("*failure*.eml"))
    assert len(alerts) == 2 and all("DATABASE_URL" in p.read_text() for p in alerts)
    assert not any(PASSWORD in p.read_text() or "not-the-Password-7" in p.read_text() for p in alerts)
    r = subprocess.run([sys.executable, "-m", "databricks.poll_clusters"], cwd=ROOT,
                       env={**vm(lab, "vm-a"), "DATABASE_URL": wrong}, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and len(list((lab.tmp / "vm-a" / "mail").glob("*failure*.eml"))) == 2


def test_a_database_lost_mid_run_keeps_nothing_half_written_and_exits_1(lab, postgres_server):
    """The server drops every session while the poll waits on the workspace (a failover): the
    run ends with one line and exit 1; the usage it had not committed is not there, and the next
    run counts the day once."""
    lab.workspace.latency = 1.0
    database = lab.env["DATABASE_URL"].rsplit("/", 1)[1]
    doomed = poll(vm(lab, "vm-a"))
    deadline = time.monotonic() + 60
    while not _advisory_lock_held(lab) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # the run has opened the ledger and logged its start; it is listing clusters
    assert postgres_server.terminate_connections(database) >= 1
    _, err = doomed.communicate(timeout=120)
    assert doomed.returncode == 1, err
    assert "Traceback" not in err
    # The lock's session went with the rest: the run stops before its next write, in one line.
    lost = [line for line in err.splitlines() if "PostgreSQL session was lost" in line
            or "lost the ledger's PostgreSQL connection" in line]
    assert len(lost) == 1 and ("before its next write" in lost[0] or "nothing half-written was kept" in lost[0])
    days, messages = ledger_facts(lab)
    assert days == [] and messages == []  # nothing of the run's usage transaction
    lab.workspace.latency = 0.0
    again = poll(vm(lab, "vm-b"))
    _, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    days, messages = ledger_facts(lab)
    assert len(days) == 1 and 420 * 60_000 <= days[0][0] <= 425 * 60_000
    assert [m for m in messages if m[0] == "warning"] == [("warning", "sent")]


def test_a_run_whose_lock_session_is_lost_stops_before_its_next_write(lab, postgres_server):
    """The network (or a failover) ends only the lock's session: the lock is free, a standby could
    start; the run notices before its next write, writes nothing, and exits 1 in one line. Every
    connection also carries TCP keepalives, so an idle one is not dropped unseen."""
    import psycopg2
    database = lab.env["DATABASE_URL"].rsplit("/", 1)[1]
    doomed = poll(vm(lab, "vm-a"))
    deadline = time.monotonic() + 60
    while not _advisory_lock_held(lab) and time.monotonic() < deadline:
        time.sleep(0.1)
    con = psycopg2.connect(lab.env["DATABASE_URL"])
    con.autocommit = True
    try:
        with con.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND "
                        "application_name = 'teachinglab-run-lock'", (database,))
            assert cur.rowcount == 1
    finally:
        con.close()
    _, err = doomed.communicate(timeout=120)
    assert doomed.returncode == 1, err
    assert "Traceback" not in err
    lost = [line for line in err.splitlines() if "PostgreSQL session was lost" in line]
    assert len(lost) == 1 and "before its next write" in lost[0]
    days, messages = ledger_facts(lab)
    assert days == [] and messages == []


def test_every_ledger_connection_carries_tcp_keepalives(lab):
    from databricks.teachinglab.adapters.ledger.models import KEEPALIVES, connect_url
    db = connect_url(lab.env["DATABASE_URL"])
    db.connect()
    try:
        params = db.connection().get_dsn_parameters()
        assert (params["keepalives"], params["keepalives_idle"]) == ("1", str(KEEPALIVES["keepalives_idle"]))
        assert KEEPALIVES["keepalives_idle"] < 240   # well under Azure's idle timeout of about 4 minutes
    finally:
        db.close()
