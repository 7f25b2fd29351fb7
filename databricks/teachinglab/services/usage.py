"""Bring the ledger's usage up to `now` from cluster events: shared by the poll and the nightly close.

measure() reads the workspace (in parallel) and the ledger and computes everything in memory;
repository.save_usage() writes it (the caller holds the transaction). Running both twice at the same `now`
changes nothing, because events at or before a cluster's watermark are never applied again.
"""
from __future__ import annotations

import logging
from datetime import date, datetime

from databricks.teachinglab.adapters.ledger import repository as ledger
from databricks.teachinglab.core import accounting as acc
from databricks.teachinglab.core.accounting import Activity, Tracker
from databricks.teachinglab.core.errors import DeadlineReached, Expected, Failed
from databricks.teachinglab.core.model import ClusterInfo
from databricks.teachinglab.core.quota import DayFlags, Limits
from databricks.teachinglab.core.records import DayRecord, TrackedCluster
from databricks.teachinglab.core.settings import Settings
from databricks.teachinglab.core.units import Measured
from databricks.teachinglab.core.trust import LAB, STUDENT, Attribution, attribute, kind_of
from databricks.teachinglab.core.usage import (ClusterUsage, LimitsBook, apply_group_quota, could_cross,
                                               forecast_limits, on_the_quarter_hour)
from databricks.teachinglab.services.allowances import PolicyBook, counted_serverless, policy_book
from databricks.teachinglab.services.context import JobContext
from databricks.teachinglab.services.trust import lab_principals

logger = logging.getLogger(__name__)


def limits_book(settings: Settings, day: date) -> LimitsBook:
    """The defaults, the per-cluster overrides and the day's grants, in the quota unit. An override
    or grant made in another unit (QUOTA_UNIT changed since) is left out, and said each run."""
    unit = settings.quota.unit
    overrides, grants = {}, []
    for cluster_id, (their_unit, warn, hard) in ledger.overrides().items():
        if their_unit == unit.name:
            overrides[cluster_id] = (warn, hard)
        else:
            logger.warning("cluster=%s: its quota override is in %s, QUOTA_UNIT is %s: left out; set it again "
                           "with --set_quota, or clear it with --clear_quota", cluster_id, their_unit, unit.name)
    for grant in ledger.grants_on(day):
        if grant.unit == unit.name:
            grants.append(grant)
        else:
            logger.warning("cluster=%s: a grant of %g %s on %s is left out: QUOTA_UNIT is %s", grant.cluster_id,
                           grant.amount, grant.unit, day, unit.name)
    book = LimitsBook.of(unit, (settings.quota.warn_limit, settings.quota.max_limit), overrides, grants)
    book.group_defaults = {g: (c.daily_warn, c.daily_max) for g, c in settings.quota.the_policy.groups.items()}
    return book


def group_limits(limits_for: LimitsBook, book: PolicyBook | None, group: str | None,
                 members: list[tuple[str, str | None]]) -> Limits:
    """A group's limits today: the daily ones (overrides, grants), then the semester policy's."""
    daily = limits_for.for_group(members, group)
    if book is None or group is None:
        return daily
    return book.limits(group, daily, limits_for.unit.of(limits_for.granted(members)))


def quota_amount(settings: Settings, cluster, m: Measured) -> tuple[int, bool]:
    """What a cluster's measured day counts in the quota unit, and whether its node types are priced."""
    return settings.quota.unit.amount(settings.quota.prices, cluster, m)


def rate_now(settings: Settings, u: ClusterUsage) -> float:
    """What a usable cluster adds to its group's usage per ms, with the workers it runs now."""
    return settings.quota.unit.rate_per_ms(settings.quota.prices, _node_types(u), u.tracker.workers or 0)


def _node_types(u: ClusterUsage):
    """A vanished cluster's info is rebuilt from the ledger without node types: use the ledger's."""
    return u.known if u.info.node_type_id is None and u.known is not None else u.info


def _tracker(row: TrackedCluster | None) -> Tracker | None:
    return None if row is None else row.tracker


