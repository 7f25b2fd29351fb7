"""Cron entry point (every 15 minutes): measure each cluster's usage today and enforce quotas.

    timeout 30 python -m databricks.poll_clusters [--dry-run] [--journald]
"""
from __future__ import annotations

import sys
import time

STARTED = time.monotonic()  # the run's deadline counts from here, before any heavy import

DESCRIPTION = ("Measure each cluster's usage today from cluster events, warn groups at the soft "
               "quota (DATABRICKS_WARN_UPTIME), terminate and block restarts at the hard quota "
               "(DATABRICKS_MAX_UPTIME). Exit 0 when every cluster was handled, 1 when some "
               "failed (the admin gets one alert), 2 on bad configuration, 75 if another run "
               "holds the lock.")


def build_parser():
    from databricks.teachinglab.cli.jobs import job_parser
    return job_parser("databricks.poll_clusters", DESCRIPTION,
                      "decide and log everything, change nothing (workspace, ledger, mail)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from databricks.teachinglab.cli.jobs import poll, run_job
    # Run as a program, the budget began at the process's start; called in process, at this call.
    started = STARTED if __name__ == "__main__" else None
    return run_job("poll_clusters", args, poll, deadline=True, started=started)


if __name__ == "__main__":
    from databricks.teachinglab.cli.parsing import interruptible
    sys.exit(interruptible("databricks.poll_clusters", main))
