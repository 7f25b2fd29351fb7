#!/usr/bin/env bash
# Cron wrapper for the 15-minute poll. Cron kills nothing by itself, so `timeout 30` does:
# a poll must never overlap the next one or pile up behind a hung network.
# Logs go to journald: journalctl -t dbr_scripts -r
set -u
cd "$(dirname "$0")/.." || exit 1
set -o pipefail
timeout 30 .venv/bin/python -m databricks.poll_clusters --journald "$@" 2>&1 \
  | systemd-cat -t dbr_scripts --level-prefix=true
