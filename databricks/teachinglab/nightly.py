"""The nightly close (cron 00:07): for every finished day not yet closed, oldest first,

    1. bring usage up to now from events (so a session that ended at 23:58 is in);
    2. archive each cluster's day, split at midnight, and queue the daily report  (one transaction);
    3. give CAN_RESTART back to the groups blocked that day                      (safe to repeat);
    4. clear the day's counters and flags, and mark the day complete             (one transaction).

A day archived but not completed (killed during step 3) is picked up at step 3 next time.
Today's partial usage never lands on yesterday: the open interval is split at midnight and
its start moves to midnight once the part before it is archived.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from . import accounting as acc
from .accounting import Tracker
from .enforcement import BLOCKED_LEVEL, RESTORED_LEVEL, list_or_alert
from .ledger import Cluster, ClusterDay, ClosedDay, QuotaGrant, UsageHistory
from .notify import queue_failure_alert
from .usage_sync import limits_book, measure, record

logger = logging.getLogger(__name__)


@dataclass
class CloseReport:
    closed: list[date] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    failures: list[tuple[str, Exception]] = field(default_factory=list)


def days_to_close(today: date, tz) -> list[date]:
    done = {row.day for row in ClosedDay.select().where(ClosedDay.completed_at.is_null(False))}
    closed = [row.day for row in ClosedDay.select()]
    first_seen = Cluster.select(Cluster.first_seen).order_by(Cluster.first_seen).first()
    if first_seen is None:
        return []
    start = max(closed) + timedelta(days=1) if closed else acc.local_day(first_seen.first_seen, tz)
    pending = {d for d in closed if d not in done}
    day = start
    while day < today:
        pending.add(day)
        day += timedelta(days=1)
    return sorted(pending)


def plan_end_of_day(lab, now: datetime) -> list[str]:
    """What run_end_of_day would do, changing nothing (the workspace is only read)."""
    tz = lab.settings.timezone
    today = acc.local_day(now, tz)
    lines = []
    days = days_to_close(today, tz)
    blocked_today = {r.cluster_id for r in ClusterDay.select().where(
        (ClusterDay.day == today) & ClusterDay.blocked_group.is_null(False))}
    for day in days:
        archived = ClosedDay.get_or_none(ClosedDay.day == day) is not None
        lines.append(f"would {'finish closing' if archived else 'archive and close'} {day}"
                     + ("" if archived else " and email its usage report"))
        if archived:
            blocked = [(h.cluster_id, h.cluster_name, h.blocked_group, h.previous_level) for h in
                       UsageHistory.select().where((UsageHistory.day == day) & UsageHistory.blocked_group.is_null(False)
                                                   & UsageHistory.restored_at.is_null())]
        else:
            blocked = [(r.cluster_id, r.cluster.name, r.blocked_group, r.previous_level) for r in
                       ClusterDay.select().where((ClusterDay.day == day) & ClusterDay.blocked_group.is_null(False))]
        for cid, name, group, level in blocked:
            if cid in blocked_today:
                lines.append(f"  would keep {name} blocked: {group} is over its quota today too")
            else:
                lines.append(f"  would restore {name}: {group} back to {level or RESTORED_LEVEL}")
    list_or_alert(lab, "end_of_day_operations", now, alert=False)  # the workspace must be reachable
    return lines or ["nothing to close: every finished day is closed already"]


def run_end_of_day(lab, now: datetime) -> CloseReport:
    tz = lab.settings.timezone
    today = acc.local_day(now, tz)
    report = CloseReport()
    usages = measure(lab, list_or_alert(lab, "end_of_day_operations", now), now)
    with lab.db.atomic():
        record(usages, now)
    report.failures += [(u.info.name, u.error) for u in usages if u.error is not None]

    audit: tuple[list[dict], str | None] | None = None
    for day in days_to_close(today, tz):
        if ClosedDay.get_or_none(ClosedDay.day == day) is None:
            audit = audit or _audit(lab)  # once a run, only when a report is to be written
            with lab.db.atomic():
                _archive(lab, day, now, audit)
        restored, complete = _restore(lab, day, today, now, report)
        report.restored += restored
        if not complete:
            logger.error("day %s archived, but some permissions are not restored yet; "
                         "the next run tries again", day)
            continue
        with lab.db.atomic():
            ClusterDay.delete().where(ClusterDay.day == day).execute()
            ClosedDay.update(completed_at=now).where(ClosedDay.day == day).execute()
        report.closed.append(day)
        logger.info("day %s closed", day)
    if not report.closed:
        logger.info("nothing to close: every finished day is closed already")
    report.restored += restore_outside_blocks(lab, usages, today, report)
    if report.failures:
        with lab.db.atomic():
            queue_failure_alert(lab, "end_of_day_operations", report.failures, now)
    lab.deliver(now)
    return report


def restore_outside_blocks(lab, usages, today: date, report: CloseReport) -> list[str]:
    """The workspace is the truth: a group that sits at CAN_ATTACH_TO on its own cluster while the
    ledger does not block it today (a poll run with another ledger, a hand edit) gets CAN_RESTART
    back, and the log says "found blocked outside the ledger"."""
    blocked_today = {r.cluster_id for r in ClusterDay.select().where(
        (ClusterDay.day == today) & ClusterDay.blocked_at.is_null(False))}
    own = [u for u in usages if u.group and u.group_source in ("tag", "acl", "name") and not u.info.exempt
           and not u.vanished and u.info.cluster_id not in blocked_today]

    def check(u) -> bool:
        level = lab.gateway.group_level(u.info.cluster_id, u.group)
        if level != BLOCKED_LEVEL:
            return False
        lab.gateway.set_group_level(u.info.cluster_id, u.group, RESTORED_LEVEL)
        logger.warning("%s found blocked outside the ledger (%s); restored to %s", u.label, level, RESTORED_LEVEL)
        return True

    done = []
    for u, result in lab.parallel(check, own):
        if isinstance(result, Exception):
            report.failures.append((u.info.name, result))
        elif result:
            done.append(u.info.name)
    return done


def _audit(lab) -> tuple[list[dict], str | None]:
    """The workspace audit for the report; a failure is reported in it, never stops the close."""
    from .audit import audit_workspace, known_home_clusters
    try:
        findings = audit_workspace(lab, known_home=known_home_clusters())
    except Exception as err:  # noqa: BLE001 - the report says so
        logger.error("workspace audit failed (%s: %s); the report says so", type(err).__name__, err)
        return [], f"{type(err).__name__}: {err}"
    for f in findings:
        logger.warning("audit: %s %s on %s; fix: %s", f.kind, f.principal, f.object, f.fix)
    return [f.as_json() for f in findings], None


def _archive(lab, day: date, now: datetime, audit: tuple[list[dict], str | None]) -> None:
    tz = lab.settings.timezone
    lo, hi = acc.day_bounds(day, tz)
    rows = {r.cluster_id: r for r in ClusterDay.select().where(ClusterDay.day == day)}
    limits_for = limits_book(lab.settings, day)
    grants: dict[str, list] = {}
    for g in QuotaGrant.select().where(QuotaGrant.day == day).order_by(QuotaGrant.granted_at):
        grants.setdefault(g.cluster_id, []).append(g)
    for cluster in Cluster.select():
        row = rows.get(cluster.cluster_id)
        open_ms = acc.overlap_ms(cluster.open_since, min(now, hi), lo, hi) if cluster.open_since else 0
        sessions = (row.sessions if row else 0) + (1 if open_ms else 0)
        UsageHistory.insert(
            cluster=cluster.cluster_id, day=day, cluster_name=cluster.name, group_name=cluster.group_name,
            used_ms=(row.closed_ms if row else 0) + open_ms,
            limit_ms=(row.limit_ms if row and row.limit_ms else limits_for(cluster.cluster_id).max_ms),
            sessions=sessions, warned=bool(row and row.was_warned), terminated=bool(row and row.was_stopped),
            exempt=cluster.exempt, notes=day_notes(row, grants.get(cluster.cluster_id, []), tz),
            blocked_group=row.blocked_group if row and (row.blocked_at or row.over_quota_at) else None,
            previous_level=row.previous_level if row else None,
            restored_at=row.restored_at if row and row.blocked_at else None,  # lifted by a poll already
            estimated=bool(row and row.estimated) or cluster.estimated, archived_at=now,
        ).on_conflict_replace().execute()
        # The part before `hi` is archived now; the open interval continues from midnight.
        clipped = acc.clip_open_interval(Tracker(cluster.open_since), hi)
        if clipped.open_since != cluster.open_since:
            Cluster.update(open_since=clipped.open_since).where(
                Cluster.cluster_id == cluster.cluster_id).execute()
    ClosedDay.create(day=day, archived_at=now)
    _queue_report(lab, day, now, audit)


def day_notes(row: ClusterDay | None, grants: list, tz) -> str:
    """What happened to a cluster on its day, in order, for the report: "warned at 13:55; stopped
    at 14:05; granted 30 min at 14:20 by alice (deadline)". Grants used to erase the first part."""
    events = []  # (when, what, more)
    if row is not None and row.first_warned_at:
        events.append((row.first_warned_at, "warned", ""))
    if row is not None and row.first_stopped_at:
        events.append((row.first_stopped_at, "stopped", ""))
    for g in grants:
        more = (f" by {g.granted_by}" if g.granted_by else "") + (f" ({g.reason})" if g.reason else "")
        events.append((g.granted_at, f"granted {g.minutes} min", more))
    return "; ".join(f"{what} at {when.astimezone(tz):%H:%M}{more}"
                     for when, what, more in sorted(events, key=lambda e: e[0]))


