#!/usr/bin/env python3
"""Kept for the old habit: the converter is `python -m databricks.main --convert_moodle`.

    python terraform/convert_moodle_to_tf_format.py moodle.csv [-o terraform/dbr/users.csv] [--strict]
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from databricks.main import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["--convert_moodle", *sys.argv[1:]]))
