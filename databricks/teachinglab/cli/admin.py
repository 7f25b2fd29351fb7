"""The admin CLI's dispatcher: the parser built from the command registry, one clock read, the
settings each command declared, the run lock where it asked for it, one line per error."""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from datetime import date

from databricks.teachinglab.cli import (commands, content_commands, ledger_commands,  # noqa: F401 - they register
                                        plan_commands, provisioning_commands, semester_commands,
                                        semester_end_commands)
from databricks.teachinglab.cli.clock import use_clock_at, utcnow
from databricks.teachinglab.cli.parsing import LabParser, interruptible
from databricks.teachinglab.cli.registry import COMMANDS, Command, Invocation
from databricks.teachinglab.cli.courses import Course
from databricks.teachinglab.cli.fanout import combined_exit
from databricks.teachinglab.cli.runtime import (EXIT_LEDGER, add_logging_flags, alert_without_ledger, courses_or_exit,
                                                explain, ledger_unusable, run_locked, secrets_of, setup_logging,
                                                with_log_target)
from databricks.teachinglab.cli.wiring import close_ledger, open_ledger_for
from databricks.teachinglab.core.errors import AdminError


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-03-02") from None


def _money(text: str) -> float:
    import math
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 < value <= 100_000_000):
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount of USD above 0, like 2500")
    return value


def _weeks(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 60:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of weeks from 1 to 60")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    p = LabParser(
        prog="python -m databricks.main",
        description="Admin commands for the Databricks teaching lab. Settings come from the "
                    "environment or .env (see README).")
    group = p.add_mutually_exclusive_group(required=True)
    for cmd in COMMANDS.values():
        group.add_argument(f"--{cmd.name}", help=cmd.help, **cmd.flag)
    p.add_argument("--cluster", metavar="NAME_OR_ID", help="the cluster for --grant/--set_quota")
    p.add_argument("--reason", default="", help="why, recorded with --grant")
    p.add_argument("--until", type=_day, metavar="YYYY-MM-DD",
                   help="--grant: a top-up to the group's bank, usable from today until this day")
    p.add_argument("--port", type=int, default=8080, help="--status_page: the port to listen on (127.0.0.1)")
    p.add_argument("--host", default="127.0.0.1", help="--status_page: the address to listen on")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--from", dest="date_from", type=_day, metavar="YYYY-MM-DD")
    p.add_argument("--to", dest="date_to", type=_day, metavar="YYYY-MM-DD")
    p.add_argument("-o", "--output", help="--convert_moodle's output (default terraform/environments/prod/users.csv); --handoff: "
                   "also write the record to this file")
    p.add_argument("--strict", action="store_true", help="--convert_moodle: any problem is fatal (exit 2)")
    p.add_argument("--prune", action="store_true", help="--create_from_csv: also delete what the roster lacks")
    p.add_argument("--yes", action="store_true", help="skip the typed confirmation of a teardown")
    p.add_argument("--force", action="store_true", help="--migrate_ledger: replace what the target ledger holds")
    p.add_argument("--all", action="store_true", help="--delete_all_groups: every group, not only the course's")
    p.add_argument("--roster", metavar="USERS_CSV",
                   help="--delete_all_groups: the course roster (default: the -o path, if it exists)")
    p.add_argument("--course", metavar="NAME",
                   help="only this course of TEACHINGLAB_COURSES_FILE (default: every course); without that file, "
                        "--purge_clusters/--terminate_clusters only touch clusters tagged course=NAME")
    p.add_argument("--format", default="SOURCE", choices=["SOURCE", "DBC", "JUPYTER"],
                   help="--export_notebooks format")
    p.add_argument("--user", metavar="EMAIL", help="--import_notebooks: only this user's folder")
    p.add_argument("--date", dest="report_date", type=_day, metavar="YYYY-MM-DD", help="the day for --report")
    p.add_argument("--out", metavar="DIR", help="folder for --report files (default report-out), --simulate's "
                   "and --end_semester's (default semester-end/<course>)")
    p.add_argument("--send", action="store_true", help="with --report: email it to REPORT_RECIPIENT_EMAIL")
    p.add_argument("--budget", type=_money, metavar="USD", help="--plan_course: the semester's budget in USD")
    p.add_argument("--weeks", type=_weeks, metavar="N", help="--plan_course: the semester's length (default: the "
                   "policy's [semester] dates, else 15)")
    p.add_argument("--over_budget", action="store_true",
                   help="--create_from_csv: provision although the worst case exceeds COURSE_BUDGET_USD")
    p.add_argument("--drop_data", action="store_true",
                   help="--end_semester: also drop the course's Unity Catalog schemas (after the export, and a typed "
                        "confirmation that --yes does not skip)")
    p.add_argument("--skip", metavar="STEP,...", help="--end_semester: steps to leave out (report, export, handoff, "
                   "teardown, costs)")
    p.add_argument("--dry-run", action="store_true",
                   help="show what would change, change nothing (every command that changes anything)")
    add_logging_flags(p)
    return p


