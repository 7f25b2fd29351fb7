"""A ledger you can trust: never silently replaced, never world-readable, backed up nightly, and a
run that cannot use it says so (exit 4), tells the admin without it, and never shows a traceback."""
import os
import stat
import subprocess
import sys

import pytest

from conftest import ROOT, course, local

pytestmark = pytest.mark.sqlite_only  # the guard, the file modes and the backups are the SQLite file's


@pytest.fixture
def env(make_env):
    e = make_env(local(2026, 3, 2, 7))
    e.ids = e.seed(course(1, 1))
    e.subenv = {**e.env, "PATH": os.environ["PATH"]}
    return e


def job(env, module="databricks.poll_clusters", *args, **extra):
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env={**env.subenv, **extra},
                          capture_output=True, text=True, timeout=90)


def ledger(env):
    from pathlib import Path
    return Path(env.env["CLUSTER_UPTIMES_DB"])


def test_the_first_run_creates_the_ledger_private_with_a_log_line(env, tmp_path):
    path = tmp_path / "new-folder" / "ledger.db"
    r = job(env, CLUSTER_UPTIMES_DB=str(path))
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert f"created a new ledger at {path}" in r.stderr and f"created the folder {path.parent}" in r.stderr


def test_a_ledger_that_disappears_stops_the_run_until_restored_or_reinitialised(env):
    assert job(env).returncode == 0
    assert job(env, "databricks.end_of_day_operations").returncode == 0  # leaves a nightly backup
    path = ledger(env)
    path.unlink()
    r = job(env)
    assert r.returncode == 4 and "Traceback" not in r.stderr
    assert "is missing, but it was in use since" in r.stderr and "--restore_ledger" in r.stderr
    assert "--init_ledger" in r.stderr and "cp " not in r.stderr
    assert not path.exists()  # not silently recreated
    path.write_bytes(b"")
    assert job(env).returncode == 4  # an empty file is no better
    path.unlink()
    init = job(env, "databricks.main", "--init_ledger")
    assert init.returncode == 0 and "created a new, empty ledger" in init.stdout
    assert job(env).returncode == 0


def test_a_mistyped_ledger_path_is_refused(env, tmp_path):
    assert job(env).returncode == 0
    r = job(env, CLUSTER_UPTIMES_DB=str(tmp_path / "typo" / "ledgr.db"))
    assert r.returncode == 4 and "this account's ledger is" in r.stderr
    assert not (tmp_path / "typo").exists()


def test_a_corrupt_ledger_names_the_backup_to_restore_and_alerts_the_admin_once(env):
    assert job(env).returncode == 0
    assert job(env, "databricks.end_of_day_operations").returncode == 0
    path = ledger(env)
    path.write_bytes(b"this is not sqlite" * 100)
    for name in ("-wal", "-shm"):
        (path.parent / (path.name + name)).unlink(missing_ok=True)
    r = job(env)
    assert r.returncode == 4 and "Traceback" not in r.stderr
    assert "is not a readable SQLite database" in r.stderr and "backups/ledger-" in r.stderr
    alerts = sorted((env.tmp / "mail").glob("failure_ledger-*.eml"))
    assert len(alerts) == 1 and "the ledger" in alerts[0].read_text()
    assert job(env).returncode == 4
    assert len(sorted((env.tmp / "mail").glob("failure_ledger-*.eml"))) == 1  # once a day


def test_a_ledger_path_that_is_a_folder_exits_4(env, tmp_path):
    r = job(env, CLUSTER_UPTIMES_DB=str(tmp_path))
    assert r.returncode == 4 and "is a folder" in r.stderr and "Traceback" not in r.stderr


def test_the_nightly_close_keeps_seven_dated_backups(env, tmp_path):
    from datetime import date, timedelta
    from databricks.teachinglab.adapters.ledger.guard import backup, backups_dir
    env.lab()
    path = ledger(env)
    for i in range(9):
        backup(path, date(2026, 3, 1) + timedelta(days=i))
    kept = sorted(p.name for p in backups_dir(path).iterdir())
    assert kept == [f"ledger-2026-03-{d:02d}.db" for d in range(3, 10)]
    assert all(stat.S_IMODE((backups_dir(path) / k).stat().st_mode) == 0o600 for k in kept)


def test_init_ledger_refuses_to_overwrite_and_honours_dry_run(env):
    assert job(env).returncode == 0
    r = job(env, "databricks.main", "--init_ledger")
    assert r.returncode == 2 and "exists: nothing done" in r.stderr
    ledger(env).unlink()
    d = job(env, "databricks.main", "--init_ledger", "--dry-run")
    assert d.returncode == 0 and "would create" in d.stdout and not ledger(env).exists()


