#!/usr/bin/env bash
# Semester end: back up every user's home folder and /Shared into DIR (default: a dated folder).
# Safe to run again: it resumes, skipping notebooks already exported with a matching checksum.
#   scripts/export_notebooks.sh [DIR] [--format SOURCE|DBC|JUPYTER]
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-backups/notebooks-$(date +%Y-%m-%d)}"
shift || true
exec .venv/bin/python -m databricks.main --export_notebooks "$dir" "$@"
