"""Errors shaped the way Databricks shapes them: an HTTP status, an error_code and a message."""
from __future__ import annotations


class ApiError(Exception):
    def __init__(self, status: int, error_code: str, message: str, *, retry_after: int | None = None):
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message
        self.retry_after = retry_after

    def body(self) -> dict:
        return {"error_code": self.error_code, "message": self.message}
