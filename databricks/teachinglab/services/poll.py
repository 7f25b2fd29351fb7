"""One poll: measure usage, decide, act, notify.

    1. list clusters; measure usage from events (parallel)            -> services.usage.measure
    2. decide per cluster (pure)                                       -> core.quota.decide
    3. one transaction: usage, and each action's intent (a warning: its flag and outbox row together)
    4. workspace actions in parallel: terminate, block, reblock, restore -> each safe to repeat
    5. one transaction: what the actions did (a flag only after its action succeeded), notices
    6. deliver the outbox within the mail budget

A kill between any two steps is safe: the next poll decides again from the ledger and the
workspace, finds the unfinished actions still needed, and the outbox's keys stop duplicates.
Each action is one row of ACTIONS: (intent, execute, record).
"""
from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

from databricks.teachinglab.adapters.ledger import repository as ledger
from databricks.teachinglab.adapters.mail.outbox import enqueue
from databricks.teachinglab.adapters.mail.render import render
from databricks.teachinglab.core.accounting import ACTIVE_STATES, local_day
from databricks.teachinglab.core.errors import Failed, MessageProblem, WorkspaceUnavailable
from databricks.teachinglab.core.messages import dedupe_key, quota_figures, quota_resets_at, show_local
from databricks.teachinglab.core.model import GroupInfo
from databricks.teachinglab.core.quota import Action, Decision, decide
from databricks.teachinglab.core.usage import ClusterUsage, on_the_quarter_hour, stop_today
from databricks.teachinglab.services.alerts import queue_failure_alert, recipients_for
from databricks.teachinglab.services.context import JobContext
from databricks.teachinglab.services.status import status_link
from databricks.teachinglab.services.trust import queue_tag_drift
from databricks.teachinglab.services.usage import measure

logger = logging.getLogger(__name__)
BLOCKED_LEVEL = "CAN_ATTACH_TO"
RESTORED_LEVEL = "CAN_RESTART"


@dataclass
class Outcome:
    usage: ClusterUsage
    decision: Decision
    done: list[Action] = field(default_factory=list)
    error: Failed | None = None
    previous_level: str | None = None


@dataclass
class PollReport:
    outcomes: list[Outcome]
    dry_run: bool
    delivered: object = None
    earlier: "PollReport | None" = None   # the same run's pass before it waited for a quota
    # Reads that failed without stopping any action (a group's members, a blocked cluster's ACL):
    # reported to the admin, retried next run.
    problems: list = field(default_factory=list)

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.error is not None] + (self.earlier.failures if self.earlier else [])

    @property
    def failed(self) -> bool:
        return bool(self.failures or self.problems or (self.earlier and self.earlier.failed))

    def count_done(self, action: str) -> int:
        return sum(Action(action) in o.done for o in self.outcomes) + (
            self.earlier.count_done(action) if self.earlier else 0)

    @property
    def unpriced_node_types(self) -> list[str]:
        """Node types of the clusters measured this run that the price table lacks (a DBU or USD
        quota counted them at the table's dearest rate)."""
        found = {f"{t} (Photon)" if o.usage.info.photon else t for o in self.outcomes if o.usage.unpriced
                 for t in (o.usage.info.node_type_id, o.usage.info.driver_node_type_id) if t}
        return sorted(found | set(self.earlier.unpriced_node_types if self.earlier else ()))

    def next_stop(self, now: datetime) -> datetime | None:
        """The earliest moment, after `now`, at which a running group reaches its hard quota."""
        due = [o.usage.limit_at for o in self.outcomes if o.error is None and o.usage.limit_at is not None
               and o.usage.limit_at > now and Action.TERMINATE not in o.decision.actions]
        return min(due, default=None)


@dataclass
class Sweep:
    """What every action of one poll shares."""
    ctx: JobContext
    now: datetime
    groups: dict[str, GroupInfo | Failed]
    problems: list = field(default_factory=list)   # messages that needed a fallback (a broken template)

    def unreadable(self, group: str | None) -> bool:
        """The group's members could not be read this poll: only the admin can be told."""
        return isinstance(self.groups.get(group), Failed)


