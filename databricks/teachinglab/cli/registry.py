"""The admin CLI's command registry: each command declares its flag, whether it needs the
workspace or the ledger, whether it takes the run lock, and whether it changes anything (then
it honours --dry-run: tests/test_dry_run.py runs every such command with it). The dispatcher
(cli/admin.py) builds the parser from this table, reads the clock once and wires what the
command declared, so no command can forget an option that the others honour."""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

from databricks.teachinglab.cli.wiring import open_context
from databricks.teachinglab.core.settings import Settings
from databricks.teachinglab.services.context import JobContext


@dataclass
class Invocation:
    """What a command receives: its arguments, the settings and the one `now` of the run."""
    command: "Command"
    args: argparse.Namespace
    settings: Settings | None
    now: datetime
    _ctx: JobContext | None = None
    zones: tuple[str, ...] = ()      # every course's QUOTA_TIMEZONE, for a command run once for all (--crontab)

    def context(self) -> JobContext:
        """What the command declared, wired once: the ledger opened (`ledger`), the workspace
        client made on first use (`workspace`), the mail transport. A command calls this after
        its own checks, so a refused or dry-run command has not created a ledger."""
        if self._ctx is None:
            self._ctx = open_context(self.settings, self.now, ledger=self.command.ledger,
                                     workspace=self.command.workspace)
        return self._ctx


@dataclass(frozen=True)
class Command:
    name: str                        # the flag, without "--"
    run: Callable[[Invocation], int]
    help: str
    flag: dict = field(default_factory=lambda: {"action": "store_true"})  # argparse options of the flag
    changes: bool = False            # changes the workspace, the ledger, files or sends mail: --dry-run applies
    settings: bool = True            # False: needs no configuration at all (a file in, a file out)
    workspace: bool = False          # needs workspace credentials
    ledger: bool = False             # the dispatcher opens the ledger and builds the context
    locked: bool = False             # runs under the run lock, like the cron jobs
    needs: tuple[str, ...] = ()      # other options it cannot run without, e.g. ("cluster",)

    def given(self, args: argparse.Namespace) -> bool:
        value = getattr(args, self.name)
        return value is not None if self.flag.get("action") != "store_true" else bool(value)


COMMANDS: dict[str, Command] = {}


def command(name: str, help: str, **options) -> Callable[[Callable[[Invocation], int]], Callable[[Invocation], int]]:
    """Register the decorated function as `--name`; the table's order is --help's order."""
    def register(run: Callable[[Invocation], int]) -> Callable[[Invocation], int]:
        if name in COMMANDS:
            raise ValueError(f"--{name} is registered twice")
        COMMANDS[name] = Command(name, run, help, **options)
        return run
    return register
