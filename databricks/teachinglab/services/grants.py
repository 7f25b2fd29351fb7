"""What the admin CLI reads and changes in the ledger: usage today, history, grants, quotas,
the outbox. Every function takes `now` where time matters."""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta

from databricks.teachinglab.adapters.ledger import repository as ledger
from databricks.teachinglab.adapters.mail.outbox import enqueue
from databricks.teachinglab.adapters.mail.render import render
from databricks.teachinglab.core import accounting as acc
from databricks.teachinglab.core.errors import AdminError
from databricks.teachinglab.core.messages import dedupe_key, show_local
from databricks.teachinglab.core.quota import Limits
from databricks.teachinglab.core.records import GrantRecord, MessageRecord, TrackedCluster
from databricks.teachinglab.core.settings import Settings
from databricks.teachinglab.core.usage import stop_today
from databricks.teachinglab.core.units import UNITS, Measured
from databricks.teachinglab.services.usage import limits_book, quota_amount

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class UsageLine:
    cluster_id: str
    cluster_name: str
    group: str | None
    used_seconds: int
    warn_minutes: int | None        # the limits in minutes; null when QUOTA_UNIT is dbu or usd
    max_minutes: int | None
    warned: bool
    blocked: bool
    as_of: str | None
    state: str
    estimated: bool
    exempt: bool = False            # tag quota=exempt: counted, never stopped, not in its group's total
    owner: str | None = None        # the student who created it, when counted to a group that way
    group_used_seconds: int = 0     # the group's usage today over all its clusters (the quota's measure)
    limit_at: str | None = None     # as of the last poll, at that rate: when the group reaches its hard
                                    # quota today (ISO 8601, local); null when none of it runs
    node_seconds: int = 0           # node-time today: every second used times 1 driver + its workers then
    dbu: float | None = None        # from node-time and the price table; null when its node type is not there
    cost_usd: float | None = None
    quota_unit: str = "minutes"     # QUOTA_UNIT: what the three below count
    group_used: float = 0           # the group's usage today in that unit (minutes, DBU or USD)
    warn_limit: float = 0
    max_limit: float = 0
    week_used_seconds: int = 0          # the group's uptime this ISO week (Monday to Sunday, local), today included
    semester_used_seconds: int | None = None  # since the semester's start (policy or SEMESTER_START); null without
    stopped_by: str | None = None       # daily | weekly | semester: the cap that stopped the group today
    cluster_kind: str | None = None     # lab (a lab principal created it: its tags count) | student
    tag_drift: bool = False             # a lab cluster whose tags changed since first recorded (--accept_tags)

    def as_json(self) -> dict:
        return asdict(self)


