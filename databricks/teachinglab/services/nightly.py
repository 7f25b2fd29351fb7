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

from databricks.teachinglab.adapters.ledger import repository as ledger
from databricks.teachinglab.adapters.report_files import queue_report
from databricks.teachinglab.core import accounting as acc
from databricks.teachinglab.core.errors import Failed
from databricks.teachinglab.core.quota import Limits
from databricks.teachinglab.core.reconcile import Billing
from databricks.teachinglab.core.records import DayRecord, GrantRecord, HistoryRecord
from databricks.teachinglab.services.alerts import queue_failure_alert
from databricks.teachinglab.services.billing import billed_dbus
from databricks.teachinglab.services.context import JobContext
from databricks.teachinglab.services.poll import BLOCKED_LEVEL, RESTORED_LEVEL, list_or_alert
from databricks.teachinglab.services.reports import daily_report
from databricks.teachinglab.services.usage import limits_book, measure

logger = logging.getLogger(__name__)


@dataclass
class CloseReport:
    closed: list[date] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    failures: list[tuple[str, Failed]] = field(default_factory=list)


def days_to_close(today: date, tz) -> list[date]:
    closed_days = ledger.closed_days()
    done = {day for day, row in closed_days.items() if row.completed_at is not None}
    closed = list(closed_days)
    first_seen = ledger.first_seen()
    if first_seen is None:
        return []
    start = max(closed) + timedelta(days=1) if closed else acc.local_day(first_seen, tz)
    pending = {d for d in closed if d not in done}
    day = start
    while day < today:
        pending.add(day)
        day += timedelta(days=1)
    return sorted(pending)


def plan_end_of_day(ctx: JobContext, now: datetime) -> list[str]:
    """What run_end_of_day would do, changing nothing (the workspace is only read)."""
    tz = ctx.settings.quota.timezone
    today = acc.local_day(now, tz)
    lines = []
    days = days_to_close(today, tz)
    blocked_today = ledger.blocked_cluster_ids(today, in_effect=False)
    for day in days:
        archived = ledger.closed_day(day) is not None
        lines.append(f"would {'finish closing' if archived else 'archive and close'} {day}"
                     + ("" if archived else " and email its usage report"))
        if archived:
            blocked = [(h.cluster_id, h.cluster_name, h.blocked_group, h.previous_level)
                       for h in ledger.unrestored_blocks(day)]
        else:
            blocked = [(r.cluster_id, name, r.blocked_group, r.previous_level) for r, name in ledger.blocked_on(day)]
        for cid, name, group, level in blocked:
            if cid in blocked_today:
                lines.append(f"  would keep {name} blocked: {group} is over its quota today too")
            else:
                lines.append(f"  would restore {name}: {group} back to {level or RESTORED_LEVEL}")
    if ctx.settings.workspace.warehouse_id or ctx.settings.quota.the_policy.serverless_capped:
        from databricks.teachinglab.services.serverless import plan
        lines += plan(ctx.settings, now)
    list_or_alert(ctx, "end_of_day_operations", now, alert=False)  # the workspace must be reachable
    return lines or ["nothing to close: every finished day is closed already"]