def _queue_report(lab, day: date, now: datetime, audit: tuple[list[dict], str | None]) -> None:
    from .report import build_report
    from .report_files import queue_report
    findings, error = audit
    queue_report(build_report(day, semester_start=lab.settings.semester_start, prices=lab.settings.prices(),
                              findings=findings, audit_error=error), lab.settings, now)


def _restore(lab, day: date, today: date, now: datetime, report: CloseReport) -> tuple[list[str], bool]:
    blocked_today = {r.cluster_id for r in ClusterDay.select().where(
        (ClusterDay.day == today) & ClusterDay.blocked_group.is_null(False))}
    todo = [h for h in UsageHistory.select().where(
        (UsageHistory.day == day) & UsageHistory.blocked_group.is_null(False)
        & UsageHistory.restored_at.is_null())
        if h.cluster_id not in blocked_today]

    def restore(h: UsageHistory) -> str | None:
        level = h.previous_level or RESTORED_LEVEL
        before = lab.gateway.set_group_level(h.cluster_id, h.blocked_group, level)
        logger.info("cluster=%s name=%s group=%s restored: %s -> %s", h.cluster_id, h.cluster_name,
                    h.blocked_group, before or "none", level)
        return before

    results = lab.parallel(restore, todo)
    done = []
    with lab.db.atomic():
        for h, result in results:
            if isinstance(result, Exception):
                report.failures.append((h.cluster_name, result))
                logger.error("cluster=%s name=%s group=%s restore failed: %s", h.cluster_id,
                             h.cluster_name, h.blocked_group, result)
                continue
            UsageHistory.update(restored_at=now).where(
                (UsageHistory.cluster == h.cluster_id) & (UsageHistory.day == day)).execute()
            done.append(h.cluster_name)
    return done, not any(isinstance(r, Exception) for _, r in results)
