"""Cron entry point (00:07): close every finished day not yet closed.

Archives each cluster's day, restores CAN_RESTART for the clusters blocked that day, resets the
counters and queues the daily usage report for REPORT_RECIPIENT_EMAIL. Safe to run again.
"""
from __future__ import annotations

import sys

DESCRIPTION = ("Close every finished day not yet closed (catching up after missed nights): "
               "archive usage, restore permissions of blocked clusters, reset the day's "
               "counters, email the usage report. Running it again is harmless.")


def build_parser():
    from databricks.teachinglab.cli.jobs import job_parser
    return job_parser("databricks.end_of_day_operations", DESCRIPTION,
                      "say which days would close and which groups get their rights back; change "
                      "nothing (workspace, ledger, mail)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from databricks.teachinglab.cli.jobs import backup_first, close_days, run_job
    # The poll cron starts in the same minute: wait for it (it ends within 30 s) rather than lose the night.
    return run_job("end_of_day_operations", args, close_days, wait_for_lock=45, first=backup_first)


if __name__ == "__main__":
    from databricks.teachinglab.cli.parsing import interruptible
    sys.exit(interruptible("databricks.end_of_day_operations", main))
