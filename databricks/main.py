"""Admin CLI: python -m databricks.main --flags (see --help). The commands are declared in
databricks/teachinglab/cli/ (commands.py, provisioning_commands.py) and dispatched by cli/admin.py."""
from __future__ import annotations

import sys


def build_parser():
    from databricks.teachinglab.cli.admin import build_parser as build
    return build()


def main(argv: list[str] | None = None) -> int:
    from databricks.teachinglab.cli.admin import main as dispatch
    return dispatch(argv)


if __name__ == "__main__":
    from databricks.teachinglab.cli.admin import run
    sys.exit(run())
