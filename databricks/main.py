"""Admin CLI: python -m databricks.main --flags (see --help)."""
from __future__ import annotations

import argparse
import logging
import sys
from datetime import date

logger = logging.getLogger(__name__)

# Commands that only read or change the ledger run without workspace credentials.
LEDGER_ONLY = {"cluster_usage", "history", "outbox", "retry", "set_quota", "clear_quota", "test_email", "report",
               "init_ledger", "crontab"}


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-03-02") from None


def _quota(text: str) -> tuple[int, int]:
    try:
        warn, hard = (int(x) for x in text.split(":"))
        return warn, hard
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not WARN:MAX minutes, e.g. 300:360") from None


def build_parser() -> argparse.ArgumentParser:
    from databricks.teachinglab.runtime import add_logging_flags
    p = argparse.ArgumentParser(
        prog="python -m databricks.main",
        description="Admin commands for the Databricks teaching lab. Settings come from the "
                    "environment or .env (see README).")
    cmd = p.add_mutually_exclusive_group(required=True)
    cmd.add_argument("--print_clusters", action="store_true", help="list clusters with state and group")
    cmd.add_argument("--print_user_groups", action="store_true", help="list groups and their members")
    cmd.add_argument("--audit_workspace", action="store_true",
                     help="list every way a student can run compute outside the quota (policies, "
                          "entitlements, cluster permissions, their own clusters, serverless), with the "
                          "setting that closes each; exit 1 if any (--json for a JSON array)")
    cmd.add_argument("--test_email", nargs="?", const="", metavar="ADDRESS",
                     help="send a test message (default: ADMIN_EMAIL) through EMAIL_TRANSPORT")
    cmd.add_argument("--cluster_usage", action="store_true",
                     help="today's usage per cluster as of the last poll (a table, or --json)")
    cmd.add_argument("--history", action="store_true",
                     help="archived usage per cluster and closed day (--from, --to, --json)")
    cmd.add_argument("--grant", type=int, metavar="MINUTES",
                     help="extra minutes today for --cluster; unblocks it if the new limit allows")
    cmd.add_argument("--set_quota", type=_quota, metavar="WARN:MAX",
                     help="a lasting per-cluster quota for --cluster, in minutes per day")
    cmd.add_argument("--clear_quota", action="store_true", help="remove --cluster's own quota")
    cmd.add_argument("--outbox", action="store_true", help="list queued, sent and failed messages")
    cmd.add_argument("--crontab", action="store_true",
                     help="print the cron lines for this checkout, in QUOTA_TIMEZONE (| crontab - installs them)")
    cmd.add_argument("--init_ledger", action="store_true",
                     help="create a new, empty ledger at CLUSTER_UPTIMES_DB, deliberately (the jobs create "
                          "one only on this account's first run, and refuse when a ledger in use disappears)")
    cmd.add_argument("--retry", metavar="ID|all", help="send failed messages again")
    cmd.add_argument("--convert_moodle", metavar="MOODLE_CSV",
                     help="convert a Moodle group export to users.csv (-o), reporting file:line problems")
    cmd.add_argument("--create_from_csv", metavar="USERS_CSV",
                     help="create missing users, groups, memberships, clusters and permissions "
                          "(--dry-run shows the plan; --prune also deletes what the roster lacks)")
    cmd.add_argument("--delete_all_users", action="store_true", help="delete every user but the admins")
    cmd.add_argument("--delete_all_groups", action="store_true",
                     help="delete the course's groups: those in the roster (--roster), those named by the "
                          "group tag of clusters tagged course=COURSE_NAME, and COURSE_NAME-students "
                          "(--all: every non-system group, always asking for the typed confirmation)")
    cmd.add_argument("--purge_clusters", action="store_true",
                     help="permanently delete every cluster (or only --course's)")
    cmd.add_argument("--terminate_clusters", action="store_true",
                     help="stop every running cluster (or only --course's), e.g. after libraries installed")
    cmd.add_argument("--export_notebooks", metavar="DIR", help="back up every home folder and /Shared")
    cmd.add_argument("--import_notebooks", metavar="DIR", help="restore a backup (all, or --user's)")
    cmd.add_argument("--report", action="store_true",
                     help="write report.html, report.csv and report.png for a closed day (--date, "
                          "default yesterday) into --out; --send also emails it")
    p.add_argument("--cluster", metavar="NAME_OR_ID", help="the cluster for --grant/--set_quota")
    p.add_argument("--reason", default="", help="why, recorded with --grant")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--from", dest="date_from", type=_day, metavar="YYYY-MM-DD")
    p.add_argument("--to", dest="date_to", type=_day, metavar="YYYY-MM-DD")
    p.add_argument("-o", "--output", default="terraform/dbr/users.csv", help="--convert_moodle's output")
    p.add_argument("--strict", action="store_true", help="--convert_moodle: any problem is fatal (exit 2)")
    p.add_argument("--prune", action="store_true", help="--create_from_csv: also delete what the roster lacks")
    p.add_argument("--yes", action="store_true", help="skip the typed confirmation of a teardown")
    p.add_argument("--all", action="store_true", help="--delete_all_groups: every group, not only the course's")
    p.add_argument("--roster", metavar="USERS_CSV",
                   help="--delete_all_groups: the course roster (default: the -o path, if it exists)")
    p.add_argument("--course", help="limit --purge_clusters/--terminate_clusters to clusters tagged course=COURSE")
    p.add_argument("--format", default="SOURCE", choices=["SOURCE", "DBC", "JUPYTER"],
                   help="--export_notebooks format")
    p.add_argument("--user", metavar="EMAIL", help="--import_notebooks: only this user's folder")
    p.add_argument("--date", dest="report_date", type=_day, metavar="YYYY-MM-DD", help="the day for --report")
    p.add_argument("--out", default="report-out", metavar="DIR", help="folder for --report files")
    p.add_argument("--send", action="store_true", help="with --report: email it to REPORT_RECIPIENT_EMAIL")
    p.add_argument("--dry-run", action="store_true", help="show what would change, change nothing")
    add_logging_flags(p)
    return p


