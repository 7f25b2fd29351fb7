"""The two cron jobs: settings, logging, one clock read, the run lock, the run log, the deadline.

    poll_clusters          every minute (POLL_INTERVAL_MINUTES), under `timeout 30`
    end_of_day_operations  00:07, after the midnight poll (it waits for that poll's lock)
"""
from __future__ import annotations

import argparse
import logging
import os
import time
from datetime import datetime
from typing import Callable

from databricks.teachinglab.adapters.deadline import Deadline
from databricks.teachinglab.adapters.ledger.guard import backup
from databricks.teachinglab.cli.clock import use_clock_at, utcnow
from databricks.teachinglab.cli.courses import Course
from databricks.teachinglab.cli.fanout import fan_out
from databricks.teachinglab.cli.parsing import LabParser
from databricks.teachinglab.cli.runtime import (add_logging_flags, courses_or_exit, failed_run_line, run_locked,
                                                secrets_of, setup_logging, with_log_target)
from databricks.teachinglab.cli.wiring import open_context
from databricks.teachinglab.services.context import JobContext
from databricks.teachinglab.services.nightly import plan_end_of_day, run_end_of_day
from databricks.teachinglab.services.poll import run_poll_to_the_second
from databricks.teachinglab.services.runs import begin_run, end_run


def job_parser(module: str, description: str, dry_run_help: str) -> argparse.ArgumentParser:
    parser = LabParser(prog=f"python -m {module}", description=description)
    parser.add_argument("--dry-run", action="store_true", help=dry_run_help)
    parser.add_argument("--course", metavar="NAME",
                        help="only this course of TEACHINGLAB_COURSES_FILE (default: every course, in parallel)")
    add_logging_flags(parser)
    return parser


DEADLINE_GRACE_SECONDS = 3.0  # a course's process past its deadline by this much is stopped


def run_job(job: str, args: argparse.Namespace, body: Callable[[JobContext, argparse.Namespace, datetime], int], *,
            deadline: bool = False, wait_for_lock: float = 0, first: Callable | None = None,
            started: float | None = None) -> int:
    """The job for every course it covers: one course in this process, several in parallel
    (cli/fanout.py), each under its own lock and ledger, all within the same deadline."""
    courses = courses_or_exit(args.course, need_mail=True, args=args)  # a job whose mail goes nowhere must not run
    if len(courses) == 1:
        code = run_course_job(job, args, body, courses[0], deadline=deadline, wait_for_lock=wait_for_lock,
                              first=first, started=started)
    else:
        every_secret = [s for c in courses for s in secrets_of(c.settings)]
        setup_logging(args, every_secret, courses[0].settings)
        seconds = courses[0].settings.workspace.poll_deadline_seconds if deadline else None
        code = fan_out(job, courses, lambda c: run_course_job(job, args, body, c, deadline=deadline,
                                                              wait_for_lock=wait_for_lock, first=first, started=started),
                       timeout_seconds=None if seconds is None else seconds + DEADLINE_GRACE_SECONDS)
    failed_run_line(job, code, args, courses[0].settings)
    return code


def run_course_job(job: str, args: argparse.Namespace, body: Callable[[JobContext, argparse.Namespace, datetime], int],
                   course: Course, *, deadline: bool = False, wait_for_lock: float = 0,
                   first: Callable | None = None, started: float | None = None) -> int:
    """Run `body` under the lock with a context built at one `now`; a real run is entered in the
    run log first (so a killed one is reported by the next) and closed with its exit code.
    `first(settings, now)`: what must happen under the lock before anything else (the close's
    backup), so nothing the run does, or fails to do, can skip it."""
    settings = with_log_target(course.settings, args)
    setup_logging(args, secrets_of(settings), settings, course=None if course.implicit else course.name)
    use_clock_at(settings, args.at)

    def locked() -> int:
        now = utcnow()
        if first is not None and not args.dry_run:
            first(settings, now)
        budget = Deadline(settings.workspace.poll_deadline_seconds if deadline else None, started=started)
        ctx = open_context(settings, now, deadline=budget)
        run_id = None if args.dry_run else begin_run(ctx, job, now, os.getpid())
        code = 1
        try:
            code = body(ctx, args, now)
            return code
        finally:
            if run_id is not None:
                end_run(run_id, utcnow(), code)

    return run_locked(settings, job, locked, debug=args.debug, wait_seconds=wait_for_lock)


