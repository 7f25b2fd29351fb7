"""`--dry-run` changes nothing, for every command that changes anything: no write reaches the
workspace, the ledger is the same row for row, no mail leaves and no file is written. One test
per command. (Before, --terminate_clusters --dry-run really stopped a running cluster.)"""
from pathlib import Path

import pytest
from freezegun import freeze_time

from conftest import course, ledger_dump, local
from databricks import end_of_day_operations, main as cli, poll_clusters
from databricks.teachinglab.adapters.ledger.models import OutboxMessage

READS = ("GET",)


def _writes(ws) -> list[str]:
    return [f"{r.method} {r.path}" for r in ws.requests
            if r.method not in READS and not r.path.endswith("/clusters/events")]


def _files(root: Path) -> set[str]:
    """Files under the test's folder, but the ledger (compared row by row) and the run lock (an
    empty file that only carries the flock)."""
    return {str(p.relative_to(root)) for p in root.rglob("*")
            if p.is_file() and "ledger.db" not in p.name and p.suffix != ".lock"}


@pytest.fixture
def env(make_env, monkeypatch, tmp_path):
    """Day 2026-03-02: group_01 ran all day and is stopped and blocked at 16:00; one message failed."""
    e = make_env(local(2026, 3, 2, 7), COURSE_NAME="bigdata")  # course(): clusters tagged course=bigdata
    e.ids = e.seed(course(2, 2))
    e.workspace.session(e.ids["cluster_01"], local(2026, 3, 2, 8), None)
    e.workspace.session(e.ids["cluster_02"], local(2026, 3, 2, 15), None)
    e.polls(local(2026, 3, 2, 8), local(2026, 3, 2, 16, 15))
    OutboxMessage.update(status="failed", last_error="550 mailbox full").where(
        OutboxMessage.kind == "warning").execute()
    for key, value in e.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    e.root = tmp_path
    e.ledger_path = Path(e.env["CLUSTER_UPTIMES_DB"])
    return e


def unchanged(env, run, at=None):
    """Run `run` at `at` and return its exit code, asserting it changed nothing."""
    when = at or local(2026, 3, 2, 16, 20)
    env.at(when)
    before = (_writes(env.workspace), ledger_dump(env), _files(env.root), env.mails())
    assert dict(before[1])["outbox_message"], "the dump reads the ledger the commands use"
    with freeze_time(when, tick=True):
        code = run()
    after = (_writes(env.workspace), ledger_dump(env), _files(env.root), env.mails())
    assert after[0] == before[0], "the workspace was changed"
    assert after[1] == before[1], "the ledger was changed"
    assert after[2] == before[2], "a file was written"
    assert after[3] == before[3], "mail was sent"
    return code


def test_poll_dry_run(env):
    import logging
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    decisions = logging.getLogger("databricks.teachinglab.services.poll")  # whatever the root handlers are
    decisions.addHandler(handler)
    try:
        assert unchanged(env, lambda: poll_clusters.main(["--dry-run"]), at=local(2026, 3, 2, 23)) == 0
    finally:
        decisions.removeHandler(handler)
    assert any("name=cluster_02" in line and "DRY-RUN would terminate" in line for line in seen)


def test_end_of_day_dry_run(env, capsys):
    assert unchanged(env, lambda: end_of_day_operations.main(["--dry-run"]), at=local(2026, 3, 3, 0, 7)) == 0
    out = capsys.readouterr().out
    assert "would archive and close 2026-03-02" in out and "would restore cluster_01" in out


def test_terminate_clusters_dry_run(env, capsys):
    assert unchanged(env, lambda: cli.main(["--terminate_clusters", "--dry-run"])) == 0
    assert "would terminate cluster_02" in capsys.readouterr().out
    assert env.workspace.cluster(env.ids["cluster_02"]).state == "RUNNING"


def test_test_email_dry_run(env, capsys):
    assert unchanged(env, lambda: cli.main(["--test_email", "ta@uni.example.edu", "--dry-run"])) == 0
    assert "would send a test message to ta@uni.example.edu" in capsys.readouterr().out


def test_retry_dry_run(env, capsys):
    assert unchanged(env, lambda: cli.main(["--retry", "all", "--dry-run"])) == 0
    assert "1 message(s) would be queued again" in capsys.readouterr().out


