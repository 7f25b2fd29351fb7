#!/usr/bin/env bash
# Restore a notebook backup made by export_notebooks.sh: everything, or one user's folder.
#   scripts/import_notebooks.sh DIR [--user EMAIL]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ]; then
  echo "usage: $0 DIR [--user EMAIL]" >&2
  exit 2
fi
dir="$1"
shift
exec .venv/bin/python -m databricks.main --import_notebooks "$dir" "$@"
