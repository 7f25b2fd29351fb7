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


def console() -> int:
    """The `teachinglab` console script and `python -m databricks.main`: Ctrl-C, even during the
    imports, is one line and exit 130."""
    from databricks.teachinglab.cli.parsing import interruptible

    def run() -> int:
        from databricks.teachinglab.cli.admin import run as dispatch_and_flush
        return dispatch_and_flush()
    return interruptible("databricks.main", run)


if __name__ == "__main__":
    sys.exit(console())