def run_end_of_day(ctx: JobContext, now: datetime) -> CloseReport:
    tz = ctx.settings.quota.timezone
    today = acc.local_day(now, tz)
    report = CloseReport()
    usages = measure(ctx, list_or_alert(ctx, "end_of_day_operations", now), now)
    with ledger.transaction():
        ledger.save_usage(usages, now)
    report.failures += [(u.info.name, u.error) for u in usages if u.error is not None]

    if ctx.settings.workspace.warehouse_id or ctx.settings.quota.the_policy.serverless_capped:
        # Serverless use up to what the bill shows, before the report is written; a period that
        # refilled at midnight gives access back here.
        from databricks.teachinglab.services.serverless import serverless_job
        serverless_job(ctx, now, "end_of_day_operations")
    days = days_to_close(today, tz)
    unreported = [d for d in days if ledger.closed_day(d) is None]
    # Read once a run, and only when a report is to be written: the audit, and the bill of every
    # day to report and of the day before each.
    audit = _audit(ctx, now) if unreported else None
    billing = billed_dbus(ctx, [unreported[0] - timedelta(days=1), *unreported]) if unreported else None
    for day in days:
        if day in unreported:
            with ledger.transaction():
                _archive(ctx, day, now, audit, billing)
        restored, complete = _restore(ctx, day, today, now, report)
        report.restored += restored
        if not complete:
            logger.error("day %s archived, but some permissions are not restored yet; "
                         "the next run tries again", day)
            continue
        with ledger.transaction():
            ledger.complete_day(day, now)
        report.closed.append(day)
        logger.info("day %s closed", day)
    if not report.closed:
        logger.info("nothing to close: every finished day is closed already")
    report.restored += restore_outside_blocks(ctx, usages, today, report)
    if report.failures:
        with ledger.transaction():
            queue_failure_alert(ctx, "end_of_day_operations", report.failures, now)
    ctx.deliver(now)
    return report


def restore_outside_blocks(ctx: JobContext, usages, today: date, report: CloseReport) -> list[str]:
    """The workspace is the truth: a group that sits at CAN_ATTACH_TO on its own cluster while the
    ledger does not block it today (a poll run with another ledger, a hand edit) gets CAN_RESTART
    back, and the log says "found blocked outside the ledger"."""
    blocked_today = ledger.blocked_cluster_ids(today)
    own = [u for u in usages if u.group and u.group_source in ("tag", "acl", "name") and not u.exempt
           and not u.vanished and u.info.cluster_id not in blocked_today]

    def check(u) -> bool:
        level = ctx.workspace.group_level(u.info.cluster_id, u.group)
        if level != BLOCKED_LEVEL:
            return False
        ctx.workspace.set_group_level(u.info.cluster_id, u.group, RESTORED_LEVEL)
        logger.warning("%s found blocked outside the ledger (%s); restored to %s", u.label, level, RESTORED_LEVEL)
        return True

    done = []
    for u, result in ctx.parallel(check, own):
        if isinstance(result, Failed):
            report.failures.append((u.info.name, result))
        elif result:
            done.append(u.info.name)
    return done


def _audit(ctx: JobContext, now: datetime) -> tuple[list[dict], str | None]:
    """The workspace audit for the report; a failure is reported in it, never stops the close."""
    from databricks.teachinglab.services.audit import audit_workspace
    try:
        findings = audit_workspace(ctx, now, known_home=ledger.home_clusters())
    except Exception as err:  # noqa: BLE001 - the report says so
        logger.error("workspace audit failed (%s: %s); the report says so", type(err).__name__, err)
        return [], f"{type(err).__name__}: {err}"
    for f in findings:
        logger.warning("audit: %s %s on %s; fix: %s", f.kind, f.principal, f.object, f.fix)
    return [f.as_json() for f in findings], None