def _flags(row: DayRecord | None) -> DayFlags:
    return DayFlags() if row is None else row.flags


class UnknownCreator(Expected):
    """A new cluster whose creator cannot be classified this run (the admins were unreadable)."""


def measure(ctx: JobContext, clusters: list[ClusterInfo], now: datetime, *, dry_run: bool = False
            ) -> list[ClusterUsage]:
    tz = ctx.settings.quota.timezone
    today = acc.local_day(now, tz)
    known = ledger.load_clusters()
    rows_today = ledger.days_on(today)
    limits_for = limits_book(ctx.settings, today)
    book = policy_book(ctx.settings, today, clusters=known) if ctx.settings.quota.the_policy.periodic else None

    def activity(info: ClusterInfo) -> Activity:
        tracker = _tracker(known.get(info.cluster_id))
        if acc.events_expired(tracker, now):
            logger.warning("cluster=%s name=%s: last look is over 30 days old; usage is an estimate",
                           info.cluster_id, info.name)
            return acc.estimate_activity(tracker, info, now)
        start = acc.events_window_start(tracker, now, tz)
        try:
            events = ctx.workspace.events(info.cluster_id, start, now, acc.EVENT_TYPES)
        except DeadlineReached:
            raise  # not measured this run; the next run starts from the same watermark
        except Exception as err:  # noqa: BLE001 - fall back, and say so
            logger.warning("cluster=%s name=%s: events unavailable (%s); usage is an estimate from "
                           "state and start times", info.cluster_id, info.name, type(err).__name__)
            return acc.estimate_activity(tracker, info, now)
        settled = acc.settle_with_state(acc.apply_events(tracker, events, info, now, start), info)
        return acc.workers_from_list(settled, info, now)

    to_fetch = [c for c in clusters if acc.may_have_run(c, _tracker(known.get(c.cluster_id)))]
    quiet = {c.cluster_id for c in to_fetch if acc.quiet(c, _tracker(known.get(c.cluster_id)), now)}
    quiet -= _near_a_threshold(ctx, clusters, known, rows_today, limits_for, book, today, now)
    activities = dict(ctx.parallel(activity, [c for c in to_fetch if c.cluster_id not in quiet]))
    for c in to_fetch:
        if c.cluster_id in quiet:  # nothing new to apply: measured from its open interval
            activities[c] = Activity(known[c.cluster_id].tracker, ())

    def acl_group(info: ClusterInfo) -> str | None:
        groups = [e.principal for e in ctx.workspace.acl(info.cluster_id)
                  if e.principal_type == "group_name" and e.level == "CAN_RESTART" and not e.inherited]
        return sorted(groups)[0] if groups else None

    principals = lab_principals(ctx, now, creators=[c.creator for c in clusters if c.cluster_id not in known],
                                dry_run=dry_run)
    kinds = {c.cluster_id: kind_of(c, known.get(c.cluster_id), principals) for c in clusters}
    # A lab cluster no tag maps: its ACL is read when it is first seen, then on the quarter hour
    # until a group is found (then remembered). A student cluster's ACL decides nothing: unread.
    recheck = on_the_quarter_hour(now, tz)
    acl_groups = dict(ctx.parallel(acl_group, [c for c in clusters if kinds[c.cluster_id] == LAB
                                              and _needs_acl(c, known.get(c.cluster_id), recheck)]))
    lab = {c.cluster_id: attribute(c, known.get(c.cluster_id), LAB, acl_group=_found(acl_groups.get(c)))
           for c in clusters if kinds[c.cluster_id] == LAB}
    course_groups = {a.group for a in lab.values() if a.group} | {
        r.group_name for r in known.values() if r.kind == LAB and r.group_name and r.group_source != "creator"}
    creator_groups = _creators_course_groups(ctx, [c for c in clusters if kinds[c.cluster_id] == STUDENT and (
        recheck or c.cluster_id not in known or known[c.cluster_id].kind != STUDENT)], known, course_groups)
    exempted = ledger.exemptions()

    out = []
    listed = {c.cluster_id for c in clusters}
    attributions: dict[str, Attribution] = {}
    for row in known.values():
        if row.cluster_id not in listed and row.open_since is not None:
            logger.warning("cluster=%s name=%s: no longer in the workspace while running; its session is "
                           "closed at %s, when it was last seen", row.cluster_id, row.name, row.last_seen.isoformat())
            info = ClusterInfo(row.cluster_id, row.name, "DELETED", creator=row.creator, photon=row.photon)
            activities[info] = acc.close_vanished(_tracker(row), row.last_seen, now)
            attributions[row.cluster_id] = Attribution(row.group_name, row.group_source, row.kind, row.tag_group,
                                                       row.tag_quota)
            clusters = [*clusters, info]
    for info in clusters:
        row = known.get(info.cluster_id)
        kind = kinds.get(info.cluster_id)
        a = attributions.get(info.cluster_id) or lab.get(info.cluster_id) or attribute(
            info, row, kind, creator_group=creator_groups.get((info.creator or "").lower()))
        tracker = _tracker(row) or Tracker()
        usage = ClusterUsage(info, a.group, a.source, tracker, today, flags=_flags(rows_today.get(info.cluster_id)),
                             vanished=info.cluster_id not in listed, attribution=a,
                             exempt=a.tag_exempt or info.cluster_id in exempted)
        if a.kind == STUDENT:
            usage.owner = info.creator or (row.owner if row else None)
        if a.kind is None and not usage.vanished:
            usage.error = Failed(UnknownCreator(
                f"cannot tell whose cluster this is: its creator {info.creator or '(deleted user)'} may be a "
                "workspace admin, and the admins could not be read this run; it is measured, and enforced once "
                "they can be read"))
        elif a.drift:
            logger.warning("%s: its tags changed since the ledger first saw it (group %r, quota %r recorded; now "
                           "%r, %r): the recorded ones still decide; accept the new ones with --accept_tags "
                           "--cluster %s", f"cluster={info.cluster_id} name={info.name}", a.tag_group, a.tag_quota,
                           info.claimed_group or "", info.claimed_quota, info.cluster_id)
        result = activities.get(info)
        if isinstance(result, Failed):
            usage.error = result
        elif result is not None:
            usage.tracker = result.tracker
            usage.estimated = result.estimated
            for interval in result.closed:
                for day, ms in acc.split_by_day(interval, tz).items():
                    piece = usage.pieces.setdefault(day, [0, 0])
                    piece[0] += ms
                    piece[1] += 1
            usage.node_pieces = acc.node_ms_by_day(result.segments, tz)
            usage.segments = result.segments
            usage.startup_pieces = acc.startup_by_day(result.startup, tz)
        day_row = rows_today.get(info.cluster_id)
        usage.previous_level = day_row.previous_level if day_row else None
        usage.closed_ms = (day_row.closed_ms if day_row else 0) + usage.pieces.get(today, [0])[0]
        usage.used_ms = acc.used_ms_on(today, tz, usage.closed_ms, usage.tracker.open_since, now)
        usage.closed_node_ms = (day_row.closed_node_ms if day_row else 0) + usage.node_pieces.get(today, 0)
        usage.used_node_ms = acc.used_node_ms_on(today, tz, usage.closed_node_ms, usage.tracker, now)
        usage.known = row
        booked = (day_row.startup_ms, day_row.startup_node_ms) if day_row else (0, 0)
        piece = usage.startup_pieces.get(today, (0, 0))
        usage.used, priced = quota_amount(ctx.settings, _node_types(usage), Measured(
            usage.used_ms, usage.used_node_ms, booked[0] + piece[0], booked[1] + piece[1]))
        usage.unpriced = not priced
        if usage.unpriced and usage.used:
            logger.warning("%s: node type %s is not in the price table %s; its %s are counted at the table's "
                           "dearest rate", usage.label, info.node_type_id, ctx.settings.quota.price_file,
                           ctx.settings.quota.unit.symbol)
        usage.limits = limits_for(info.cluster_id)
        usage.group_used_ms, usage.group_used = usage.used_ms, usage.used
        out.append(usage)
    extra = {g: v for (g, _), v in counted_serverless(ctx.settings, today, today).items()}
    apply_group_quota(out, limits_for, book.limits if book else None, extra)
    forecast_limits(out, now, lambda u: rate_now(ctx.settings, u))
    return out