def test_report_send_dry_run(env, capsys):
    env.close_day(local(2026, 3, 3, 0, 7))
    assert unchanged(env, lambda: cli.main(["--report", "--send", "--date", "2026-03-02", "--out", "rep",
                                            "--dry-run"]), at=local(2026, 3, 3, 9)) == 0
    out = capsys.readouterr().out
    assert "would write report.html" in out and "email them to reports@example.edu" in out


def test_grant_dry_run(env, capsys):
    assert unchanged(env, lambda: cli.main(["--grant", "30", "--cluster", "cluster_01", "--dry-run"])) == 0
    assert "would grant 30" in capsys.readouterr().out


def test_set_quota_dry_run(env, capsys):
    assert unchanged(env, lambda: cli.main(["--set_quota", "100:200", "--cluster", "cluster_01", "--dry-run"])) == 0
    assert "would set" in capsys.readouterr().out


def test_set_quota_exempt_dry_run(env, capsys):
    assert unchanged(env, lambda: cli.main(["--set_quota", "exempt", "--cluster", "cluster_01", "--reason", "demo",
                                            "--dry-run"])) == 0
    assert "would exempt cluster_01" in capsys.readouterr().out


def test_drop_message_dry_run(env, capsys):
    assert unchanged(env, lambda: cli.main(["--drop_message", "all-failed", "--dry-run"])) == 0
    out = capsys.readouterr().out
    assert "would drop: #" in out and "1 message(s) would be dropped" in out


def test_clear_quota_dry_run(env, capsys):
    assert unchanged(env, lambda: cli.main(["--clear_quota", "--cluster", "cluster_01", "--dry-run"])) == 0


@pytest.mark.parametrize("command, says", [("--delete_all_users", "users: 4 would be deleted"),
                                           ("--delete_all_groups", "groups: 2 would be deleted"),
                                           ("--purge_clusters", "clusters: 2 would be deleted")])
def test_teardown_dry_run(env, capsys, command, says):
    assert unchanged(env, lambda: cli.main([command, "--dry-run"])) == 0
    captured = capsys.readouterr()
    assert "(dry run)" in captured.out and says in captured.out and "would delete" in captured.out
    assert " deleted " not in captured.out.replace("would be deleted", "") + captured.err  # the log says "would" too


def test_convert_moodle_dry_run(env, capsys):
    from conftest import ROOT
    src = ROOT / "tests" / "data" / "moodle_groupselect.csv"
    assert unchanged(env, lambda: cli.main(["--convert_moodle", str(src), "-o", "users.csv", "--dry-run"])) == 0
    assert "would write users.csv" in capsys.readouterr().out


def test_status_links_dry_run(env, capsys, monkeypatch):
    """The first --status_links makes the ledger's link secret; with --dry-run it says so and
    makes nothing."""
    monkeypatch.setenv("STATUS_PAGE_URL", "https://lab.example.edu/status")
    assert unchanged(env, lambda: cli.main(["--status_links", "--dry-run"])) == 0
    assert "2 group(s); the links need a secret, which would be made now" in capsys.readouterr().out


# Commands run with --dry-run by a parametrized test above rather than on one line of their own.
PARAMETRIZED = {"delete_all_users", "delete_all_groups", "purge_clusters", "report"}


def test_every_command_that_changes_something_is_run_with_dry_run_by_a_test():
    """The registry says which commands change something; each of them must have a dry-run test
    (here, or in the test file of its feature). A new command declared with changes=True and no
    such test fails here."""
    from conftest import ROOT
    from databricks.teachinglab.cli.admin import COMMANDS
    texts = [p.read_text() for p in (ROOT / "tests").glob("test_*.py")]
    lines = [line for text in texts for line in text.splitlines() if '"--dry-run"' in line]
    changing = {name for name, cmd in COMMANDS.items() if cmd.changes}
    untested = {name for name in changing - PARAMETRIZED if not any(f'"--{name}"' in line for line in lines)}
    assert not untested, f"no --dry-run test for: {sorted(untested)}"
    assert PARAMETRIZED <= changing
    readers = {name for name, cmd in COMMANDS.items() if not cmd.changes}
    assert readers == {"print_clusters", "print_user_groups", "audit_workspace", "cluster_usage", "history",
                       "outbox", "crontab", "status_page", "serverless_usage", "plan_course"}