def _archive(ctx: JobContext, day: date, now: datetime, audit: tuple[list[dict], str | None],
             billing: Billing | None = None) -> None:
    tz = ctx.settings.quota.timezone
    lo, hi = acc.day_bounds(day, tz)
    rows = ledger.days_on(day)
    limits_for = limits_book(ctx.settings, day)
    grants: dict[str, list[GrantRecord]] = {}
    for g in ledger.grants_on(day):
        grants.setdefault(g.cluster_id, []).append(g)
    history = []
    for cluster in ledger.load_clusters().values():
        row = rows.get(cluster.cluster_id)
        open_ms = acc.overlap_ms(cluster.open_since, min(now, hi), lo, hi) if cluster.open_since else 0
        node_ms = acc.used_node_ms_on(day, tz, row.closed_node_ms if row else 0, cluster.tracker, min(now, hi))
        history.append(HistoryRecord(
            cluster_id=cluster.cluster_id, day=day, cluster_name=cluster.name, group_name=cluster.group_name,
            used_ms=(row.closed_ms if row else 0) + open_ms,
            **_limit_of_day(row, limits_for(cluster.cluster_id)),
            sessions=(row.sessions if row else 0) + (1 if open_ms else 0),
            warned=bool(row and row.was_warned), terminated=bool(row and row.was_stopped),
            exempt=cluster.exempt, notes=day_notes(row, grants.get(cluster.cluster_id, []), tz),
            blocked_group=row.blocked_group if row and (row.blocked_at or row.over_quota_at) else None,
            previous_level=row.previous_level if row else None,
            restored_at=row.restored_at if row and row.blocked_at else None,  # lifted by a poll already
            estimated=bool(row and row.estimated) or cluster.estimated, archived_at=now, node_ms=node_ms,
            startup_ms=row.startup_ms if row else 0, startup_node_ms=row.startup_node_ms if row else 0))
        # The part before `hi` is archived now; the open interval continues from midnight.
        clipped = acc.clip_open_interval(cluster.tracker, hi)
        if clipped.open_since != cluster.open_since:
            ledger.clip_open_interval(cluster.cluster_id, clipped.open_since, clipped.segment_since)
    ledger.archive_day(day, history, now)
    findings, error = audit
    queue_report(daily_report(day, ctx.settings, findings=findings, audit_error=error, billing=billing),
                 ctx.settings, now)


def _limit_of_day(row: DayRecord | None, computed: Limits) -> dict:
    """The hard quota a poll applied that day (a group's, for its clusters), in its unit; the
    day's computed limit when no poll recorded one."""
    if row is not None and row.as_of is not None:  # a poll stored it (0 is a limit: a week used up)
        return {"limit_amount": row.limit_amount, "quota_unit": row.quota_unit}
    return {"limit_amount": computed.hard, "quota_unit": computed.unit.name}


def day_notes(row: DayRecord | None, grants: list[GrantRecord], tz) -> str:
    """What happened to a cluster on its day, in order, for the report: "warned at 13:55; stopped
    at 14:05; granted 30 min at 14:20 by alice (deadline)". Grants used to erase the first part."""
    events = []  # (when, what, more)
    if row is not None and row.first_warned_at:
        events.append((row.first_warned_at, "warned", ""))
    if row is not None and row.first_stopped_at:
        events.append((row.first_stopped_at, "stopped", ""))
    for g in grants:
        more = (f" by {g.granted_by}" if g.granted_by else "") + (f" ({g.reason})" if g.reason else "")
        amount = f"{g.amount:g} min" if g.unit == "minutes" else f"{g.amount:g} {g.unit.upper()}"
        events.append((g.granted_at, f"granted {amount}", more))
    return "; ".join(f"{what} at {when.astimezone(tz):%H:%M}{more}"
                     for when, what, more in sorted(events, key=lambda e: e[0]))


def _restore(ctx: JobContext, day: date, today: date, now: datetime, report: CloseReport
             ) -> tuple[list[str], bool]:
    blocked_today = ledger.blocked_cluster_ids(today, in_effect=False)
    todo = [h for h in ledger.unrestored_blocks(day) if h.cluster_id not in blocked_today]

    def restore(h: HistoryRecord) -> str | None:
        level = h.previous_level or RESTORED_LEVEL
        before = ctx.workspace.set_group_level(h.cluster_id, h.blocked_group, level)
        logger.info("cluster=%s name=%s group=%s restored: %s -> %s", h.cluster_id, h.cluster_name,
                    h.blocked_group, before or "none", level)
        return before

    results = ctx.parallel(restore, todo)
    done = []
    with ledger.transaction():
        for h, result in results:
            if isinstance(result, Failed):
                report.failures.append((h.cluster_name, result))
                logger.error("cluster=%s name=%s group=%s restore failed: %s", h.cluster_id,
                             h.cluster_name, h.blocked_group, result)
                continue
            ledger.mark_history_restored(h.cluster_id, day, now)
            done.append(h.cluster_name)
    return done, not any(isinstance(r, Failed) for _, r in results)
