"""Errors an admin can fix by changing what they asked for; printed without a traceback (exit 2)."""


class AdminError(Exception):
    pass


class WorkspaceUnavailable(Exception):
    """The cluster list itself could not be read: nothing can be measured this run."""


class DeadlineReached(Exception):
    """The run's time budget (POLL_DEADLINE_SECONDS) ran out before this call could be made."""


class LedgerUnavailable(Exception):
    """The ledger cannot be opened or trusted (corrupt, unreadable, missing after it existed)."""


class LockBusy(Exception):
    """Another run holds the run lock (a file lock, or PostgreSQL's advisory lock)."""


class LockLost(Exception):
    """The run lock was lost mid-run (its PostgreSQL session ended): the run stops before writing."""


class Failed:
    """An error caught in one of many calls (a cluster, a group), carried as data with its
    traceback as text, so the admin's alert can show it. Not an exception: it is returned."""

    __slots__ = ("error", "traceback")

    def __init__(self, error: BaseException, traceback: str = ""):
        self.error = error
        self.traceback = traceback

    def __str__(self) -> str:
        return str(self.error)

    def __repr__(self) -> str:
        return f"Failed({self.error!r})"

    @property
    def kind(self) -> str:
        return type(self.error).__name__


class MessageProblem(Exception):
    """One message could not be made or sent as it should: that message's failure, never the run's."""


class Expected(Exception):
    """A failure the product knows and explains itself (its message is the cause and the fix):
    an alert shows the message and no traceback."""
