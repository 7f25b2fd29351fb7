"""One poll: measure usage, decide, act, notify.

    1. list clusters; measure usage from events (parallel)            -> usage_sync.measure
    2. decide per cluster (pure)                                       -> quota.decide
    3. one transaction: usage, warnings (flag + outbox row together), over-quota intent
    4. workspace actions in parallel: terminate, block, restore        -> each safe to repeat
    5. one transaction: what the actions did, termination notices
    6. deliver the outbox within the mail budget

A kill between any two steps is safe: the next poll decides again from the ledger and the
workspace, finds the unfinished actions still needed, and the outbox's keys stop duplicates.
"""
from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass, field
from datetime import datetime

from .errors import WorkspaceUnavailable
from peewee import fn

from .ledger import ClusterDay
from .messages import dedupe_key, minutes, quota_resets_at, render, show_local
from .model import GroupInfo
from .notify import queue_failure_alert, recipients_for
from .outbox import enqueue
from .quota import Action, Decision, decide
from .usage_sync import ClusterUsage, measure, record

logger = logging.getLogger(__name__)
BLOCKED_LEVEL = "CAN_ATTACH_TO"
RESTORED_LEVEL = "CAN_RESTART"


@dataclass
class Outcome:
    usage: ClusterUsage
    decision: Decision
    done: list[Action] = field(default_factory=list)
    error: Exception | None = None
    previous_level: str | None = None


@dataclass
class PollReport:
    outcomes: list[Outcome]
    dry_run: bool
    delivered: object = None

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.error is not None]

    def count_done(self, action: str) -> int:
        return sum(Action(action) in o.done for o in self.outcomes)


def list_or_alert(lab, job: str, now: datetime, *, alert: bool = True):
    """The cluster list, or a failure alert to the admin and WorkspaceUnavailable."""
    try:
        return lab.gateway.list_clusters()
    except Exception as err:  # noqa: BLE001 - reported, then the run stops
        err.__traceback_text__ = traceback.format_exc()
        logger.error("cannot list clusters (%s: %s); nothing measured or enforced this run",
                     type(err).__name__, err)
        if alert:
            with lab.db.atomic():
                queue_failure_alert(lab, job, [("(the cluster list)", err)], now)
            lab.deliver(now)
        raise WorkspaceUnavailable(str(err)) from err


def run_poll(lab, now: datetime, *, dry_run: bool = False) -> PollReport:
    clusters = list_or_alert(lab, "poll_clusters", now, alert=not dry_run)
    if not dry_run:
        lift_stale_blocks(lab, now)
    usages = measure(lab, clusters, now)
    check_blocks(lab, usages)
    outcomes = [Outcome(u, decide(used_ms=u.group_used_ms, limits=u.limits, state=u.info.state,
                                  flags=u.flags, group=u.group, exempt=u.info.exempt or u.vanished,
                                  group_level=u.group_level, can_block=u.group_source != "creator"),
                        error=u.error) for u in usages]
    for o in outcomes:
        _log_decision(o, dry_run)
    if dry_run:
        return PollReport(outcomes, dry_run=True)

    needs_mail = {o.usage.group for o in outcomes
                  if o.usage.group and {Action.WARN, Action.NOTIFY} & set(o.decision.actions)}
    groups = dict(lab.parallel(lambda name: lab.gateway.group(name), sorted(needs_mail)))
    for o in outcomes:
        found = groups.get(o.usage.group)
        if isinstance(found, Exception) and {Action.WARN, Action.NOTIFY} & set(o.decision.actions):
            o.error = found  # without the members nobody can be told: try again next poll

    with lab.db.atomic():
        record(usages, now)
        for o in outcomes:
            _record_intent(lab, o, groups, now)

    acting = [o for o in outcomes if o.error is None and
              {Action.TERMINATE, Action.BLOCK, Action.REBLOCK, Action.RESTORE} & set(o.decision.actions)]
    results = lab.parallel(lambda o: _act(lab, o), acting)
    for o, result in results:
        if isinstance(result, Exception):
            o.error = result
            logger.error("%s %s action failed: %s", o.usage.label, o.usage.used_limit, result)

    with lab.db.atomic():
        for o in outcomes:
            if o.error is None:
                _record_results(lab, o, groups, now)
        failures = [o for o in outcomes if o.error is not None]
        if failures:
            queue_failure_alert(lab, "poll_clusters", [(o.usage.info.name, o.error) for o in failures], now)

    report = PollReport(outcomes, dry_run=False)
    report.delivered = lab.deliver(now)
    return report


