"""The admin CLI, run in-process with freezegun moving the wall clock to the simulated day."""
import json
import os
import subprocess
import sys
from datetime import date, timedelta

import pytest
from freezegun import freeze_time

from conftest import ADMIN, ROOT, course, evening_zone, local
from databricks import main as cli
from databricks.teachinglab.adapters.ledger.models import OutboxMessage, QuotaGrant
from databricks.teachinglab.cli.runtime import run_lock


@pytest.fixture
def env(make_env, monkeypatch):
    e = make_env(local(2026, 3, 2, 7))
    e.ids = e.seed(course(2, 2))
    for key, value in e.env.items():
        monkeypatch.setenv(key, value)
    return e


def run(env, *argv, at=None):
    with freeze_time(at or env.now, tick=True):
        return cli.main(list(argv))



def test_cluster_usage_json(env, capsys):
    env.workspace.session(env.ids["cluster_01"], local(2026, 3, 2, 8), None)
    env.polls(local(2026, 3, 2, 8), local(2026, 3, 2, 14, 45))
    capsys.readouterr()
    assert run(env, "--cluster_usage", "--json", at=local(2026, 3, 2, 14, 50)) == 0
    rows = {r["cluster_name"]: r for r in json.loads(capsys.readouterr().out)}
    one = rows["cluster_01"]
    assert {"cluster_id", "cluster_name", "group", "used_seconds", "warn_minutes", "max_minutes", "warned",
            "blocked", "as_of"} <= set(one)
    assert one["used_seconds"] == 405 * 60 and one["group"] == "group_01"
    assert (one["warn_minutes"], one["max_minutes"], one["warned"], one["blocked"]) == (400, 480, True, False)
    assert one["as_of"] == "2026-03-02T14:45:00+02:00"
    assert rows["cluster_02"]["used_seconds"] == 0 and not rows["cluster_02"]["warned"]


def test_cluster_usage_table(env, capsys):
    env.poll(local(2026, 3, 2, 8))
    capsys.readouterr()
    run(env, "--cluster_usage")
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:2] == ["cluster", "group"] and "cluster_02" in out


def test_history_json_with_dates(env, capsys):
    cid = env.ids["cluster_02"]
    for d in (2, 3, 4):
        env.workspace.session(cid, local(2026, 3, d, 9), local(2026, 3, d, 9, 30))
        env.polls(local(2026, 3, d, 9), local(2026, 3, d, 9, 45))
        env.close_day(local(2026, 3, d + 1, 0, 7))
    capsys.readouterr()
    run(env, "--history", "--json", "--from", "2026-03-03", "--to", "2026-03-04")
    rows = [r for r in json.loads(capsys.readouterr().out) if r["cluster_name"] == "cluster_02"]
    assert [(r["date"], r["used_seconds"]) for r in rows] == [("2026-03-03", 1800), ("2026-03-04", 1800)]
    assert {"cluster_id", "cluster_name", "group", "date", "used_seconds"} <= set(rows[0])


def test_grant_unblocks_and_records_who_and_when(env, capsys):
    cid = env.ids["cluster_01"]
    env.run_to_hard_quota(cid)
    assert not env.workspace.can_restart(cid, "group_01")
    code = run(env, "--grant", "60", "--cluster", "cluster_01", "--reason", "project deadline",
               at=local(2026, 3, 2, 16, 30))
    assert code == 0
    assert env.workspace.can_restart(cid, "group_01")
    g = QuotaGrant.get()
    assert (g.minutes, g.reason, g.day) == (60, "project deadline", date(2026, 3, 2)) and g.granted_by
    assert "limit today is now 540 min" in capsys.readouterr().out
    # the group restarts and hits the new limit: stopped again, with a fresh notice
    env.workspace.user_action(local(2026, 3, 2, 16, 40), "start", cid, as_group="group_01")
    env.polls(local(2026, 3, 2, 16, 45), local(2026, 3, 2, 17, 45))
    assert env.workspace.cluster(cid).state in ("TERMINATING", "TERMINATED")
    assert len([m for m in OutboxMessage.select() if m.kind == "termination"]) == 2


