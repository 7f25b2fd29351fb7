"""Errors an admin can fix by changing what they asked for; printed without a traceback (exit 2)."""


class AdminError(Exception):
    pass


class WorkspaceUnavailable(Exception):
    """The cluster list itself could not be read: nothing can be measured this run."""


class DeadlineReached(Exception):
    """The run's time budget (POLL_DEADLINE_SECONDS) ran out before this call could be made."""


class LedgerUnavailable(Exception):
    """The ledger cannot be opened or trusted (corrupt, unreadable, missing after it existed)."""