def lift_stale_blocks(lab, now: datetime) -> None:
    """A block lasts until local midnight, whenever the nightly close runs (cron in another zone,
    a missed night): the first poll of a new day gives the rights back and says so. The close
    still archives the day; restoring again is a no-op."""
    from .accounting import local_day
    today = local_day(now, lab.settings.timezone)
    still = {r.cluster_id for r in ClusterDay.select().where(
        (ClusterDay.day == today) & ClusterDay.blocked_at.is_null(False))}
    stale = [r for r in ClusterDay.select().where(
        (ClusterDay.day < today) & ClusterDay.blocked_group.is_null(False) & ClusterDay.blocked_at.is_null(False)
        & ClusterDay.restored_at.is_null()) if r.cluster_id not in still]

    def lift(row: ClusterDay) -> None:
        level = row.previous_level or RESTORED_LEVEL
        lab.gateway.set_group_level(row.cluster_id, row.blocked_group, level)
        logger.warning("cluster=%s group=%s block of %s lifted at the day's first poll (back to %s): the "
                       "nightly close has not run yet", row.cluster_id, row.blocked_group, row.day, level)

    for row, result in lab.parallel(lift, stale):
        if isinstance(result, Exception):
            logger.error("cluster=%s group=%s: could not lift the block of %s (%s); the nightly close tries again",
                         row.cluster_id, row.blocked_group, row.day, result)
            continue
        ClusterDay.update(restored_at=now).where(
            (ClusterDay.cluster == row.cluster_id) & (ClusterDay.day == row.day)).execute()


def check_blocks(lab, usages: list[ClusterUsage]) -> None:
    """Read the ACL of every cluster blocked today (only those: this stays cheap) to see whether
    the block still holds. The ledger's flag is not proof: a Terraform apply or a person in the
    UI may have given the group its restart rights back."""
    blocked = [u for u in usages if u.flags.blocked and u.group and not u.vanished and u.error is None]

    for u, found in lab.parallel(lambda u: lab.gateway.group_level(u.info.cluster_id, u.group), blocked):
        if isinstance(found, Exception):
            u.error = found
        else:
            u.group_level = found


def _log_decision(o: Outcome, dry_run: bool) -> None:
    u = o.usage
    prefix = "DRY-RUN would " if dry_run else ""
    if o.decision.is_noop:
        logger.debug("%s %s no action: %s", u.label, u.used_limit, o.decision.reason)
    else:
        logger.info("%s %s %s%s: %s%s", u.label, u.used_limit, prefix,
                    "+".join(a.value for a in o.decision.actions), o.decision.reason,
                    " (estimate)" if u.estimated else "")


def _day_row(o: Outcome) -> ClusterDay:
    row, _ = ClusterDay.get_or_create(cluster=o.usage.info.cluster_id, day=o.usage.day)
    return row


def _granted(o: Outcome) -> tuple[int, datetime | None]:
    """Minutes granted today to the group's clusters (this one when it has no group), and when last."""
    from .ledger import Cluster, QuotaGrant
    u = o.usage
    ids = [u.info.cluster_id] if not u.group else [c.cluster_id for c in Cluster.select(Cluster.cluster_id).where(
        Cluster.group_name == u.group)] or [u.info.cluster_id]
    grants = list(QuotaGrant.select().where((QuotaGrant.day == u.day) & QuotaGrant.cluster.in_(ids)))
    return sum(g.minutes for g in grants), max((g.granted_at for g in grants), default=None)


def _context(lab, o: Outcome, now: datetime) -> dict:
    u = o.usage
    tz = lab.settings.timezone
    granted, granted_at = _granted(o)
    return {"group": u.group, "cluster_name": u.info.name, "cluster_id": u.info.cluster_id,
            "course": u.info.custom_tags.get("course"), "used_minutes": minutes(u.group_used_ms),
            "owner": u.owner,
            "limit_minutes": u.limits.max_ms // 60_000, "resets_at": quota_resets_at(now, tz),
            "seen_at": show_local(now, tz), "tz_name": tz.key, "found_level": u.group_level,
            "granted_minutes": granted, "granted_at": show_local(granted_at, tz) if granted_at else None,
            "contact": lab.settings.admin_email or "your course staff"}


def _queue(lab, o: Outcome, kind: str, groups: dict, now: datetime, *, admin_only: bool = False) -> None:
    u = o.usage
    to, cc = recipients_for(lab, groups.get(u.group) if not admin_only else None)
    limit = u.limits.warn_ms if kind == "warning" else u.limits.max_ms
    # The limit is in the key: after a grant, the new limit may earn a new message. The group's
    # warning and stop notice are one per group, however many of its clusters cross the line.
    subject = u.group if kind in ("warning", "termination") and u.group else u.info.cluster_id
    enqueue(kind=kind, key=dedupe_key(kind, subject, f"{u.day}:{limit}"), to=to, cc=cc,
            rendered=render(kind, _context(lab, o, now), templates_dir=lab.settings.mail_templates_dir),
            now=now)


