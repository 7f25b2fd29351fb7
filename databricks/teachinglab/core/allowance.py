"""A group's balance through the semester under a policy (core/policy.py): what it may still use
today, which cap that is, and when it refills. Pure, and the one piece of arithmetic the poll,
the students' page and the simulator share: each walks the days in order, asks `allowance(day)`,
then books the day with `close(day, used)`.

The rules, all in integer amounts of the quota unit:
- base      = the least of today's daily max, what is left of the week (its max plus the carry-over
              from last week) and what is left of the semester;
- hard      = base + today's grants + what is left in the top-up banks valid today;
- warn      = the daily warn level, or the point where 80 % of the week or the semester would be
              used, whichever comes first; a week's or semester's warning is sent once
              (the caller passes those already sent);
- booking   : usage above the base is drawn from today's grants, then the banks (the one expiring
              first first); only what is left counts toward the week and the semester, so extra
              minutes are extra;
- carry-over: a week's unused minutes (max + carry-in - counted), up to carry_over_max.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from databricks.teachinglab.core.policy import GroupCaps, TopUp
from databricks.teachinglab.core.quota import Limits
from databricks.teachinglab.core.units import QuotaUnit

WARN_SHARE = 0.8   # of the weekly and semester caps


def week_of(day: date) -> tuple[int, int]:
    """ISO (year, week): weeks run Monday to Sunday."""
    iso = day.isocalendar()
    return iso[0], iso[1]


def period_key(cap: str, day: date, caps: GroupCaps) -> str:
    """What a warning or stop notice is once per: the day, the ISO week or the semester."""
    if cap == "weekly":
        year, week = week_of(day)
        return f"{year}-W{week:02d}"
    if cap == "semester":
        return f"semester-{caps.semester_start or 'all'}"
    return day.isoformat()


def refill_day(cap: str, day: date, caps: GroupCaps) -> date | None:
    """When the cap that stopped a group on `day` fills again: tomorrow, next Monday, or never
    this semester (None)."""
    if cap == "daily":
        return day + timedelta(days=1)
    if cap == "weekly":
        return day + timedelta(days=7 - day.weekday())
    return None


def refill_text(cap: str, day: date, caps: GroupCaps) -> str:
    when = refill_day(cap, day, caps)
    if cap == "daily":
        return f"tomorrow ({when.isoformat()})"
    if cap == "weekly":
        return f"next Monday ({when.isoformat()})"
    end = f" (it ends {caps.semester_end.isoformat()})" if caps.semester_end else ""
    return f"never this semester{end}"


@dataclass(frozen=True)
class Allowance:
    day: date
    unit: QuotaUnit
    caps: GroupCaps
    daily_warn: int
    daily_max: int
    granted: int                 # today's grants
    week_left: int | None        # before today's usage; None without a weekly cap
    week_total: int | None       # the week's max plus the carry-in
    week_used: int               # counted this week before today
    semester_left: int | None
    semester_used: int           # counted this semester before today
    bank_left: int               # top-ups valid today, less what was drawn
    base: int
    cap: str                     # the cap the base comes from: daily | weekly | semester
    warn: int
    warn_cap: str

    @property
    def hard(self) -> int:
        return self.base + self.granted + self.bank_left

    def limits(self) -> Limits:
        return Limits(min(self.warn, self.hard), self.hard, self.unit, cap=self.cap, warn_cap=self.warn_cap,
                      refills=refill_text(self.cap, self.day, self.caps),
                      period=period_key(self.cap, self.day, self.caps),
                      warn_period=period_key(self.warn_cap, self.day, self.caps), bank=self.bank_left,
                      spans=tuple((cap, used, total) for cap, used, total in (
                          ("weekly", self.week_used, self.week_total),
                          ("semester", self.semester_used, self.semester_total)) if total is not None))

    @property
    def semester_total(self) -> int | None:
        return None if self.semester_left is None else self.semester_left + self.semester_used

    def counted(self, used: int) -> int:
        """What of `used` today counts toward the week and the semester: usage above the base is
        paid by today's grants and the banks first (extra amounts are extra)."""
        return used - min(max(0, used - self.base), self.granted + self.bank_left)

    def left(self, used: int) -> dict[str, int | None]:
        """What is left today (every cap, grants and banks), this week and this semester after
        `used` today (never below 0)."""
        counted = self.counted(used)
        return {"daily": max(0, self.hard - used),
                "weekly": None if self.week_left is None else max(0, self.week_left - counted),
                "semester": None if self.semester_left is None else max(0, self.semester_left - counted)}


