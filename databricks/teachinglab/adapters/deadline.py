"""One time budget for a whole run: every API call, every retry and the mail delivery share it.

Cron kills a poll at 30 s (`timeout 30` in scripts/periodic_poll.sh), so the poll stops its own
work earlier (POLL_DEADLINE_SECONDS, 25 s by default), records what it measured, and says so.
This measures elapsed time with a monotonic clock; it never reads the wall clock.
"""
from __future__ import annotations

import math
import time
from typing import Callable

from databricks.teachinglab.core.errors import DeadlineReached

# Mail may use a little time past the API deadline, so the alert about the deadline itself can
# still leave inside cron's 30 s (25 + 3 < 30).
MAIL_GRACE_SECONDS = 3.0


class Deadline:
    def __init__(self, seconds: float | None, *, monotonic: Callable[[], float] = time.monotonic,
                 started: float | None = None):
        """`started`: when the budget began on the `monotonic` clock; by default now. A job passes
        its process's start, so the imports (most of a second for databricks-sdk) count too."""
        self.seconds = seconds
        self._monotonic = monotonic
        self._start = monotonic() if started is None else started
        self._end = None if seconds is None else self._start + seconds

    def elapsed(self) -> float:
        """Seconds since the run's budget began (it begins when the run reads its clock)."""
        return self._monotonic() - self._start

    def remaining(self) -> float:
        return math.inf if self._end is None else self._end - self._monotonic()

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0

    def check(self, what: str) -> None:
        if self.expired:
            raise DeadlineReached(f"{what}: not started, the run's {self.seconds:g} s deadline has passed")

    def allows_sleep(self, seconds: float) -> bool:
        return seconds < self.remaining()

    def mail_budget(self, budget: float) -> float:
        return min(budget, max(0.0, self.remaining()) + MAIL_GRACE_SECONDS)


UNBOUNDED = Deadline(None)
