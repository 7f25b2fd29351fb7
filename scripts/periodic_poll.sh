#!/usr/bin/env bash
# Cron wrapper for the poll. Cron kills nothing by itself, so `timeout 30` does: a poll must
# never overlap the next one or pile up behind a hung network. The poll stops its own work at
# POLL_DEADLINE_SECONDS (25 s by default), records what it measured and alerts, inside the 30 s.
# Logs: journald (journalctl -t dbr_scripts -r), else syslog (tag dbr_scripts), else teachinglab.log
# beside the ledger (TEACHINGLAB_LOG_DIR); see scripts/job.sh.
set -u
cd "$(dirname "$0")/.." || exit 1
. scripts/job.sh
run_job "${POLL_TIMEOUT_SECONDS:-30}" databricks.poll_clusters "$@"
