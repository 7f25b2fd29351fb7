"""The only clock read in the product. freezegun moves it in tests; --at moves it in a hand demo
against the emulated workspace. Everything below the CLI takes `now` from here."""
from __future__ import annotations

import sys
from datetime import datetime, timezone

from databricks.teachinglab.cli.config import is_loopback
from databricks.teachinglab.core.settings import Settings

EXIT_CONFIG = 2

_AT: datetime | None = None  # --at: a hand demo against the emulator runs at the sandbox's time


def utcnow() -> datetime:
    """The only clock read in the project (freezegun moves it in tests; --at in a hand demo)."""
    return _AT if _AT is not None else datetime.now(timezone.utc)


def use_clock_at(settings: Settings, at: str | None) -> None:
    """--at TIME: only against the emulated workspace (on loopback), never a real one, where the
    quota must follow the real clock."""
    global _AT
    if not at:
        return
    if not is_loopback(settings.workspace.host):
        print("--at is for the emulated workspace (DATABRICKS_HOST on 127.0.0.1) only", file=sys.stderr)
        sys.exit(EXIT_CONFIG)
    try:
        parsed = datetime.fromisoformat(at.strip().strip('"'))
    except ValueError:
        print(f"--at {at!r} is not an ISO 8601 time with offset, e.g. 2026-03-02T16:00:00+02:00", file=sys.stderr)
        sys.exit(EXIT_CONFIG)
    if parsed.tzinfo is None:
        print(f"--at {at!r} needs a UTC offset, e.g. +02:00", file=sys.stderr)
        sys.exit(EXIT_CONFIG)
    _AT = parsed.astimezone(timezone.utc)