def test_courses_creating_their_ledgers_at_once_are_all_registered(tmp_path):
    """Several courses' first runs create their ledgers at the same moment, one process each:
    every ledger is registered (before, a shared temp file made one run fail with a traceback
    and another's entry get lost)."""
    import multiprocessing
    from datetime import datetime, timezone
    from databricks.teachinglab.adapters.ledger.guard import LedgerGuard
    guard = LedgerGuard(tmp_path / "state" / "ledgers.json")
    now = datetime(2026, 3, 2, tzinfo=timezone.utc)
    start = multiprocessing.get_context("fork").Event()

    def register(n):
        start.wait(10)
        for k in range(20):
            guard.register(tmp_path / f"ledger-{n}-{k}.db", now)

    workers = [multiprocessing.get_context("fork").Process(target=register, args=(n,)) for n in range(6)]
    for w in workers:
        w.start()
    start.set()
    for w in workers:
        w.join(60)
    assert [w.exitcode for w in workers] == [0] * 6
    assert len(guard._known()) == 6 * 20


def test_restore_ledger_puts_the_backup_back_safely_past_a_stale_wal(env):
    """A poll killed mid-write leaves a -wal beside the ledger. `cp backup ledger` had SQLite
    replay that WAL onto the copied file (a malformed image, or rows the backup never had);
    --restore_ledger uses SQLite's backup API under the run lock, and keeps what it replaced."""
    import sqlite3
    from databricks.teachinglab.adapters.ledger.guard import newest_backup
    env.workspace.session(env.ids["cluster_01"], local(2026, 3, 2, 8), local(2026, 3, 2, 9))
    assert job(env).returncode == 0
    assert job(env, "databricks.end_of_day_operations").returncode == 0
    path = ledger(env)
    backup = newest_backup(path)
    rows = lambda db: sqlite3.connect(db).execute("SELECT count(*) FROM cluster").fetchone()[0]  # noqa: E731
    in_backup = rows(backup)
    # a writer that never checkpointed: its WAL holds rows the backup does not have
    keep = sqlite3.connect(path)
    keep.execute("PRAGMA journal_mode=WAL")
    keep.execute("PRAGMA wal_autocheckpoint=0")
    for n in range(50):
        keep.execute("INSERT INTO cluster (cluster_id, name, exempt, state, first_seen, last_seen, estimated, tag_drift, photon) "
                     "VALUES (?, 'ghost', 0, 'X', '2026-03-02T00:00:00.000+00:00', '2026-03-02T00:00:00.000+00:00', 0, 0, 0)",
                     (f"ghost-{n}",))
    keep.commit()
    import shutil
    shutil.copy(f"{path}-wal", env.tmp / "stale-wal")
    keep.close()
    shutil.copy(env.tmp / "stale-wal", f"{path}-wal")  # as a killed process leaves it
    dry = job(env, "databricks.main", "--restore_ledger", str(backup), "--dry-run")
    assert dry.returncode == 0 and "would restore" in dry.stdout and rows(path) == in_backup + 50
    r = job(env, "databricks.main", "--restore_ledger", str(backup))
    assert r.returncode == 0, r.stderr
    assert rows(path) == in_backup
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    replaced = sorted(path.parent.glob(f"{path.name}.replaced-*"))
    assert replaced and rows(replaced[0]) == in_backup + 50     # what it replaced, kept whole
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert job(env).returncode == 0                              # the jobs go on from the backup


def test_restore_ledger_refuses_what_is_not_a_ledger(env, tmp_path):
    assert job(env).returncode == 0
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database" * 50)
    r = job(env, "databricks.main", "--restore_ledger", str(junk))
    assert r.returncode == 2 and "not a readable ledger" in r.stderr and "nothing changed" in r.stderr
    assert not list(ledger(env).parent.glob("*.replaced-*"))


def test_the_close_backs_up_first_even_when_it_fails_and_the_backup_holds_no_close_in_progress(env):
    """The backup used to come after the close's mail: a stuck message, a workspace that failed,
    meant no backup, night after night. It is now the close's first step, before its own entry
    in the run log, so a ledger restored from it never takes that close for a killed one."""
    import sqlite3
    from databricks.teachinglab.adapters.ledger.guard import newest_backup
    assert job(env).returncode == 0
    r = job(env, "databricks.end_of_day_operations", DATABRICKS_HOST="http://127.0.0.1:9")  # nothing answers
    assert r.returncode == 3, r.stderr
    backup = newest_backup(ledger(env))
    assert backup is not None and "backed up" in r.stderr
    runs = sqlite3.connect(backup).execute(
        "SELECT count(*) FROM job_run WHERE job = 'end_of_day_operations'").fetchone()[0]
    assert runs == 0
