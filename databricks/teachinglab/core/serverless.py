"""Serverless compute inside the quota: billing records booked to groups and local days, and a
group's serverless allowance (daily, weekly, semester caps in DBU). Pure: takes data and `today`.

Where the figures come from (docs "Billable usage system table reference" and "Monitor the cost
of serverless compute"): `system.billing.usage` has one or more records per workload and hour,
`identity_metadata.run_as` names whose credentials ran it, `record_type` is ORIGINAL, RETRACTION
(a negative copy of a record being corrected) or RESTATEMENT (the corrected record), and records
"usually" arrive within hours (ORIGINAL records within 12). So every record is kept once, by its
`record_id`, and a day's figure is the sum of its records: a correction nets out, a re-read adds
nothing, a late record lands on its own day.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from databricks.teachinglab.core.accounting import local_day

SERVERLESS_CAPS = ("daily", "weekly", "semester")
EPSILON = 1e-9  # DBU figures are decimals summed as floats: 0.1 + 0.2 reaches a cap of 0.3


@dataclass(frozen=True)
class ServerlessCaps:
    """One group's serverless allowance in DBU (None: no such cap). `counts_toward_quota`: its
    serverless DBUs (or dollars) also count toward the group's main allowance when QUOTA_UNIT is
    dbu or usd."""
    daily_max: float | None = None
    weekly_max: float | None = None
    semester_max: float | None = None
    counts_toward_quota: bool = False

    @property
    def any_cap(self) -> bool:
        return any(v is not None for v in (self.daily_max, self.weekly_max, self.semester_max))

    def cap(self, name: str) -> float | None:
        return {"daily": self.daily_max, "weekly": self.weekly_max, "semester": self.semester_max}[name]


@dataclass(frozen=True)
class BillingRecord:
    """One row of system.billing.usage with serverless usage, as read."""
    record_id: str
    run_as: str | None
    start: datetime            # UTC
    end: datetime
    dbu: float                 # negative for a RETRACTION
    record_type: str = "ORIGINAL"
    ingestion_date: date | None = None
    notebook_id: str | None = None
    product: str | None = None          # billing_origin_product (INTERACTIVE, JOBS, ...)
    usd_per_dbu: float | None = None    # the list price, when the table had one


@dataclass(frozen=True)
class Booked:
    """A record as the ledger keeps it: on the local day its usage started, with its group."""
    record: BillingRecord
    group: str | None
    day: date
    usd: float | None


def book(records: list[BillingRecord], group_of: dict[str, str], tz: ZoneInfo,
         dbu_price: float | None) -> list[Booked]:
    """`group_of`: a user name (lower case) or service principal's application id -> its course
    group. A record whose identity is in no course group is booked with group None: reported,
    never dropped. USD at the record's list price, else the price table's serverless price."""
    out = []
    for r in records:
        price = r.usd_per_dbu if r.usd_per_dbu is not None else dbu_price
        group = group_of.get((r.run_as or "").lower())
        out.append(Booked(r, group, local_day(r.start, tz), None if price is None else round(r.dbu * price, 6)))
    return out


@dataclass(frozen=True)
class Standing:
    """A group's serverless use against its allowance on `today`."""
    group: str
    today: float
    week: float
    semester: float
    spent: str | None = None          # the cap that is spent (the one that keeps access off longest)
    used: float = 0.0                 # in that cap's period
    limit: float = 0.0
    returns_on: date | None = None    # when access comes back (None: not this semester)

    def figure(self, cap: str) -> float:
        return {"daily": self.today, "weekly": self.week, "semester": self.semester}[cap]


def week_start(day: date) -> date:
    """Monday of the ISO week (the weekly caps' week, as for clusters)."""
    return day - timedelta(days=day.weekday())


def standing(group: str, caps: ServerlessCaps, dbu_by_day: dict[date, float], today: date, *,
             semester_start: date | None, semester_end: date | None) -> Standing:
    monday = week_start(today)
    used_today = dbu_by_day.get(today, 0.0)
    week = sum(v for d, v in dbu_by_day.items() if monday <= d <= today)
    semester = sum(v for d, v in dbu_by_day.items() if d <= today and (semester_start is None or d >= semester_start))
    ends = {"daily": today + timedelta(days=1), "weekly": monday + timedelta(days=7),
            "semester": semester_end + timedelta(days=1) if semester_end else None}
    figures = {"daily": used_today, "weekly": week, "semester": semester}
    spent = [c for c in SERVERLESS_CAPS if caps.cap(c) is not None and figures[c] >= caps.cap(c) - EPSILON]
    base = Standing(group, round(used_today, 6), round(week, 6), round(semester, 6))
    if not spent:
        return base
    # The cap whose period ends last decides when access returns (semester: never, this semester).
    longest = max(spent, key=lambda c: (ends[c] is None, ends[c] or date.min))
    return Standing(base.group, base.today, base.week, base.semester, longest, round(figures[longest], 6),
                    caps.cap(longest), ends[longest])


@dataclass(frozen=True)
class Freshness:
    """How fresh the serverless figures are: the latest usage the bill has shown, and when it
    was read. Billing lags by hours, so every view says so."""
    data_until: datetime | None
    checked_at: datetime | None

    def describe(self, tz: ZoneInfo) -> str:
        if self.checked_at is None:
            return "serverless use not read from billing yet"
        if self.data_until is None:
            return f"no serverless usage billed yet (billing read at {_local(self.checked_at, tz)})"
        return f"billing data up to {_local(self.data_until, tz)} (read at {_local(self.checked_at, tz)})"


def _local(at: datetime, tz: ZoneInfo) -> str:
    return at.astimezone(tz).strftime("%a %d %b %H:%M")


@dataclass(frozen=True)
class ServerlessReplay:
    """What a serverless allowance would have done to recorded use: the days the group's access
    would have been off (at the day's end, as the nightly close decides) and the DBUs used beyond
    the caps (what a block without billing lag would have denied)."""
    used: float
    denied: float
    off_days: tuple[date, ...]


def replay(caps: ServerlessCaps, used_by_day: dict[date, float], start: date, end: date, *,
           report_from: date, semester_start: date | None, semester_end: date | None) -> ServerlessReplay:
    week = semester = 0.0
    used_total = denied = 0.0
    off: list[date] = []
    d = start
    while d <= end:
        if d.weekday() == 0:
            week = 0.0
        in_semester = (semester_start is None or d >= semester_start) and (semester_end is None or d <= semester_end)
        room = [c for c in (caps.daily_max, None if caps.weekly_max is None else caps.weekly_max - week,
                            None if caps.semester_max is None or not in_semester else caps.semester_max - semester)
                if c is not None]
        used = used_by_day.get(d, 0.0)
        took = min(used, max(0.0, min(room))) if room else used
        week += took
        semester += took if in_semester else 0.0
        if d >= report_from:
            used_total += used
            denied += used - took
            spent = [c for c in room if took >= c - EPSILON]
            if spent:
                off.append(d)
        d += timedelta(days=1)
    return ServerlessReplay(round(used_total, 6), round(denied, 6), tuple(off))