def test_grant_needs_a_known_cluster(env, capsys):
    env.poll(local(2026, 3, 2, 8))
    assert run(env, "--grant", "30", "--cluster", "nope") == 2
    assert "No cluster 'nope'" in capsys.readouterr().err


def test_set_quota_override_applies_on_next_poll(env, capsys):
    cid = env.ids["cluster_01"]
    env.poll(local(2026, 3, 2, 7, 45))
    assert run(env, "--set_quota", "60:90", "--cluster", cid) == 0
    env.workspace.session(cid, local(2026, 3, 2, 8), None)
    env.polls(local(2026, 3, 2, 8), local(2026, 3, 2, 9, 30))
    assert env.workspace.cluster(cid).state in ("TERMINATING", "TERMINATED")
    assert [m.kind for m in OutboxMessage.select()] == ["warning", "termination"]


def test_test_email_through_the_file_transport(env, capsys):
    assert run(env, "--test_email") == 0
    eml = next((env.tmp / "mail").glob("test_*.eml")).read_text()
    assert "X-Teachinglab-Event: test" in eml and f"To: {ADMIN}" in eml


def test_print_clusters_and_groups(env, capsys):
    env.poll(local(2026, 3, 2, 8))
    capsys.readouterr()
    run(env, "--print_clusters")
    out = capsys.readouterr().out
    assert "cluster_01" in out and "group_01" in out and "TERMINATED" in out
    run(env, "--print_user_groups", "--json")
    groups = {g["group"]: g for g in json.loads(capsys.readouterr().out)}
    assert [m["email"] for m in groups["group_02"]["members"]] == [
        "student021@students.example.edu", "student022@students.example.edu"]


def test_outbox_lists_failed_and_retry_sends_again(env, capsys, monkeypatch):
    monkeypatch.setenv("EMAIL_FILE_DIR", "/proc/forbidden/mail")  # writing fails
    run(env, "--test_email", "x@uni.edu")
    capsys.readouterr()
    run(env, "--outbox", "--json")
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["status"] == "pending" and rows[0]["attempts"] == 1 and rows[0]["last_error"]
    OutboxMessage.update(status="failed").execute()
    monkeypatch.setenv("EMAIL_FILE_DIR", str(env.tmp / "mail"))
    assert run(env, "--retry", "all") == 0
    assert OutboxMessage.get().status == "sent"


def _with_lock_file(settings, lock):
    from dataclasses import replace
    return replace(settings, ledger=replace(settings.ledger, lock_path=lock))


def test_second_run_is_refused_while_the_lock_is_held(env, tmp_path):
    """On SQLite the lock is the file; on PostgreSQL it is the database's advisory lock, held
    here by this process (the lock file the poll is given is its own: it plays no part)."""
    lock = tmp_path / "run.lock"
    own = tmp_path / "other.lock" if env.settings.ledger.database_url else lock
    subenv = {**env.env, "PATH": os.environ["PATH"], "TEACHINGLAB_LOCK_FILE": str(own)}
    with run_lock(_with_lock_file(env.settings, lock)):
        r = subprocess.run([sys.executable, "-m", "databricks.poll_clusters"], cwd=ROOT, env=subenv,
                           capture_output=True, text=True, timeout=60)
    assert r.returncode == 75 and "another run is in progress" in r.stderr


def test_the_nightly_close_waits_for_a_poll_that_holds_the_lock(env, tmp_path):
    """Cron starts the poll and the close in the same minute (00:07): the close waits for the
    lock instead of losing its night; a poll never waits. (The file lock, or PostgreSQL's.)"""
    import threading
    from databricks.teachinglab.core.errors import LockBusy
    lock = _with_lock_file(env.settings, tmp_path / "run.lock")
    held, release = threading.Event(), threading.Event()

    def poll_holding_the_lock():
        with run_lock(lock):
            held.set()
            release.wait(5)

    poll = threading.Thread(target=poll_holding_the_lock)
    poll.start()
    held.wait(5)
    with pytest.raises(LockBusy):
        with run_lock(lock):
            pass
    threading.Timer(0.5, release.set).start()
    with run_lock(lock, wait_seconds=10):
        assert release.is_set()  # it got the lock only once the poll let go
    poll.join()