class Balance:
    """One group's running balance: weeks, semester, banks. Feed it every day in order."""

    def __init__(self, caps: GroupCaps, unit: QuotaUnit, topups: list[TopUp] = ()):
        self.caps, self.unit = caps, unit
        self.banks = sorted(([t, unit.of(t.amount)] for t in topups), key=lambda b: (b[0].until, b[0].start))
        self.week: tuple[int, int] | None = None
        self.partial = False
        self.week_counted = 0
        self.carry = 0
        self.semester_counted = 0

    def _amount(self, value: float | None) -> int | None:
        return None if value is None else self.unit.of(value)

    def _enter(self, day: date) -> None:
        """Roll the weeks forward to `day`'s: each week gone carries its unused part, capped."""
        week = week_of(day)
        weekly = self._amount(self.caps.weekly_max)
        if self.week is None or weekly is None:
            self.week = week
            self.partial = day.weekday() != 0
            return
        monday = day - timedelta(days=day.weekday())
        current = date.fromisocalendar(*self.week, 1)
        while current < monday:
            unused = max(0, weekly + self.carry - self.week_counted)
            # A week the replay (the semester) began in the middle of carries nothing: a semester
            # starting on a Sunday does not earn a week's carry-over from that one day.
            self.carry = 0 if self.partial else min(self._amount(self.caps.carry_over_max) or 0, unused)
            self.partial = False
            self.week_counted = 0
            current += timedelta(days=7)
        self.week = week

    def allowance(self, day: date, *, granted: int = 0, daily: tuple[int, int] | None = None,
                  warned: frozenset[str] = frozenset()) -> Allowance:
        """Today's allowance before today's usage. `daily`: (warn, max) when an admin override
        replaces the policy's; `warned`: the caps whose once-per-period warning was sent."""
        self._enter(day)
        c = self.caps
        d_warn, d_max = daily or (self.unit.of(c.daily_warn), self.unit.of(c.daily_max))
        weekly = self._amount(c.weekly_max)
        week_total = None if weekly is None else weekly + self.carry
        week_left = None if week_total is None else max(0, week_total - self.week_counted)
        sem_max = self._amount(c.semester_max) if c.in_semester(day) else None
        sem_left = None if sem_max is None else max(0, sem_max - self.semester_counted)
        # Ties go to the cap that refills last: a stop that says "tomorrow" must be true.
        options = [(d_max, 0, "daily")]
        if week_left is not None:
            options.append((week_left, 1, "weekly"))
        if sem_left is not None:
            options.append((sem_left, 2, "semester"))
        base, _, cap = min(options, key=lambda o: (o[0], -o[1]))
        warns = [(d_warn + granted, "daily")]
        if week_total is not None and "weekly" not in warned:
            warns.append((max(1, int(WARN_SHARE * week_total) - self.week_counted), "weekly"))
        if sem_max is not None and "semester" not in warned:
            warns.append((max(1, int(WARN_SHARE * sem_max) - self.semester_counted), "semester"))
        warn, warn_cap = min(warns, key=lambda w: w[0])
        bank = sum(left for t, left in self.banks if t.valid_on(day))
        return Allowance(day, self.unit, c, d_warn, d_max, granted, week_left, week_total, self.week_counted,
                         sem_left, self.semester_counted, bank, base, cap, warn, warn_cap)

    def close(self, day: date, used: int, *, granted: int = 0, daily: tuple[int, int] | None = None) -> Allowance:
        """Book `day`'s usage: above the base, today's grants pay first, then the banks; the rest
        counts toward the week and the semester. Returns the day's allowance."""
        a = self.allowance(day, granted=granted, daily=daily)
        extra = max(0, used - a.base)
        extra -= min(extra, granted)
        for bank in self.banks:
            if extra <= 0:
                break
            if bank[0].valid_on(day):
                take = min(extra, bank[1])
                bank[1] -= take
                extra -= take
        counted = a.counted(used)  # the same as used less what the grants and the banks just paid
        self.week_counted += counted
        if self.caps.in_semester(day):
            self.semester_counted += counted
        return a
