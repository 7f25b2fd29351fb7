"""Report numbers from the archived history. Pure over the rows it is given."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from .ledger import UsageHistory


@dataclass(frozen=True)
class ReportRow:
    cluster_id: str
    cluster_name: str
    group: str | None
    used_ms: int
    limit_ms: int
    sessions: int
    warned: bool
    terminated: bool
    blocked: bool
    estimated: bool

    @property
    def used_minutes(self) -> int:
        return self.used_ms // 60_000

    @property
    def limit_minutes(self) -> int:
        return self.limit_ms // 60_000

    @property
    def percent(self) -> int:
        return round(100 * self.used_ms / self.limit_ms) if self.limit_ms else 0

    @property
    def flags(self) -> str:
        names = [n for n, on in (("warned", self.warned), ("terminated", self.terminated),
                                 ("blocked", self.blocked), ("estimate", self.estimated)) if on]
        return ",".join(names)


def row_from_history(h: UsageHistory) -> ReportRow:
    return ReportRow(h.cluster_id, h.cluster_name, h.group_name, h.used_ms, h.limit_ms, h.sessions,
                     h.warned, h.terminated, h.blocked_group is not None, h.estimated)


def day_rows(day: date) -> list[ReportRow]:
    query = UsageHistory.select().where(UsageHistory.day == day)
    return sorted((row_from_history(h) for h in query), key=lambda r: (r.group or "~", r.cluster_name))


def totals(rows: list[ReportRow]) -> dict:
    return {"used_minutes": sum(r.used_ms for r in rows) // 60_000,
            "sessions": sum(r.sessions for r in rows),
            "warned": sum(r.warned for r in rows),
            "terminated": sum(r.terminated for r in rows),
            "blocked": sum(r.blocked for r in rows)}
