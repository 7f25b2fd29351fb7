#!/usr/bin/env bash
# Cron wrapper for the nightly close (00:07): archive, restore permissions, reset, report.
# Logs: journald (journalctl -t dbr_scripts -r), else syslog (tag dbr_scripts), else teachinglab.log
# beside the ledger (TEACHINGLAB_LOG_DIR); see scripts/job.sh.
set -u
cd "$(dirname "$0")/.." || exit 1
. scripts/job.sh
run_job "${END_OF_DAY_TIMEOUT_SECONDS:-600}" databricks.end_of_day_operations "$@"