def cluster_usage(settings: Settings, now: datetime) -> list[UsageLine]:
    tz = settings.quota.timezone
    today = acc.local_day(now, tz)
    rows = ledger.days_on(today)
    limits_for = limits_book(settings, today)
    out = []
    clusters = list(ledger.load_clusters().values())
    unit = settings.quota.unit
    amounts = {c.cluster_id: _amount(settings, c, rows[c.cluster_id]) for c in clusters if c.cluster_id in rows}
    group_ms: dict[str, int] = {}
    group_amount: dict[str, int] = {}
    for c in clusters:
        if c.group_name and not c.exempt and c.cluster_id in rows:
            group_ms[c.group_name] = group_ms.get(c.group_name, 0) + rows[c.cluster_id].used_ms
            group_amount[c.group_name] = group_amount.get(c.group_name, 0) + amounts[c.cluster_id]
    spans = _spans(settings, today, rows, clusters)
    stopped_by = {c.group_name: rows[c.cluster_id].quota_cap for c in clusters
                  if c.group_name and c.cluster_id in rows and rows[c.cluster_id].over_quota_at}
    for c in clusters:
        row = rows.get(c.cluster_id)
        limits = limits_for(c.cluster_id)
        if row and row.as_of is not None and row.quota_unit == unit.name:  # 0 is a limit too (a week used up)
            limits = _as_recorded(row, limits)
        grouped = c.group_name and not c.exempt
        out.append(UsageLine(
            cluster_id=c.cluster_id, cluster_name=c.name, group=c.group_name,
            used_seconds=(row.used_ms // 1000) if row else 0,
            warn_minutes=limits.warn // unit.scale if unit.name == "minutes" else None,
            max_minutes=limits.hard // unit.scale if unit.name == "minutes" else None,
            quota_unit=unit.name, warn_limit=unit.value(limits.warn), max_limit=unit.value(limits.hard),
            group_used=round(unit.value(group_amount.get(c.group_name, 0) if grouped else amounts.get(c.cluster_id, 0)), 6),
            warned=bool(row and row.warned_at), blocked=bool(row and row.blocked_at),
            as_of=row.as_of.astimezone(tz).isoformat(timespec="seconds") if row and row.as_of else None,
            state=c.state, estimated=bool(row and row.estimated), exempt=c.exempt, owner=c.owner,
            group_used_seconds=(group_ms.get(c.group_name, 0) if c.group_name and not c.exempt
                                else (row.used_ms if row else 0)) // 1000,
            limit_at=_today_local(row.limit_at, today, tz) if row else None,
            node_seconds=(row.used_node_ms // 1000) if row else 0,
            week_used_seconds=spans.week(c.group_name if grouped else c.cluster_id),
            semester_used_seconds=spans.semester(c.group_name if grouped else c.cluster_id),
            stopped_by=stopped_by.get(c.group_name) if grouped else (row.quota_cap if row and row.over_quota_at else None),
            cluster_kind=c.kind, tag_drift=c.tag_drift, **_money(settings, c, row)))
    return out


@dataclass
class _Spans:
    """Uptime ms per group (a cluster with no group: per cluster) this week and this semester."""
    week_ms: dict[str, int]
    semester_ms: dict[str, int] | None

    def week(self, key: str) -> int:
        return self.week_ms.get(key, 0) // 1000

    def semester(self, key: str) -> int | None:
        return None if self.semester_ms is None else self.semester_ms.get(key, 0) // 1000


def _spans(settings: Settings, today: date, rows: dict, clusters: list[TrackedCluster]) -> _Spans:
    policy = settings.quota.the_policy
    monday = today - timedelta(days=today.weekday())
    semester_start = policy.caps.semester_start or settings.quota.semester_start
    start = min(monday, semester_start or monday)
    by_id = {c.cluster_id: c for c in clusters}
    week: dict[str, int] = {}
    semester: dict[str, int] = {}
    days = [(d.cluster_id, d.group_name, d.exempt, d.day, d.used_ms) for d in ledger.usage_days(start, today)]
    days += [(k, by_id[k].group_name, by_id[k].exempt, today, r.used_ms) for k, r in rows.items() if k in by_id]
    for cluster_id, group, exempt, day, ms in days:
        key = group if group and not exempt else cluster_id
        if day >= monday:
            week[key] = week.get(key, 0) + ms
        if semester_start and day >= semester_start:
            semester[key] = semester.get(key, 0) + ms
    return _Spans(week, semester if semester_start else None)


def _money(settings: Settings, c: TrackedCluster, row) -> dict:
    measured = settings.quota.prices.measured(c, row.used_ms, row.used_node_ms, row.startup_ms,
                                              row.startup_node_ms) if row and settings.quota.prices else (0, 0)
    if measured is None:
        return {"dbu": None, "cost_usd": None}
    return {"dbu": round(measured[0], 4), "cost_usd": round(measured[1], 4)}


def _today_local(at: datetime | None, today: date, tz) -> str | None:
    stop = stop_today(at, today, tz)
    return stop.astimezone(tz).isoformat(timespec="seconds") if stop else None


def _amount(settings: Settings, c: TrackedCluster, row) -> int:
    return quota_amount(settings, c, Measured(row.used_ms, row.used_node_ms, row.startup_ms, row.startup_node_ms))[0]


def _as_recorded(row, computed: Limits) -> Limits:
    """The limits the last poll applied (a group's, for its clusters), as it stored them: what it
    enforced, even when .env changed since. A row from before the soft quota was stored keeps
    the computed one, never above the hard quota."""
    warn = row.warn_amount if row.warn_amount is not None else min(computed.warn, row.limit_amount)
    return Limits(max(0, warn), row.limit_amount, computed.unit)


def history(start: date | None, end: date | None) -> list[dict]:
    return [{"cluster_id": h.cluster_id, "cluster_name": h.cluster_name, "group": h.group_name,
             "date": h.day.isoformat(), "used_seconds": h.used_ms // 1000,
             "max_minutes": h.limit_amount // 60_000 if h.quota_unit == "minutes" else None,
             "quota_unit": h.quota_unit, "max_limit": UNITS[h.quota_unit].value(h.limit_amount) if h.quota_unit in UNITS
             else None, "sessions": h.sessions, "warned": h.warned,
             "terminated": h.terminated, "blocked": h.blocked_group is not None,
             "estimated": h.estimated, "exempt": h.exempt, "notes": h.notes or ""}
            for h in ledger.history(start, end)]


def find_cluster(name_or_id: str) -> TrackedCluster:
    matches = ledger.find_clusters(name_or_id)
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        ids = ", ".join(m.cluster_id for m in matches)
        raise AdminError(f"{len(matches)} clusters are named {name_or_id!r} ({ids}); give the cluster id.")
    raise AdminError(f"No cluster {name_or_id!r} in the ledger. Run `python -m databricks.poll_clusters` "
                     "once, or check the name with --cluster_usage.")


def grant(settings: Settings, cluster: TrackedCluster, amount: float, by: str, reason: str,
          now: datetime, until: date | None = None) -> GrantRecord:
    """Extra quota today, in QUOTA_UNIT (minutes, DBU or USD); with `until`, a top-up to the
    group's bank instead, usable from today to that day (audited as today)."""
    unit = settings.quota.unit
    if not 0 < amount <= unit.max_limit * (1 if until is None else 366) or (
            unit.name == "minutes" and amount != int(amount)):
        raise AdminError(f"--grant {amount:g}: give {_range(unit)}.")
    day = acc.local_day(now, settings.quota.timezone)
    if until is not None and until < day:
        raise AdminError(f"--until {until}: the top-up would expire before today ({day}); give today or a later day.")
    row = ledger.add_grant(cluster.cluster_id, day, unit.name, amount, by, reason, now, until=until)
    logger.info("cluster=%s name=%s group=%s granted %g extra %s for %s by %s", cluster.cluster_id,
                cluster.name, cluster.group_name or "-", amount, unit.symbol,
                day if until is None else f"the group's bank, {day} to {until}", by)
    return row


def set_quota(settings: Settings, cluster: TrackedCluster, warn: float, hard: float, by: str, now: datetime) -> None:
    unit = settings.quota.unit
    whole = unit.name != "minutes" or (warn == int(warn) and hard == int(hard))
    if not (0 < warn < hard <= unit.max_limit and whole):
        raise AdminError(f"--set_quota {warn:g}:{hard:g}: need WARN < MAX, each {_range(unit)}.")
    ledger.set_override(cluster.cluster_id, unit.name, warn, hard, by, now)


def _range(unit) -> str:
    if unit.name == "minutes":
        return f"whole minutes from 1 to {unit.max_limit:g} (QUOTA_UNIT=minutes)"
    return f"a number of {unit.symbol} above 0 and at most {unit.max_limit:g} (QUOTA_UNIT={unit.name})"


def clear_quota(cluster: TrackedCluster) -> int:
    """The cluster's own quota and the admin's exemption of it, both removed."""
    return ledger.clear_override(cluster.cluster_id) + ledger.clear_exemption(cluster.cluster_id)


def exempt(cluster: TrackedCluster, by: str, reason: str, now: datetime) -> None:
    """The admin exempts one cluster from every quota, saying why; recorded and reported daily."""
    if not reason.strip():
        raise AdminError("--set_quota exempt needs --reason TEXT: why this cluster is exempt (it is listed in "
                         "every daily report with who and why)")
    ledger.set_exemption(cluster.cluster_id, by, reason.strip(), now)
    logger.info("cluster=%s name=%s group=%s exempted by %s (%s)", cluster.cluster_id, cluster.name,
                cluster.group_name or "-", by, reason.strip())


def queue_test_email(settings: Settings, to: str, now: datetime) -> str:
    tz = settings.quota.timezone
    key = dedupe_key("test", to, now.isoformat())
    enqueue(kind="test", key=key, to=[to], now=now, rendered=render(
        "test", {"at": show_local(now, tz), "tz_name": tz.key, "transport": settings.mail.transport,
                 "contact": settings.mail.admin_email or to}, templates_dir=settings.mail.templates_dir))
    return key


def outbox_lines(limit: int = 200) -> list[MessageRecord]:
    return ledger.messages(limit=limit)
