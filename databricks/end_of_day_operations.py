"""Cron entry point (00:07): close every finished day not yet closed.

Archives each cluster's day, restores CAN_RESTART for the clusters blocked that day, resets the
counters and queues the daily usage report for REPORT_RECIPIENT_EMAIL. Safe to run again.
"""
from __future__ import annotations

import argparse
import logging
import sys

logger = logging.getLogger("databricks.end_of_day_operations")


def build_parser() -> argparse.ArgumentParser:
    from databricks.teachinglab.runtime import add_logging_flags
    parser = argparse.ArgumentParser(
        prog="python -m databricks.end_of_day_operations",
        description="Close every finished day not yet closed (catching up after missed nights): "
                    "archive usage, restore permissions of blocked clusters, reset the day's "
                    "counters, email the usage report. Running it again is harmless.")
    parser.add_argument("--dry-run", action="store_true",
                        help="say which days would close and which groups get their rights back; change "
                             "nothing (workspace, ledger, mail)")
    add_logging_flags(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from databricks.teachinglab.runtime import (run_locked, secrets_of, settings_or_exit,
                                                setup_logging, use_clock_at, utcnow)
    settings = settings_or_exit(need_mail=True)  # a job whose mail goes nowhere must not run
    setup_logging(args, secrets_of(settings))
    use_clock_at(settings, args.at)

    def body() -> int:
        import os
        from databricks.teachinglab.lab import Lab
        from databricks.teachinglab.nightly import run_end_of_day
        from databricks.teachinglab.runs import begin_run, end_run
        now = utcnow()
        lab = Lab.open(settings, now)
        if args.dry_run:
            from databricks.teachinglab.nightly import plan_end_of_day
            for line in plan_end_of_day(lab, now):
                print(line)
            print("nothing changed (--dry-run)")
            return 0
        run_id = begin_run(lab, "end_of_day_operations", now, os.getpid())
        code = 1
        try:
            report = run_end_of_day(lab, now)
            code = 1 if report.failures else 0
            if settings.db_path is not None:
                from databricks.teachinglab.ledger_guard import backup
                copy = backup(settings.db_path, now.astimezone(settings.timezone).date())
                logger.info("ledger backed up to %s (the newest 7 are kept)", copy)
            logger.info("end of day: closed %s; restored %d cluster(s); %d failure(s)",
                        ", ".join(map(str, report.closed)) or "nothing", len(report.restored),
                        len(report.failures))
            return code
        finally:
            end_run(run_id, utcnow(), code)

    return run_locked(settings, "end_of_day_operations", body, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