def test_poll_exits_1_when_a_cluster_failed_and_0_otherwise(make_env, tmp_path):
    from datetime import datetime, timezone
    from databricks.sandbox import Fault
    now = datetime.now(timezone.utc).replace(microsecond=0)
    e = make_env(now - timedelta(hours=10), QUOTA_TIMEZONE=evening_zone(now))
    ids = e.seed(course(2, 1))
    e.workspace.session(ids["cluster_01"], now - timedelta(hours=9), None)
    e.at(now)
    subenv = {**e.env, "PATH": os.environ["PATH"]}
    fault = e.workspace.inject(Fault(method="PUT", path="/permissions/", status=500, times=None))
    bad = subprocess.run([sys.executable, "-m", "databricks.poll_clusters"], cwd=ROOT, env=subenv,
                         capture_output=True, text=True, timeout=90)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "name=cluster_01" in bad.stderr and "1 failed" in bad.stderr
    e.workspace.remove_fault(fault)
    ok = subprocess.run([sys.executable, "-m", "databricks.poll_clusters"], cwd=ROOT, env=subenv,
                        capture_output=True, text=True, timeout=90)
    assert ok.returncode == 0, ok.stderr
    assert not e.workspace.can_restart(ids["cluster_01"], "group_01")


def test_poll_with_the_workspace_down_exits_3_without_a_traceback(env):
    from databricks.sandbox import Fault
    env.workspace.inject(Fault(method="GET", path="/clusters/list", status=500, times=None))
    subenv = {**env.env, "PATH": os.environ["PATH"]}
    for module in ("databricks.poll_clusters", "databricks.end_of_day_operations"):
        r = subprocess.run([sys.executable, "-m", module], cwd=ROOT, env=subenv, capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 3 and "Traceback" not in r.stderr
        assert "answered with an error" in r.stderr and "cannot list clusters" in r.stderr


@pytest.mark.parametrize("module", ["databricks.poll_clusters", "databricks.end_of_day_operations"])
def test_a_wrong_token_exits_3_and_says_what_to_do(env, module):
    subenv = {**env.env, "PATH": os.environ["PATH"], "DATABRICKS_TOKEN": "not-the-token"}
    r = subprocess.run([sys.executable, "-m", module], cwd=ROOT, env=subenv, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 3 and "Traceback" not in r.stderr
    assert "refused the credentials" in r.stderr and "DATABRICKS_TOKEN" in r.stderr
    assert "not-the-token" not in r.stderr


def test_an_unreachable_host_exits_3_within_the_deadline(env):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    subenv = {**env.env, "PATH": os.environ["PATH"], "DATABRICKS_HOST": f"http://127.0.0.1:{port}",
              "POLL_DEADLINE_SECONDS": "5"}
    r = subprocess.run([sys.executable, "-m", "databricks.poll_clusters"], cwd=ROOT, env=subenv,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 3 and "Traceback" not in r.stderr
    assert "cannot reach the workspace" in r.stderr


def test_json_into_a_closed_pipe_ends_without_a_traceback(env, tmp_path):
    from datetime import datetime, timezone
    from databricks.teachinglab.adapters.ledger.models import Cluster
    env.lab()
    now = datetime(2026, 3, 2, 6, tzinfo=timezone.utc)
    Cluster.insert_many([{"cluster_id": f"c{i:04d}", "name": f"cluster-{i:04d}-" + "x" * 200,
                          "first_seen": now, "last_seen": now} for i in range(600)]).execute()
    subenv = {**env.env, "PATH": os.environ["PATH"]}
    r = subprocess.run(f"{sys.executable} -m databricks.main --cluster_usage --json | head -c 100 >/dev/null",
                       shell=True, cwd=ROOT, env=subenv, capture_output=True, text=True, timeout=60)
    assert "Traceback" not in r.stderr and "Exception ignored" not in r.stderr, r.stderr


def test_cli_workspace_errors_are_one_line_with_exit_3_and_debug_shows_the_traceback(env, monkeypatch):
    subenv = {**env.env, "PATH": os.environ["PATH"], "DATABRICKS_TOKEN": "wrong"}
    r = subprocess.run([sys.executable, "-m", "databricks.main", "--print_clusters"], cwd=ROOT, env=subenv,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 3 and "Traceback" not in r.stderr and "refused the credentials" in r.stderr
    assert len([line for line in r.stderr.splitlines() if "--print_clusters:" in line]) == 1
    d = subprocess.run([sys.executable, "-m", "databricks.main", "--print_clusters", "--debug"], cwd=ROOT,
                       env=subenv, capture_output=True, text=True, timeout=60)
    assert d.returncode != 0 and "Traceback" in d.stderr


def test_retry_of_an_unknown_or_sent_message_exits_2(env, capsys):
    env.workspace.session(env.ids["cluster_01"], local(2026, 3, 2, 8), None)
    env.polls(local(2026, 3, 2, 8), local(2026, 3, 2, 15))
    sent = OutboxMessage.get(OutboxMessage.kind == "warning")
    assert sent.status == "sent"
    assert run(env, "--retry", "999") == 2
    assert "no message 999" in capsys.readouterr().err
    assert run(env, "--retry", str(sent.id)) == 2
    assert "did not fail" in capsys.readouterr().err


def test_grant_checks_the_real_acl_not_only_the_ledger(env, capsys):
    cid = env.ids["cluster_01"]
    env.poll(local(2026, 3, 2, 9))
    env.lab().workspace.set_group_level(cid, "group_01", "CAN_ATTACH_TO")  # blocked outside this ledger
    assert run(env, "--grant", "30", "--cluster", "cluster_01", at=local(2026, 3, 2, 10)) == 0
    assert "outside the ledger: restored to CAN_RESTART" in capsys.readouterr().out
    assert env.workspace.can_restart(cid, "group_01")


def test_report_before_any_close_previews_today(env, capsys, tmp_path):
    env.workspace.session(env.ids["cluster_01"], local(2026, 3, 2, 8), None)
    env.polls(local(2026, 3, 2, 8), local(2026, 3, 2, 10))
    capsys.readouterr()
    assert run(env, "--report", "--out", str(tmp_path / "rep"), at=local(2026, 3, 2, 10, 5)) == 0
    assert "PREVIEW of 2026-03-02" in capsys.readouterr().out
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "PREVIEW" in html and "cluster_01" in html


def test_exempt_clusters_are_flagged_in_usage_and_history(env, capsys):
    demo = env.workspace.add_cluster("teacher-demo", tags={"quota": "exempt"})
    env.workspace.session(demo, local(2026, 3, 2, 8), None)
    env.polls(local(2026, 3, 2, 8), local(2026, 3, 2, 9))
    env.close_day(local(2026, 3, 3, 0, 7))
    capsys.readouterr()
    run(env, "--cluster_usage", "--json", at=local(2026, 3, 3, 9))
    assert {r["cluster_name"]: r["exempt"] for r in json.loads(capsys.readouterr().out)}["teacher-demo"] is True
    run(env, "--history", "--json", at=local(2026, 3, 3, 9))
    rows = [r for r in json.loads(capsys.readouterr().out) if r["cluster_name"] == "teacher-demo"]
    assert rows and rows[0]["exempt"] is True


def test_test_email_refuses_a_non_address_and_names_the_transport(env, capsys):
    assert run(env, "--test_email", "not-an-address") == 2
    assert "is not an email address" in capsys.readouterr().err
    assert run(env, "--test_email", "ta@uni.example.edu") == 0
    assert "to ta@uni.example.edu via file: sent" in capsys.readouterr().out


def test_the_cron_poll_waits_for_a_quota_that_falls_inside_its_run(env, capsys):
    """The cron entry point, in process: at 16:00:00 the group has 2 s left; the run sleeps until
    then (the real clock, moved by freezegun's tick), measures again and stops it."""
    from databricks import poll_clusters
    from databricks.teachinglab.adapters.ledger.models import ClusterDay
    cid = env.ids["cluster_01"]
    env.workspace.session(cid, local(2026, 3, 2, 8, 0, 2), None)
    env.poll(local(2026, 3, 2, 15, 59))
    when = env.at(local(2026, 3, 2, 16))
    with freeze_time(when, tick=True):
        assert poll_clusters.main([]) == 0
    row = ClusterDay.get(ClusterDay.cluster == cid)
    assert row.terminated_at is not None
    assert local(2026, 3, 2, 16, 0, 2) <= row.terminated_at < local(2026, 3, 2, 16, 0, 4)
    err = capsys.readouterr().err
    import re
    waited = re.search(r"waiting ([0-9.]+) s to stop it then", err)
    assert waited and 0 < float(waited.group(1)) <= 2.0  # 2 s less what the first pass took
    assert "1 terminated, 1 blocked" in err


def test_drop_message_takes_a_failed_message_out_for_good_and_refuses_a_sent_one(env, capsys):
    env.workspace.session(env.ids["cluster_01"], local(2026, 3, 2, 8), None)
    env.polls(local(2026, 3, 2, 8), local(2026, 3, 2, 14, 45))
    warning = OutboxMessage.get(OutboxMessage.kind == "warning")
    assert run(env, "--drop_message", str(warning.id)) == 2       # sent: nothing to drop
    assert "not queued or failed" in capsys.readouterr().err
    OutboxMessage.update(status="failed", last_error="550 mailbox full").where(OutboxMessage.id == warning.id).execute()
    assert run(env, "--drop_message", "all-failed") == 0
    assert "1 message(s) dropped" in capsys.readouterr().out
    assert OutboxMessage.get_by_id(warning.id).status == "dropped"
    assert run(env, "--retry", "all") == 0                          # nothing failed is left to resend
    env.poll(local(2026, 3, 2, 15))
    assert OutboxMessage.select().where(OutboxMessage.kind == "warning").count() == 1  # never queued again
    assert run(env, "--drop_message", "99999") == 2 and "no message 99999" in capsys.readouterr().err


def test_a_workspace_that_accepts_and_never_answers_ends_the_poll_by_itself_with_exit_3(env, tmp_path):
    """Under the cron wrapper: the run's deadline counts from the process's start, every request
    is cut to what is left of it, and the SDK's retries say what they waited on, so a hung host
    ends the poll by itself (exit 3, not the wrapper's 124), with one alert naming it."""
    import socket
    import threading
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(50)
    held = []
    threading.Thread(target=lambda: [held.append(server.accept()) for _ in range(50)], daemon=True).start()
    subenv = {**env.env, "PATH": os.environ["PATH"], "DATABRICKS_HOST": f"http://127.0.0.1:{server.getsockname()[1]}",
              "POLL_DEADLINE_SECONDS": "5", "POLL_TIMEOUT_SECONDS": "9", "TEACHINGLAB_PYTHON": sys.executable}
    try:
        r = subprocess.run(["bash", str(ROOT / "scripts" / "periodic_poll.sh")], cwd=ROOT, env=subenv,
                           capture_output=True, text=True, timeout=60)
    finally:
        server.close()
    out = r.stdout + r.stderr
    assert r.returncode == 3, out
    assert "never answered" in out and "killed by timeout" not in out and "Traceback" not in out
    alerts = [p for p in (env.tmp / "mail").glob("failure_*.eml")]
    assert len(alerts) == 1


def test_a_poll_never_imports_pandas_or_matplotlib(env):
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "databricks.poll_clusters"], cwd=ROOT,
                       env={**env.env, "PATH": os.environ["PATH"]}, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    loaded = {line.split("|")[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}
    assert "databricks.sdk" in loaded and not {"pandas", "matplotlib"} & loaded
