"""Errors an admin can fix by changing what they asked for; printed without a traceback (exit 2)."""


class AdminError(Exception):
    pass