def _record_intent(lab, o: Outcome, groups: dict[str, GroupInfo | Exception], now: datetime) -> None:
    if o.error is not None:
        return
    actions = set(o.decision.actions)
    if Action.WARN in actions:
        # The flag and the message commit together: a warning is queued exactly once.
        _queue(lab, o, "warning", groups, now)
        ClusterDay.update(warned_at=now, first_warned_at=fn.COALESCE(ClusterDay.first_warned_at, now)).where(
            _key(o)).execute()
        o.done.append(Action.WARN)
    if Action.BLOCK in actions or Action.TERMINATE in actions:
        row = _day_row(o)
        if row.over_quota_at is None or row.blocked_group is None:
            ClusterDay.update(over_quota_at=row.over_quota_at or now, blocked_group=o.usage.group).where(
                _key(o)).execute()


def _act(lab, o: Outcome) -> None:
    u = o.usage
    actions = o.decision.actions
    if Action.TERMINATE in actions:
        lab.gateway.terminate(u.info.cluster_id)
        o.done.append(Action.TERMINATE)
        logger.info("%s %s terminated", u.label, u.used_limit)
    if Action.BLOCK in actions:
        o.previous_level = lab.gateway.set_group_level(u.info.cluster_id, u.group, BLOCKED_LEVEL)
        o.done.append(Action.BLOCK)
        logger.info("%s %s blocked: group lowered from %s to %s", u.label, u.used_limit,
                    o.previous_level or "none", BLOCKED_LEVEL)
    if Action.REBLOCK in actions:
        lab.gateway.set_group_level(u.info.cluster_id, u.group, BLOCKED_LEVEL)
        o.done.append(Action.REBLOCK)
        logger.warning("%s %s block undone from outside (the group held %s): lowered to %s again",
                       u.label, u.used_limit, u.group_level, BLOCKED_LEVEL)
    if Action.RESTORE in actions:
        level = u.previous_level or RESTORED_LEVEL
        lab.gateway.set_group_level(u.info.cluster_id, u.group, level)
        o.done.append(Action.RESTORE)
        logger.info("%s %s restored: group back to %s", u.label, u.used_limit, level)


def _key(o: Outcome):
    return (ClusterDay.cluster == o.usage.info.cluster_id) & (ClusterDay.day == o.usage.day)


def _record_results(lab, o: Outcome, groups: dict, now: datetime) -> None:
    done = set(o.done)
    flags = o.usage.flags
    if Action.TERMINATE in done:
        row = _day_row(o)
        ClusterDay.update(terminated_at=row.terminated_at or now, first_stopped_at=row.first_stopped_at or now,
                          reterminations=row.reterminations + (1 if flags.terminated else 0)).where(
            _key(o)).execute()
    if Action.BLOCK in done:
        kept = o.previous_level if o.previous_level not in (None, BLOCKED_LEVEL) else None
        ClusterDay.update(blocked_at=now, blocked_group=o.usage.group,
                          previous_level=kept or _day_row(o).previous_level or RESTORED_LEVEL).where(
            _key(o)).execute()
    if Action.NOTIFY in o.decision.actions:
        _queue(lab, o, "termination", groups, now)
        ClusterDay.update(notified_at=now).where(_key(o)).execute()
        o.done.append(Action.NOTIFY)
    if Action.NOTIFY_RETERMINATION in o.decision.actions and Action.TERMINATE in done:
        _queue(lab, o, "retermination", groups, now, admin_only=True)
        ClusterDay.update(retermination_notified_at=now).where(_key(o)).execute()
        o.done.append(Action.NOTIFY_RETERMINATION)
    if Action.NOTIFY_REBLOCK in o.decision.actions and Action.REBLOCK in done:
        _queue(lab, o, "block_undone", groups, now, admin_only=True)
        ClusterDay.update(reblock_notified_at=now).where(_key(o)).execute()
        o.done.append(Action.NOTIFY_REBLOCK)
    if Action.RESTORE in done:
        # A grant lifted the limit: today's flags start over against the new limit.
        ClusterDay.update(blocked_at=None, over_quota_at=None, notified_at=None, warned_at=None, terminated_at=None,
                          reblock_notified_at=None,
                          restored_at=now, blocked_group=None).where(_key(o)).execute()
