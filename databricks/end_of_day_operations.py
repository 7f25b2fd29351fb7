"""Cron entry point (00:07): close every finished day not yet closed.

Archives each cluster's day, restores CAN_RESTART for the clusters blocked that day, resets the
counters and queues the daily usage report for REPORT_RECIPIENT_EMAIL. Safe to run again.
"""
from __future__ import annotations

import argparse
import logging
import sys

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    from databricks.teachinglab.runtime import add_logging_flags
    parser = argparse.ArgumentParser(
        prog="python -m databricks.end_of_day_operations",
        description="Close every finished day not yet closed (catching up after missed nights): "
                    "archive usage, restore permissions of blocked clusters, reset the day's "
                    "counters, email the usage report. Running it again is harmless.")
    add_logging_flags(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from databricks.teachinglab.runtime import (run_locked, secrets_of, settings_or_exit,
                                                setup_logging, utcnow)
    settings = settings_or_exit()
    setup_logging(args, secrets_of(settings))

    def body() -> int:
        from databricks.teachinglab.lab import Lab
        from databricks.teachinglab.nightly import run_end_of_day
        now = utcnow()
        report = run_end_of_day(Lab.open(settings, now), now)
        logger.info("end of day: closed %s; restored %d cluster(s); %d failure(s)",
                    ", ".join(map(str, report.closed)) or "nothing", len(report.restored),
                    len(report.failures))
        return 1 if report.failures else 0

    return run_locked(settings, "end_of_day_operations", body)


if __name__ == "__main__":
    sys.exit(main())
