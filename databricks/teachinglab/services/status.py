"""What a group's page shows (--status_page): today, this week and this semester (used, left,
when each refills), today's sessions and the forecast stop, all from the ledger as of the last
poll. Nothing here names another group, a student or a secret."""
from __future__ import annotations

import secrets as random_secrets
from dataclasses import dataclass, field
from datetime import date, datetime

from databricks.teachinglab.adapters.ledger import repository as ledger
from databricks.teachinglab.core import accounting as acc
from databricks.teachinglab.core.allowance import refill_text
from databricks.teachinglab.core.links import group_of_token, group_url
from databricks.teachinglab.core.settings import Settings
from databricks.teachinglab.core.units import Measured
from databricks.teachinglab.core.usage import stop_today
from databricks.teachinglab.services.allowances import counted_serverless, policy_book
from databricks.teachinglab.services.usage import limits_book, quota_amount

SECRET_NAME = "status_page"


def link_secret(settings: Settings, now: datetime, *, create: bool = True) -> str | None:
    """STATUS_PAGE_SECRET, else the ledger's own (made on first use)."""
    if settings.status.secret:
        return settings.status.secret
    found = ledger.secret(SECRET_NAME)
    if found is None and create:
        found = random_secrets.token_urlsafe(32)
        ledger.set_secret(SECRET_NAME, found, now)
    return found


def rotate_secret(now: datetime) -> None:
    """A new ledger secret: every link sent so far stops working."""
    ledger.set_secret(SECRET_NAME, random_secrets.token_urlsafe(32), now)


def status_link(settings: Settings, group: str, now: datetime) -> str | None:
    if not settings.status.url:
        return None
    return group_url(settings.status.url, link_secret(settings, now), settings.course_label, group)


def known_groups() -> list[str]:
    return sorted({c.group_name for c in ledger.load_clusters().values() if c.group_name})


def group_for_token(settings: Settings, token: str, now: datetime) -> str | None:
    secret = link_secret(settings, now, create=False)
    return group_of_token(secret, settings.course_label, token, known_groups()) if secret else None


@dataclass(frozen=True)
class Period:
    name: str              # today | this week | this semester
    used: str
    limit: str
    left: str
    refills: str


@dataclass(frozen=True)
class SessionLine:
    cluster: str
    start: str             # local HH:MM
    end: str               # local HH:MM, or "running"
    minutes: int
    nodes: int


@dataclass
class GroupStatus:
    group: str
    day: date
    tz_name: str
    as_of: str | None
    periods: list[Period] = field(default_factory=list)
    sessions: list[SessionLine] = field(default_factory=list)
    stops_at: str | None = None
    stopped_by: str | None = None
    bank: str | None = None
    serverless: "ServerlessStatus | None" = None


@dataclass(frozen=True)
class ServerlessStatus:
    """The group's serverless use as billing has shown it, and whether its access is off."""
    periods: list[Period]
    freshness: str
    off: str | None = None        # why and until when, while its access is switched off


