#!/usr/bin/env bash
# Cron wrapper for the nightly close (00:07): archive, restore permissions, reset, report.
# Logs go to journald: journalctl -t dbr_scripts -r
set -u
cd "$(dirname "$0")/.." || exit 1
. scripts/job.sh
run_job "${END_OF_DAY_TIMEOUT_SECONDS:-600}" databricks.end_of_day_operations "$@"
