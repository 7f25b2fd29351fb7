"""Cron entry point (every 15 minutes): measure each cluster's usage today and enforce quotas.

    timeout 30 python -m databricks.poll_clusters [--dry-run] [--journald]
"""
from __future__ import annotations

import argparse
import logging
import sys

logger = logging.getLogger("databricks.poll_clusters")


def build_parser() -> argparse.ArgumentParser:
    from databricks.teachinglab.runtime import add_logging_flags
    parser = argparse.ArgumentParser(
        prog="python -m databricks.poll_clusters",
        description="Measure each cluster's usage today from cluster events, warn groups at the soft "
                    "quota (DATABRICKS_WARN_UPTIME), terminate and block restarts at the hard quota "
                    "(DATABRICKS_MAX_UPTIME). Exit 0 when every cluster was handled, 1 when some "
                    "failed (the admin gets one alert), 2 on bad configuration, 75 if another run "
                    "holds the lock.")
    parser.add_argument("--dry-run", action="store_true",
                        help="decide and log everything, change nothing (workspace, ledger, mail)")
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
        from databricks.teachinglab.deadline import Deadline
        from databricks.teachinglab.enforcement import run_poll
        from databricks.teachinglab.lab import Lab
        from databricks.teachinglab.runs import begin_run, end_run
        deadline = Deadline(settings.poll_deadline_seconds)  # one budget for every call and retry
        now = utcnow()
        lab = Lab.open(settings, now, deadline=deadline)
        run_id = None if args.dry_run else begin_run(lab, "poll_clusters", now, os.getpid())
        code = 1
        try:
            report = run_poll(lab, now, dry_run=args.dry_run)
            code = 1 if report.failures else 0
            logger.info("poll done: %d clusters, %d warned, %d terminated, %d blocked, %d failed%s%s",
                        len(report.outcomes), report.count_done("warn"), report.count_done("terminate"),
                        report.count_done("block"), len(report.failures),
                        " (deadline reached)" if deadline.expired else "",
                        " (dry run: nothing changed)" if args.dry_run else "")
            return code
        finally:
            if run_id is not None:
                end_run(run_id, utcnow(), code)

    return run_locked(settings, "poll_clusters", body, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