def list_or_alert(ctx: JobContext, job: str, now: datetime, *, alert: bool = True):
    """The cluster list, or a failure alert to the admin and WorkspaceUnavailable."""
    try:
        return ctx.workspace.list_clusters()
    except Exception as err:  # noqa: BLE001 - reported, then the run stops
        logger.error("cannot list clusters (%s: %s); nothing measured or enforced this run",
                     type(err).__name__, err)
        if alert:
            with ledger.transaction():
                queue_failure_alert(ctx, job, [("(the cluster list)", Failed(err, traceback.format_exc()))], now,
                                    handled=[])
            ctx.deliver(now)
        raise WorkspaceUnavailable(str(err)) from err


def run_poll(ctx: JobContext, now: datetime, *, dry_run: bool = False) -> PollReport:
    clusters = list_or_alert(ctx, "poll_clusters", now, alert=not dry_run)
    if not dry_run:
        lift_stale_blocks(ctx, now)
    usages = measure(ctx, clusters, now, dry_run=dry_run)
    problems = check_blocks(ctx, usages, now)
    outcomes = [Outcome(u, decide(used=u.group_used, limits=u.limits, state=u.info.state,
                                  flags=u.flags, group=u.group, exempt=u.exempt or u.vanished,
                                  group_level=u.group_level, can_block=u.group_source != "creator",
                                  alone=u.orphan),
                        error=u.error) for u in usages]
    for o in outcomes:
        _log_decision(o, dry_run)
    if dry_run:
        return PollReport(outcomes, dry_run=True)

    # Enforcement never waits for mail: a group whose members cannot be read is stopped and
    # blocked all the same; only the admin is told now, the group once its members can be read.
    mailing = {Action.WARN, Action.NOTIFY}
    needs_mail = {o.usage.group for o in outcomes if o.usage.group and mailing & set(o.decision.actions)}
    sweep = Sweep(ctx, now, dict(ctx.parallel(ctx.workspace.group, sorted(needs_mail))))
    problems += [(f"(the members of group {g})", f) for g, f in sweep.groups.items() if isinstance(f, Failed)]

    with ledger.transaction():
        ledger.save_usage(usages, now)
        for o in outcomes:
            if o.error is None:
                _each(o, "intent", sweep)

    acting = [o for o in outcomes if o.error is None and any(ACTIONS[a].execute for a in o.decision.actions)]
    for o, result in ctx.parallel(lambda o: _each(o, "execute", sweep), acting):
        if isinstance(result, Failed):
            o.error = result
            logger.error("%s %s action failed: %s", o.usage.label, o.usage.used_limit, result)

    with ledger.transaction():
        for o in outcomes:
            if o.error is None:
                _each(o, "record", sweep)
        problems += sweep.problems
        failures = [(o.usage.info.name, o.error) for o in outcomes if o.error is not None] + problems
        if failures:
            queue_failure_alert(ctx, "poll_clusters", failures, now,
                                handled=[o.usage.info.name for o in outcomes if o.error is None])
        queue_tag_drift(ctx, usages, now)

    report = PollReport(outcomes, dry_run=False, problems=problems)
    report.delivered = ctx.deliver(now)
    return report


# Time kept for the stop itself (list, measure, terminate, block) after a wait for a quota.
STOP_MARGIN_SECONDS = 5.0


def run_poll_to_the_second(ctx: JobContext, now: datetime, *, wait: Callable[[float], datetime],
                           interval_seconds: float, dry_run: bool = False) -> PollReport:
    """A poll that, when a group reaches its hard quota before this run must end (its deadline,
    and the next run), waits for that moment and acts then: the stop lands seconds after the
    crossing instead of up to a minute. `wait(seconds)` sleeps and returns the new `now` (the
    CLI's clock; a simulated one in tests and the benchmark)."""
    first = run_poll(ctx, now, dry_run=dry_run)
    crossing = None if dry_run else first.next_stop(now)
    if crossing is None:
        return first
    elapsed = ctx.deadline.elapsed()  # the first pass took this long since `now`
    left = (crossing - now).total_seconds() - elapsed
    if left > min(ctx.deadline.remaining(), interval_seconds - elapsed) - STOP_MARGIN_SECONDS:
        return first
    logger.info("a group reaches its hard quota at %s, inside this run: waiting %.1f s to stop it then",
                crossing.astimezone(ctx.settings.quota.timezone).isoformat(timespec="seconds"), max(0.0, left))
    second = run_poll(ctx, wait(max(0.0, left)))
    second.earlier = first
    return second


