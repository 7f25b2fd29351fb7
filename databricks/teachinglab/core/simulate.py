"""The policy simulator: replays recorded usage sessions under a policy, day by day in local
days, and says where each group would have been stopped and what that denied. Pure, and built on
the same Balance as the poll (core/allowance.py), so a simulated stop is the poll's stop.

A group is stopped at the instant its usage that day reaches the day's hard limit (all its
clusters: the poll stops them together); what it ran after that is denied, and only what it was
allowed counts toward its week and semester. Recorded usage was itself cut short by the policy in
force then: a looser policy cannot show demand the old one denied (the report says so).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from databricks.teachinglab.core.accounting import day_bounds, local_day, overlap_ms
from databricks.teachinglab.core.allowance import Balance
from databricks.teachinglab.core.policy import Policy

MS = timedelta(milliseconds=1)


@dataclass(frozen=True)
class Piece:
    """A stretch of one cluster's session inside one local day."""
    start: datetime
    end: datetime
    rate: float            # quota amount per ms (1.0 for minutes)
    usd_rate: float        # dollars per ms

    @property
    def ms(self) -> int:
        return max(0, (self.end - self.start) // MS)


@dataclass
class GroupOutcome:
    group: str
    stops: list[datetime] = field(default_factory=list)   # one per day stopped, in the reported window
    denied_ms: int = 0          # uptime after the stops
    denied_amount: int = 0      # in the quota unit
    saved_usd: float = 0.0
    used_amount: int = 0        # what it was allowed to use, in the window

    @property
    def stop_days(self) -> list[date]:
        return [s.date() for s in self.stops]


def day_pieces(sessions, tz: ZoneInfo) -> dict[date, list[Piece]]:
    """(start, end, rate, usd_rate) sessions cut at local midnights (DST days have 23 or 25 hours)."""
    out: dict[date, list[Piece]] = {}
    for start, end, rate, usd_rate in sessions:
        day = local_day(start, tz)
        while True:
            lo, hi = day_bounds(day, tz)
            if overlap_ms(start, end, lo, hi) > 0:
                out.setdefault(day, []).append(Piece(max(start, lo), min(end, hi), rate, usd_rate))
            if end <= hi:
                break
            day += timedelta(days=1)
    return out


def stop_instant(pieces: list[Piece], hard: int) -> datetime | None:
    """When the group's usage on the day reaches `hard`, its pieces running together; None if never."""
    if not pieces:
        return None
    if hard <= 0:
        return min(p.start for p in pieces)
    events = sorted([(p.start, p.rate) for p in pieces] + [(p.end, -p.rate) for p in pieces], key=lambda e: e[0])
    used, rate, at = 0.0, 0.0, events[0][0]
    for when, change in events:
        if rate > 0:
            step = (when - at) // MS * rate
            if used + step >= hard:
                return at + MS * -(-(hard - used) // rate)   # rounded up to the ms
            used += step
        rate, at = rate + change, when
    return None


def simulate_group(policy: Policy, group: str, pieces: dict[date, list[Piece]], *, start: date, end: date,
                   report_from: date, report_to: date, granted: dict[date, int] | None = None,
                   tz: ZoneInfo) -> GroupOutcome:
    granted = granted or {}
    balance = Balance(policy.for_group(group), policy.unit, policy.topups_for(group))
    out = GroupOutcome(group)
    day = start
    while day <= end:
        today = pieces.get(day, [])
        a = balance.allowance(day, granted=granted.get(day, 0))
        total = round(sum(p.ms * p.rate for p in today))
        stop = stop_instant(today, a.hard) if total >= a.hard else None
        used = total if stop is None else min(total, a.hard)
        if report_from <= day <= report_to:
            out.used_amount += used
            if stop is not None:
                out.stops.append(stop.astimezone(tz))
                out.denied_amount += total - used
                for p in today:
                    late = overlap_ms(p.start, p.end, stop, p.end)
                    out.denied_ms += late
                    out.saved_usd += late * p.usd_rate
        balance.close(day, used, granted=granted.get(day, 0))
        day += timedelta(days=1)
    return out


def nearest_stop(stops: list[datetime], first: date, last: date) -> tuple[datetime | None, int | None]:
    """The stop closest to the window [first, last], and how many days from it (0: inside)."""
    best: tuple[int, datetime] | None = None
    for s in stops:
        d = s.date()
        away = 0 if first <= d <= last else min(abs((d - first).days), abs((d - last).days))
        if best is None or away < best[0]:
            best = (away, s)
    return (best[1], best[0]) if best else (None, None)