def chosen(args: argparse.Namespace) -> Command:
    for cmd in COMMANDS.values():
        if cmd.given(args):
            return cmd
    raise AssertionError("argparse requires one command")


# With several courses, these act on one: a named cluster, a roster, a workspace's users and
# folders, a policy, a page, one ledger's messages. Run without --course they would do the same
# thing in every course's workspace, which no admin means; they ask for --course instead.
ONE_COURSE = {"create_from_csv", "delete_all_users", "delete_all_groups", "purge_clusters", "terminate_clusters",
              "export_notebooks", "import_notebooks", "deploy_notebooks", "end_semester", "simulate", "status_page",
              "rotate_status_secret", "init_ledger", "retry"}
ONCE = {"crontab"}  # the same for every course: the cron lines cover them all


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    cmd = chosen(args)
    for option in cmd.needs:
        if not getattr(args, option):
            parser.error(f"--{cmd.name} needs --{option} NAME_OR_ID")
    if not cmd.settings:
        return _run(cmd, args, None)
    courses = courses_or_exit(args.course, need_workspace=cmd.workspace, strict=False, args=args)
    if len(courses) == 1 or cmd.name in ONCE:
        return _run(cmd, args, courses[0], zones=tuple(sorted({c.settings.quota.tz_name for c in courses})))
    if "cluster" in cmd.needs:
        owners = [c for c in courses if _knows_cluster(c, args.cluster)]
        if len(owners) == 1:
            return _run(cmd, args, owners[0])
        where = f"in {', '.join(c.name for c in owners)}" if owners else "in no course's ledger"
        print(f"error: --cluster {args.cluster} is {where}: add --course NAME (the courses: "
              f"{', '.join(c.name for c in courses)})", file=sys.stderr)
        return 2
    if cmd.needs or cmd.name in ONE_COURSE:
        print(f"error: --{cmd.name} acts on one course: add --course NAME (the courses: "
              f"{', '.join(c.name for c in courses)})", file=sys.stderr)
        return 2
    return _every_course(cmd, args, courses)


def _knows_cluster(course: Course, name_or_id: str) -> bool:
    """Whether the course's ledger has this cluster (by id or name). Reads only; a course whose
    SQLite ledger does not exist yet has no clusters."""
    from databricks.teachinglab.adapters.ledger.repository import find_clusters
    settings = course.settings
    if settings.ledger.db_path is not None and not settings.ledger.db_path.exists():
        return False
    try:
        open_ledger_for(settings, utcnow())
        return bool(find_clusters(name_or_id))
    finally:
        close_ledger()


def _every_course(cmd: Command, args: argparse.Namespace, courses: list[Course]) -> int:
    """The command once per course, in turn: a heading per course, or with --json one list of
    every course's rows (each row names its course) or an object keyed by course."""
    codes, rows, keyed = {}, [], {}
    for course in courses:
        if args.json:
            buffer = io.StringIO()
            with contextlib.redirect_stdout(buffer):
                codes[course.name] = _run(cmd, args, course)
            text = buffer.getvalue().strip()
            data = json.loads(text) if text else None
            if isinstance(data, list):
                rows.extend(data)
            else:
                keyed[course.name] = data
        else:
            print(f"== course {course.name} ==")
            codes[course.name] = _run(cmd, args, course)
        close_ledger()
    if args.json:
        json.dump(rows if not keyed else {**keyed, **({"rows": rows} if rows else {})}, sys.stdout, indent=2,
                  ensure_ascii=False)
        print()
    return combined_exit(codes)


def _run(cmd: Command, args: argparse.Namespace, course: Course | None, zones: tuple[str, ...] = ()) -> int:
    settings = with_log_target(course.settings, args) if course else None
    if settings is not None:
        setup_logging(args, secrets_of(settings), settings, course=None if course.implicit else course.name)
        use_clock_at(settings, args.at)
    inv = Invocation(cmd, args, settings, utcnow(), zones=zones)  # the one clock read of the command
    try:
        if cmd.locked:
            return run_locked(settings, cmd.name, lambda: cmd.run(inv))
        return cmd.run(inv)
    except AdminError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001 - one line and an exit code; --debug for the traceback
        if args.debug:
            raise
        unusable = ledger_unusable(settings, err)
        if unusable is not None:  # a command run by hand meets what the next poll will: the admin hears once
            print(f"--{cmd.name}: {unusable}", file=sys.stderr)
            alert_without_ledger(settings, f"--{cmd.name}", unusable)
            return EXIT_LEDGER
        return explain(settings, err, job=f"--{cmd.name}")


def run() -> int:
    """main(), plus the stdout flush at exit: `--json | head` may close the pipe only then."""
    def body() -> int:
        try:
            code = main()
            sys.stdout.flush()
            return code
        except BrokenPipeError as err:
            return explain(None, err, job="databricks.main")
    return interruptible("databricks.main", body)