def lift_stale_blocks(ctx: JobContext, now: datetime) -> None:
    """A block lasts until local midnight, whenever the nightly close runs (cron in another zone,
    a missed night): the first poll of a new day gives the rights back and says so. The close
    still archives the day; restoring again is a no-op."""
    today = local_day(now, ctx.settings.quota.timezone)
    still = ledger.blocked_cluster_ids(today)
    stale = [r for r in ledger.stale_blocks(today) if r.cluster_id not in still]

    def lift(row) -> None:
        level = row.previous_level or RESTORED_LEVEL
        ctx.workspace.set_group_level(row.cluster_id, row.blocked_group, level)
        logger.warning("cluster=%s group=%s block of %s lifted at the day's first poll (back to %s): the "
                       "nightly close has not run yet", row.cluster_id, row.blocked_group, row.day, level)

    for row, result in ctx.parallel(lift, stale):
        if isinstance(result, Failed):
            logger.error("cluster=%s group=%s: could not lift the block of %s (%s); the nightly close tries again",
                         row.cluster_id, row.blocked_group, row.day, result)
            continue
        ledger.mark_lifted(row.cluster_id, row.day, now)


def check_blocks(ctx: JobContext, usages: list[ClusterUsage], now: datetime) -> list[tuple[str, Failed]]:
    """Read the ACL of clusters blocked today (only those: this stays cheap) to see whether the
    block still holds. The ledger's flag is not proof: a Terraform apply or a person in the UI
    may have given the group its restart rights back. A blocked cluster that is running again is
    checked at once; the others on the quarter hour. An ACL that cannot be read is reported and
    read again next run; the cluster is stopped all the same."""
    quarter = on_the_quarter_hour(now, ctx.settings.quota.timezone)
    blocked = [u for u in usages if u.flags.blocked and u.group and not u.vanished and u.error is None
               and (quarter or u.info.state in ACTIVE_STATES)]
    problems = []
    for u, found in ctx.parallel(lambda u: ctx.workspace.group_level(u.info.cluster_id, u.group), blocked):
        if isinstance(found, Failed):
            logger.error("%s: its permissions could not be read (%s); whether the block still holds is checked "
                         "again next run", u.label, found)
            problems.append((f"{u.info.name} (its permissions)", found))
        else:
            u.group_level = found
    return problems


def _log_decision(o: Outcome, dry_run: bool) -> None:
    u = o.usage
    prefix = "DRY-RUN would " if dry_run else ""
    if o.decision.is_noop:
        logger.debug("%s %s no action: %s", u.label, u.used_limit, o.decision.reason)
    else:
        logger.info("%s %s %s%s: %s%s", u.label, u.used_limit, prefix,
                    "+".join(a.value for a in o.decision.actions), o.decision.reason,
                    " (estimate)" if u.estimated else "")


# -- the actions: intent (ledger, before), execute (workspace), record (ledger, after success) ---
Phase = Callable[[Sweep, Outcome], None]


@dataclass(frozen=True)
class Step:
    intent: Phase | None = None
    execute: Phase | None = None
    record: Phase | None = None
    requires: Action | None = None   # recorded only when this other action was done in this poll


def _each(o: Outcome, phase: str, sweep: Sweep) -> None:
    """Run one phase of every decided action, in the table's order (terminate before block)."""
    for action, step in ACTIONS.items():
        run = getattr(step, phase)
        if action in o.decision.actions and run is not None and (
                step.requires is None or step.requires in o.done):
            run(sweep, o)


