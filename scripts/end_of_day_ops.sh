#!/usr/bin/env bash
# Cron wrapper for the nightly close (00:07): archive, restore permissions, reset, report.
# Logs go to journald: journalctl -t dbr_scripts -r
set -u
cd "$(dirname "$0")/.." || exit 1
set -o pipefail
timeout 600 .venv/bin/python -m databricks.end_of_day_operations --journald "$@" 2>&1 \
  | systemd-cat -t dbr_scripts --level-prefix=true