def group_status(settings: Settings, group: str, now: datetime) -> GroupStatus:
    tz, unit = settings.quota.timezone, settings.quota.unit
    today = acc.local_day(now, tz)
    known = ledger.load_clusters()
    clusters = {c.cluster_id: c for c in known.values() if c.group_name == group and not c.exempt}
    rows = {k: v for k, v in ledger.days_on(today).items() if k in clusters}
    used = sum(quota_amount(settings, clusters[k], Measured(r.used_ms, r.used_node_ms, r.startup_ms,
                                                            r.startup_node_ms))[0] for k, r in rows.items())
    used += counted_serverless(settings, today, today).get((group, today), 0)  # when the policy counts it
    members = [(c.cluster_id, c.group_source) for c in clusters.values()]
    daily = limits_book(settings, today)
    limits = daily.for_group(members, group)
    a = policy_book(settings, today, clusters=known, only=group).allowance(group, limits,
                                                                          unit.of(daily.granted(members)))
    left = a.left(used)
    caps = a.caps
    # Today's limit as the last poll applied and stored it (a .env changed since shows after the
    # next poll, as everywhere else); the computed one only before today's first poll.
    applied = max((r.limit_amount for r in rows.values() if r.as_of is not None and r.quota_unit == unit.name),
                  default=None)
    hard = applied if applied is not None else a.hard
    periods = [Period("today", unit.show(used), unit.show(hard), unit.show(max(0, hard - used)),
                      refill_text("daily", today, caps))]
    # The week and the semester count what the policy counts: top-up and granted amounts are extra.
    counted = a.counted(used)
    if a.week_total is not None:
        periods.append(Period("this week", unit.show(a.week_used + counted), unit.show(a.week_total),
                              unit.show(left["weekly"]), refill_text("weekly", today, caps)))
    if a.semester_left is not None:
        periods.append(Period("this semester", unit.show(a.semester_used + counted), unit.show(a.semester_total),
                              unit.show(left["semester"]), refill_text("semester", today, caps)))
    as_of = max((r.as_of for r in rows.values() if r.as_of), default=None)
    stop = min((s for s in (stop_today(r.limit_at, today, tz) for r in rows.values()) if s), default=None)
    stopped = [r.quota_cap for r in rows.values() if r.over_quota_at]
    return GroupStatus(group, today, tz.key, as_of.astimezone(tz).strftime("%H:%M") if as_of else None,
                       periods, _sessions(settings, group, clusters, today, now),
                       stop.astimezone(tz).strftime("%H:%M") if stop and not stopped else None,
                       stopped[0] if stopped else None, unit.show(a.bank_left) if a.bank_left else None,
                       serverless_status(settings, group, today))


def serverless_status(settings: Settings, group: str, today: date) -> ServerlessStatus | None:
    """None when the group has no serverless allowance and the bill shows no use of it."""
    from databricks.teachinglab.services import serverless
    caps = settings.quota.the_policy.serverless_for(group)
    s = next(x for x in serverless.standings(settings, today, [group]) if x.group == group)
    if not caps.any_cap and not s.semester:
        return None
    ends = {"daily": "tomorrow, 00:00", "weekly": "Monday, 00:00", "semester": "at the semester's end"}
    periods = []
    for cap, name in (("daily", "today"), ("weekly", "this week"), ("semester", "this semester")):
        limit = caps.cap(cap)
        if limit is None and cap != "daily":
            continue
        used = s.figure(cap)
        periods.append(Period(name, f"{used:.2f} DBU", "-" if limit is None else f"{limit:g} DBU",
                              "-" if limit is None else f"{max(0.0, limit - used):.2f} DBU", ends[cap]))
    block = ledger.serverless_blocks().get(group)
    off = None
    if block is not None:
        back = block.returns_on.strftime("%A %d %b, 00:00") if block.returns_on else "the end of the semester"
        off = (f"Serverless notebooks and jobs are switched off for your group: its {block.cap} allowance of "
               f"{block.limit:g} DBU is used ({block.used:.2f} DBU). They come back {back}.")
    return ServerlessStatus(periods, serverless.freshness().describe(settings.quota.timezone), off)


def _sessions(settings: Settings, group: str, clusters: dict, today: date, now: datetime) -> list[SessionLine]:
    tz = settings.quota.timezone
    start, end = acc.day_bounds(today, tz)
    names = {k: c.name for k, c in clusters.items()}

    def local(at: datetime) -> str:
        return at.astimezone(tz).strftime("%H:%M")
    out = [SessionLine(names.get(s.cluster_id, s.cluster_id), local(max(s.start, start)), local(min(s.end, end)),
                       acc.overlap_ms(s.start, s.end, start, end) // 60_000, s.nodes)
           for s in ledger.sessions(start, end, group) if s.cluster_id in names]
    for c in clusters.values():
        if c.open_since is not None:
            out.append(SessionLine(c.name, local(max(c.open_since, start)), "running",
                                   acc.overlap_ms(c.open_since, now, start, end) // 60_000, 1 + (c.workers or 0)))
    return sorted(out, key=lambda s: s.start)