def _warn(s: Sweep, o: Outcome) -> None:
    # The flag and the message commit together: a warning is queued exactly once. Without the
    # group's members there is nobody to warn yet: the next poll decides the warning again.
    if s.unreadable(o.usage.group):
        logger.warning("%s %s warning postponed: the group's members could not be read", o.usage.label,
                       o.usage.used_limit)
        return
    _queue(s, o, "warning")
    ledger.mark_warned(o.usage.info.cluster_id, o.usage.day, s.now)
    o.done.append(Action.WARN)


def _over_quota(s: Sweep, o: Outcome) -> None:
    ledger.mark_over_quota(o.usage.info.cluster_id, o.usage.day, o.usage.group, s.now)


def _terminate(s: Sweep, o: Outcome) -> None:
    u = o.usage
    s.ctx.workspace.terminate(u.info.cluster_id)
    o.done.append(Action.TERMINATE)
    logger.info("%s %s terminated", u.label, u.used_limit)


def _terminated(s: Sweep, o: Outcome) -> None:
    if Action.TERMINATE in o.done:
        ledger.mark_terminated(o.usage.info.cluster_id, o.usage.day, s.now, again=o.usage.flags.terminated)


def _block(s: Sweep, o: Outcome) -> None:
    u = o.usage
    o.previous_level = s.ctx.workspace.set_group_level(u.info.cluster_id, u.group, BLOCKED_LEVEL)
    o.done.append(Action.BLOCK)
    logger.info("%s %s blocked: group lowered from %s to %s", u.label, u.used_limit,
                o.previous_level or "none", BLOCKED_LEVEL)


def _blocked(s: Sweep, o: Outcome) -> None:
    if Action.BLOCK not in o.done:
        return
    u = o.usage
    kept = o.previous_level if o.previous_level not in (None, BLOCKED_LEVEL) else None
    previous = kept or ledger.day_of(u.info.cluster_id, u.day).previous_level or RESTORED_LEVEL
    ledger.mark_blocked(u.info.cluster_id, u.day, u.group, previous, s.now)


def _reblock(s: Sweep, o: Outcome) -> None:
    u = o.usage
    s.ctx.workspace.set_group_level(u.info.cluster_id, u.group, BLOCKED_LEVEL)
    o.done.append(Action.REBLOCK)
    logger.warning("%s %s block undone from outside (the group held %s): lowered to %s again",
                   u.label, u.used_limit, u.group_level, BLOCKED_LEVEL)


def _restore(s: Sweep, o: Outcome) -> None:
    u = o.usage
    level = u.previous_level or RESTORED_LEVEL
    s.ctx.workspace.set_group_level(u.info.cluster_id, u.group, level)
    o.done.append(Action.RESTORE)
    logger.info("%s %s restored: group back to %s", u.label, u.used_limit, level)


def _restored(s: Sweep, o: Outcome) -> None:
    if Action.RESTORE in o.done:
        # A grant lifted the limit: today's flags start over against the new limit.
        ledger.reset_after_restore(o.usage.info.cluster_id, o.usage.day, s.now)


def _notice(kind: str, action: Action, *, admin_only: bool = False) -> Phase:
    def notice(s: Sweep, o: Outcome) -> None:
        if not admin_only and s.unreadable(o.usage.group):
            # The stop happened; the admin hears of it now, the group once its members can be
            # read (the notice is decided again every poll until then).
            _queue(s, o, kind, admin_only=True, key_suffix=":admin")
            logger.warning("%s %s %s notice to the group postponed: its members could not be read; the admin "
                           "was told", o.usage.label, o.usage.used_limit, kind)
            return
        _queue(s, o, kind, admin_only=admin_only)
        ledger.mark_noticed(o.usage.info.cluster_id, o.usage.day, kind, s.now)
        o.done.append(action)
    return notice