def _near_a_threshold(ctx: JobContext, clusters: list[ClusterInfo], known: dict[str, TrackedCluster],
                      rows_today: dict[str, DayRecord], limits_for: LimitsBook, book: PolicyBook | None,
                      today: date, now: datetime) -> set[str]:
    """Clusters of the groups that may pass a quota before the next run (with a run's slack):
    their events are read even when quiet, so the warning or the stop is decided on exact usage."""
    tz = ctx.settings.quota.timezone
    horizon_ms = 2 * ctx.settings.workspace.poll_interval_seconds * 1000
    groups: dict[str, list[tuple[ClusterInfo, TrackedCluster]]] = {}
    for c in clusters:
        row = known.get(c.cluster_id)
        if row is None or row.exempt:
            continue
        if row.group_name:
            groups.setdefault(row.group_name, []).append((c, row))
        elif row.kind == STUDENT:  # a student cluster held to the quota alone
            groups.setdefault(f"\0{row.cluster_id}", []).append((c, row))
    unit, prices = ctx.settings.quota.unit, ctx.settings.quota.prices
    near: set[str] = set()
    for group, members in groups.items():
        used = 0
        for _, row in members:
            day_row = rows_today.get(row.cluster_id) or DayRecord(row.cluster_id, today)
            used += unit.amount(prices, row, Measured(
                acc.used_ms_on(today, tz, day_row.closed_ms, row.open_since, now),
                acc.used_node_ms_on(today, tz, day_row.closed_node_ms, row.tracker, now),
                day_row.startup_ms, day_row.startup_node_ms))[0]
        # At the autoscale maximum: a cluster may have grown since its last events were read.
        rate = sum(unit.rate_per_ms(prices, row, max(c.num_workers or 0, row.tracker.workers or 0)) for c, row in members
                   if row.open_since is not None and c.state in acc.USABLE_STATES)
        limits = group_limits(limits_for, book, None if group.startswith("\0") else group,
                              [(row.cluster_id, row.group_source) for _, row in members])
        if could_cross(used, rate, limits, horizon_ms):
            near |= {row.cluster_id for _, row in members}
    return near