def command_of(args: argparse.Namespace) -> str:
    for name in ("print_clusters", "print_user_groups", "audit_workspace", "init_ledger", "crontab", "cluster_usage", "history", "outbox",
                 "clear_quota", "report", "delete_all_users", "delete_all_groups", "purge_clusters",
                 "terminate_clusters"):
        if getattr(args, name):
            return name
    for name in ("test_email", "grant", "set_quota", "retry", "convert_moodle", "create_from_csv",
                 "export_notebooks", "import_notebooks"):
        if getattr(args, name) is not None:
            return name
    raise AssertionError("argparse requires one command")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = command_of(args)
    if command in ("grant", "set_quota", "clear_quota") and not args.cluster:
        parser.error(f"--{command} needs --cluster NAME_OR_ID")
    from databricks.teachinglab import cli_provisioning
    if command == "convert_moodle":
        return cli_provisioning.convert_moodle(args)
    from databricks.teachinglab import cli_commands
    from databricks.teachinglab.errors import AdminError
    from databricks.teachinglab.runtime import secrets_of, settings_or_exit, setup_logging
    settings = settings_or_exit(need_workspace=command not in LEDGER_ONLY)
    setup_logging(args, secrets_of(settings))
    from databricks.teachinglab.runtime import use_clock_at
    use_clock_at(settings, args.at)
    try:
        module = cli_provisioning if hasattr(cli_provisioning, command) else cli_commands
        return getattr(module, command)(settings, args)
    except AdminError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001 - one line and an exit code; --debug for the traceback
        if args.debug:
            raise
        from databricks.teachinglab.runtime import explain
        return explain(settings, err, job=f"--{command}")


def run() -> int:
    """main(), plus the stdout flush at exit: `--json | head` may close the pipe only then."""
    try:
        code = main()
        sys.stdout.flush()
        return code
    except BrokenPipeError as err:
        from databricks.teachinglab.runtime import explain
        return explain(None, err, job="databricks.main")


if __name__ == "__main__":
    sys.exit(run())
