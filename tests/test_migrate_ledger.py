"""Moving a semester: --migrate_ledger copies a SQLite ledger into PostgreSQL, checks counts and
sums, refuses a non-empty target without --force, changes nothing with --dry-run; the copy is a
working ledger (its id sequences continue)."""
import os
import subprocess
import sys

import pytest

from conftest import ROOT, course, ledger_dump, local

pytestmark = pytest.mark.sqlite_only  # the source is the SQLite file; the target a PostgreSQL database


@pytest.fixture
def semester(make_env, postgres_server):
    e = make_env(local(2026, 3, 2, 7))
    ids = e.seed(course(2, 2))
    e.run_to_hard_quota(ids["cluster_01"])        # usage, a warning, a stop, a block, mail
    e.close_day(local(2026, 3, 3, 0, 7))          # history, a closed day, the report
    e.target = postgres_server.url(postgres_server.create_database())
    yield e
    postgres_server.drop_database(e.target.rsplit("/", 1)[1])


def migrate(e, *args):
    env = {**e.env, "PATH": os.environ["PATH"]}
    return subprocess.run([sys.executable, "-m", "databricks.main", "--migrate_ledger",
                           f"sqlite:///{e.env['CLUSTER_UPTIMES_DB']}", e.target, *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def without_versions(dump):
    return [(t, rows) for t, rows in dump if t != "schema_version"]


def test_a_sqlite_ledger_copied_to_postgresql_is_row_for_row_the_same(semester):
    from databricks.teachinglab.cli.wiring import close_ledger
    close_ledger()
    source = without_versions(ledger_dump(semester))
    source_url = f"sqlite:///{semester.env['CLUSTER_UPTIMES_DB']}"
    dry = subprocess.run([sys.executable, "-m", "databricks.main", "--migrate_ledger", source_url, semester.target, "--dry-run"],
                         cwd=ROOT, env={**semester.env, "PATH": os.environ["PATH"]}, capture_output=True, text=True,
                         timeout=120)
    assert dry.returncode == 0 and "nothing changed" in dry.stdout and "outbox_message" in dry.stdout
    assert ledger_dump(url=semester.target) == []  # not even the tables were made
    assert without_versions(ledger_dump(semester)) == source
    r = migrate(semester)
    assert r.returncode == 0, r.stderr
    assert "DIFFERS" not in r.stdout and "usage_history.used_ms" in r.stdout
    assert "pg-suite-Secret-42" not in r.stdout + r.stderr and "***" in r.stdout
    copied = without_versions(ledger_dump(url=semester.target))
    assert [t for t, _ in copied] == [t for t, _ in source]
    assert {t: len(rows) for t, rows in copied} == {t: len(rows) for t, rows in source}
    assert dict(copied)["outbox_message"] and dict(copied)["usage_history"]


def test_a_non_empty_target_is_refused_without_force_and_replaced_with_it(semester):
    assert migrate(semester).returncode == 0
    again = migrate(semester)
    assert again.returncode == 2 and "already holds" in again.stderr and "--force" in again.stderr
    assert "Traceback" not in again.stderr
    forced = migrate(semester, "--force")
    assert forced.returncode == 0 and "replaced" in forced.stdout


def test_the_copy_is_a_working_ledger_whose_ids_continue(semester):
    assert migrate(semester).returncode == 0
    from databricks.teachinglab.adapters.ledger import repository as ledger
    from databricks.teachinglab.adapters.ledger.models import OutboxMessage, open_ledger
    from databricks.teachinglab.cli.wiring import close_ledger
    close_ledger()
    db = open_ledger(db_path=None, database_url=semester.target, now=local(2026, 3, 3, 9))
    try:
        before = OutboxMessage.select().count()
        top = max(m.id for m in OutboxMessage.select())
        ledger.insert_message(key="test:after-the-move", kind="test", event="test", to="a@b.example", cc="",
                              subject="s", text="t", html="<p>h</p>", now=local(2026, 3, 3, 9))
        assert OutboxMessage.select().count() == before + 1
        assert OutboxMessage.get(OutboxMessage.dedupe_key == "test:after-the-move").id > top
    finally:
        db.close()


def test_back_from_postgresql_into_a_new_sqlite_file_which_is_private(semester, tmp_path):
    assert migrate(semester).returncode == 0
    back = tmp_path / "moved" / "ledger.db"
    env = {**semester.env, "PATH": os.environ["PATH"]}
    dry = subprocess.run([sys.executable, "-m", "databricks.main", "--migrate_ledger", semester.target, str(back), "--dry-run"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0 and "nothing changed" in dry.stdout and not back.parent.exists()
    r = subprocess.run([sys.executable, "-m", "databricks.main", "--migrate_ledger", semester.target, str(back)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "DIFFERS" not in r.stdout, r.stderr
    assert oct(back.stat().st_mode & 0o777) == "0o600" and oct(back.parent.stat().st_mode & 0o777) == "0o700"
    from databricks.teachinglab.cli.wiring import close_ledger
    close_ledger()
    assert without_versions(ledger_dump(path=back)) == without_versions(ledger_dump(semester))
    typo = subprocess.run([sys.executable, "-m", "databricks.main", "--migrate_ledger", str(tmp_path / "typo.db"),
                           semester.target, "--force"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert typo.returncode == 2 and "does not exist" in typo.stderr and not (tmp_path / "typo.db").exists()


def test_with_course_the_copy_lands_in_that_courses_schema(semester):
    from databricks.teachinglab.cli.wiring import close_ledger
    close_ledger()
    r = migrate(semester, "--course", "ml")
    assert r.returncode == 0, r.stderr
    assert ledger_dump(url=semester.target) == []  # nothing in public
    copied = without_versions(ledger_dump(url=semester.target, schema="course_ml"))
    source = without_versions(ledger_dump(semester))
    assert {t: len(rows) for t, rows in copied} == {t: len(rows) for t, rows in source}
    assert dict(copied)["usage_history"]