def _needs_acl(c: ClusterInfo, row: TrackedCluster | None, recheck: bool) -> bool:
    """A lab cluster's ACL is read when it is first seen without a group tag, and on the quarter
    hour while no rule has mapped it."""
    if row is None or row.kind != LAB or row.tag_group is None:
        return not c.claimed_group
    return recheck and not row.group_name


def _found(result) -> str | None:
    return None if isinstance(result, Failed) else result


def _creators_course_groups(ctx: JobContext, clusters: list[ClusterInfo], known: dict[str, TrackedCluster],
                            course_groups: set[str]) -> dict[str, str]:
    """creator (lower case) -> the course group they belong to, for student clusters whose group
    is not remembered yet. A course group is one a lab cluster belongs to; a creator in none
    maps to nothing (their cluster is held to the quota alone)."""
    remembered = {c.cluster_id for c in clusters if (row := known.get(c.cluster_id)) is not None
                  and row.kind == STUDENT and row.group_source == "creator" and row.group_name}
    creators = sorted({c.creator for c in clusters if c.creator and c.cluster_id not in remembered})
    if not course_groups or not creators:
        return {}
    out = {}
    for creator, groups in ctx.parallel(ctx.workspace.groups_of_user, creators):
        if isinstance(groups, Failed):
            logger.warning("creator=%s: group membership unreadable (%s); their clusters stay unmapped this run",
                           creator, groups.kind)
            continue
        course = sorted(set(groups) & course_groups)
        if course:
            out[creator.lower()] = course[0]
            if len(course) > 1:
                logger.warning("creator=%s is in several course groups (%s); clusters are counted to %s",
                               creator, ", ".join(course), course[0])
    return out