def _sleep_and_read_the_clock(seconds: float) -> datetime:
    time.sleep(max(0.0, seconds))
    return utcnow()


def poll(ctx: JobContext, args: argparse.Namespace, now: datetime) -> int:
    log = logging.getLogger("databricks.poll_clusters")
    report = run_poll_to_the_second(ctx, now, wait=_sleep_and_read_the_clock, dry_run=args.dry_run,
                                    interval_seconds=ctx.settings.workspace.poll_interval_seconds)
    if not args.dry_run and ctx.deadline.remaining() > 10:
        from databricks.teachinglab.services import serverless
        if serverless.due(ctx.settings, now):  # SERVERLESS_CHECK_MINUTES: the bill, read within the deadline
            serverless.serverless_job(ctx, now, "poll_clusters")
            ctx.deliver(now)
    log.info("poll done: %d clusters, %d warned, %d terminated, %d blocked, %d failed%s%s",
             len(report.outcomes), report.count_done("warn"), report.count_done("terminate"),
             report.count_done("block"), len(report.failures),
             " (deadline reached)" if ctx.deadline.expired else "",
             " (dry run: nothing changed)" if args.dry_run else "")
    quota = ctx.settings.quota
    missing = [t for t in report.unpriced_node_types
               if quota.prices.rate(t.removesuffix(" (Photon)"), t.endswith(" (Photon)")) is None] \
        if quota.unit.priced else []
    if missing:
        # Enforced all the same (at the table's dearest rate, an upper bound); a configuration
        # error for the admin to fix, so exit 2, as for any other.
        for label in missing:
            node_type = label.removesuffix(" (Photon)")
            if label.endswith(" (Photon)"):
                message = (f"QUOTA_UNIT={quota.unit.name} needs the Photon DBU rate of node type {node_type} (its "
                           f"clusters run Photon), which the price table {quota.price_file} lacks: add "
                           "photon_dbu_per_hour to its entry, or photon_dbu_multiplier to the table.")
            else:
                message = (f"QUOTA_UNIT={quota.unit.name} needs the price of node type {node_type}, which the price "
                           f"table {quota.price_file} lacks: add it there (DBU per hour and the VM's $ per hour).")
            log.error("configuration error: %s Until then its clusters count at the table's dearest rate.", message)
        return 2
    return 1 if report.failed else 0


def backup_first(settings, now: datetime) -> None:
    """The nightly backup, before the close does anything (before its own entry in the run log,
    so a ledger restored from it never takes that close for a killed one): a mail that fails, a
    workspace that hangs, nothing can skip it. A SQLite ledger only: PostgreSQL has its own."""
    import sqlite3
    db_path = settings.ledger.db_path
    log = logging.getLogger("databricks.end_of_day_operations")
    if db_path is None or not db_path.exists():
        return
    try:
        copy = backup(db_path, now.astimezone(settings.quota.timezone).date())
    except (sqlite3.Error, OSError) as err:  # a corrupt ledger: opening it next says so, with what to do
        log.error("the nightly backup of %s failed (%s: %s)", db_path, type(err).__name__, err)
        return
    log.info("ledger backed up to %s before the close (the newest 7 are kept)", copy)


def close_days(ctx: JobContext, args: argparse.Namespace, now: datetime) -> int:
    log = logging.getLogger("databricks.end_of_day_operations")
    if args.dry_run:
        for line in plan_end_of_day(ctx, now):
            print(line)
        print("nothing changed (--dry-run)")
        return 0
    report = run_end_of_day(ctx, now)
    log.info("end of day: closed %s; restored %d cluster(s); %d failure(s)",
             ", ".join(map(str, report.closed)) or "nothing", len(report.restored), len(report.failures))
    return 1 if report.failures else 0
