"""The emulated workspace's own clock, so tests and the demo can move time."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone


class SandboxClock:
    """A settable UTC clock. It never moves by itself: callers advance it."""

    def __init__(self, start: datetime):
        if start.tzinfo is None:
            raise ValueError("SandboxClock needs an aware datetime")
        self._now = start.astimezone(timezone.utc)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = when.astimezone(timezone.utc)

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            self._now = self._now + timedelta(seconds=seconds)
            return self._now


def to_ms(when: datetime) -> int:
    return int(round(when.timestamp() * 1000))


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
