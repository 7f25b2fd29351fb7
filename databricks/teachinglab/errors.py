"""Errors an admin can fix by changing what they asked for; printed without a traceback (exit 2)."""


class AdminError(Exception):
    pass


class WorkspaceUnavailable(Exception):
    """The cluster list itself could not be read: nothing can be measured this run."""