ACTIONS: dict[Action, Step] = {
    Action.WARN: Step(intent=_warn),
    Action.TERMINATE: Step(intent=_over_quota, execute=_terminate, record=_terminated),
    Action.BLOCK: Step(intent=_over_quota, execute=_block, record=_blocked),
    Action.REBLOCK: Step(execute=_reblock),
    Action.RESTORE: Step(execute=_restore, record=_restored),
    Action.NOTIFY: Step(record=_notice("termination", Action.NOTIFY)),
    Action.NOTIFY_RETERMINATION: Step(record=_notice("retermination", Action.NOTIFY_RETERMINATION, admin_only=True),
                                      requires=Action.TERMINATE),
    Action.NOTIFY_REBLOCK: Step(record=_notice("block_undone", Action.NOTIFY_REBLOCK, admin_only=True),
                                requires=Action.REBLOCK),
}


# -- messages -----------------------------------------------------------------------------------
def _granted(o: Outcome) -> tuple[float, datetime | None]:
    """What was granted today, in the quota unit, to the group's clusters (this one when it has no
    group), and when last."""
    u = o.usage
    ids = (ledger.cluster_ids_of_group(u.group) if u.group else []) or [u.info.cluster_id]
    grants = [g for g in ledger.grants_on(u.day, ids) if g.unit == u.limits.unit.name]
    return sum(g.amount for g in grants), max((g.granted_at for g in grants), default=None)


def _context(s: Sweep, o: Outcome) -> dict:
    u = o.usage
    tz = s.ctx.settings.quota.timezone
    granted, granted_at = _granted(o)
    return {"group": u.group, "cluster_name": u.info.name, "cluster_id": u.info.cluster_id,
            "course": u.info.custom_tags.get("course"), "owner": u.owner,
            **quota_figures(u.limits, u.group_used, u.group_used_ms, granted),
            "resets_at": quota_resets_at(s.now, tz),
            "seen_at": show_local(s.now, tz), "tz_name": tz.key, "found_level": u.group_level,
            "granted_at": show_local(granted_at, tz) if granted_at else None,
            "stops_at": _stops_at(u, tz), "contact": s.ctx.settings.mail.admin_email or "your course staff",
            "status_url": status_link(s.ctx.settings, u.group, s.now) if u.group else None}


def _stops_at(u: ClusterUsage, tz) -> str | None:
    """"14:20 IST": when, at the current rate, the group reaches its hard quota today; None when
    nothing of it runs, or when the quota resets first."""
    stop = stop_today(u.limit_at, u.day, tz)
    return stop.astimezone(tz).strftime("%H:%M %Z") if stop else None


def _queue(s: Sweep, o: Outcome, kind: str, *, admin_only: bool = False, key_suffix: str = "") -> None:
    u = o.usage
    found = s.groups.get(u.group) if not admin_only else None
    to, cc = recipients_for(s.ctx, found if isinstance(found, GroupInfo) else None)
    if u.orphan and u.owner and not admin_only:  # a student's cluster held alone: its creator is told
        to, cc = [u.owner], [a for a in (s.ctx.settings.mail.admin_email,) if a]
    limit = u.limits.warn if kind == "warning" else u.limits.hard
    # The limit is in the key: after a grant, the new limit may earn a new message. The group's
    # warning and stop notice are one per group, however many of its clusters cross the line;
    # a weekly or semester warning once per week or semester, and its stop notice too: once per
    # period and what was added on top of it (a grant or a top-up earns a new one), never again
    # on the next days of a week already used up (their limit is 0, a new number, the same stop).
    subject = u.group if kind in ("warning", "termination") and u.group else u.info.cluster_id
    period = f"{u.day}:{limit}"
    if kind == "warning" and u.limits.warn_cap != "daily":
        period = f"{u.limits.warn_cap}:{u.limits.warn_period}"
    elif kind == "termination" and u.limits.cap != "daily":
        period = f"{u.limits.cap}:{u.limits.period}:extra{u.limits.extra}"
    key = dedupe_key(kind, subject, period) + key_suffix
    rendered = render(kind, _context(s, o), templates_dir=s.ctx.settings.mail.templates_dir)
    if rendered.problem:
        s.problems.append((f"(the message {key})", Failed(MessageProblem(
            f"sent from a fallback, its templates failed: {rendered.problem}"))))
    enqueue(kind=kind, key=key, to=to, cc=cc, rendered=rendered, now=s.now)
