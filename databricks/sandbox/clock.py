"""The emulated workspace's own clock, so tests and the demo can move time."""
from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone


class SandboxClock:
    """A settable UTC clock. By default it moves only when told (tests, the demo); with
    ticking=True it also runs at real speed (a sandbox started by hand)."""

    def __init__(self, start: datetime, *, ticking: bool = False):
        if start.tzinfo is None:
            raise ValueError("SandboxClock needs an aware datetime")
        self._now = start.astimezone(timezone.utc)
        self._ticking = ticking
        self._since = time.monotonic()
        self._lock = threading.Lock()

    def _elapsed(self) -> timedelta:
        return timedelta(seconds=time.monotonic() - self._since) if self._ticking else timedelta(0)

    def now(self) -> datetime:
        with self._lock:
            return self._now + self._elapsed()

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = when.astimezone(timezone.utc)
            self._since = time.monotonic()

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            self._now = self._now + self._elapsed() + timedelta(seconds=seconds)
            self._since = time.monotonic()
            return self._now


def to_ms(when: datetime) -> int:
    return int(round(when.timestamp() * 1000))


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
