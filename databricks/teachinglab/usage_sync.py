"""Bring the ledger's usage up to `now` from cluster events: shared by the poll and the nightly close.

measure() reads the workspace (in parallel) and the ledger and computes everything in memory;
record() writes it in one transaction. Running both twice at the same `now` changes nothing,
because events at or before a cluster's watermark are never applied again.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import date, datetime

from . import accounting as acc
from .accounting import Activity, Tracker
from .errors import DeadlineReached
from .ledger import Cluster, ClusterDay, ClosedDay, QuotaGrant, QuotaOverride, UsageHistory
from .model import ClusterInfo
from .quota import DayFlags, Limits

logger = logging.getLogger(__name__)
NAME_CONVENTION = re.compile(r"^cluster[_-]?(\d+)$", re.IGNORECASE)


@dataclass
class ClusterUsage:
    info: ClusterInfo
    group: str | None
    group_source: str | None
    tracker: Tracker
    day: date
    pieces: dict[date, list[int]] = field(default_factory=dict)  # day -> [ms, sessions] to book
    closed_ms: int = 0        # today's closed usage after booking the pieces
    used_ms: int = 0          # today's usage at `now`
    limits: Limits | None = None
    flags: DayFlags = field(default_factory=DayFlags)
    previous_level: str | None = None
    group_level: str | None = None  # the group's direct level now, read for clusters blocked today
    estimated: bool = False
    error: Exception | None = None
    vanished: bool = False  # in the ledger, no longer in the workspace: counted, never enforced

    owner: str | None = None  # the student who created it, for a cluster found through its creator
    group_used_ms: int = 0    # the group's usage today over all its clusters (its own when no group)

    @property
    def label(self) -> str:
        owner = f" owner={self.owner}" if self.owner else ""
        return f"cluster={self.info.cluster_id} name={self.info.name} group={self.group or '-'}{owner}"

    @property
    def used_limit(self) -> str:
        limit = self.limits.max_ms // 60_000 if self.limits else "?"
        return f"used={self.group_used_ms / 60_000:.1f}/{limit}min"


def group_from_name(name: str) -> str | None:
    m = NAME_CONVENTION.match(name.strip())
    return f"group_{m.group(1)}" if m else None


def resolve_group(info: ClusterInfo, known: Cluster | None, acl_group: str | None,
                  creator_group: str | None = None) -> tuple[str | None, str | None]:
    """Tag first, then the group holding CAN_RESTART, then the cluster_NN -> group_NN convention,
    then the course group of the student who created it (a personal cluster, a policy's).

    A group found through the ACL or the creator is remembered: once blocked, the group no longer
    holds CAN_RESTART, and must still be found; a creator's groups are looked up once.
    """
    if info.group_tag:
        return info.group_tag, "tag"
    if acl_group:
        return acl_group, "acl"
    if known is not None and known.group_source in ("acl", "creator") and known.group_name:
        return known.group_name, known.group_source
    by_name = group_from_name(info.name)
    if by_name:
        return by_name, "name"
    return (creator_group, "creator") if creator_group else (None, None)


@dataclass
class LimitsBook:
    """Limits on one day: the defaults, per-cluster overrides and the day's grants."""
    defaults: tuple[int, int]
    overrides: dict[str, tuple[int, int]]
    grants: dict[str, int]

    def __call__(self, cluster_id: str) -> Limits:
        warn, hard = self.overrides.get(cluster_id, self.defaults)
        return Limits.from_minutes(warn, hard, self.grants.get(cluster_id, 0))

    def for_group(self, home: list[str], every: list[str]) -> Limits:
        """A group's quota covers all its clusters: its own cluster's quota (the largest, if it
        has several), plus every grant made to any of them today."""
        warn, hard = max((self.overrides.get(c, self.defaults) for c in home), key=lambda b: b[1],
                         default=self.defaults)
        return Limits.from_minutes(warn, hard, sum(self.grants.get(c, 0) for c in every))


def limits_book(settings, day: date) -> LimitsBook:
    overrides = {row.cluster_id: (row.warn_minutes, row.max_minutes) for row in QuotaOverride.select()}
    grants: dict[str, int] = {}
    for grant in QuotaGrant.select().where(QuotaGrant.day == day):
        grants[grant.cluster_id] = grants.get(grant.cluster_id, 0) + grant.minutes
    return LimitsBook((settings.warn_minutes, settings.max_minutes), overrides, grants)


def apply_group_quota(usages: list["ClusterUsage"], book: LimitsBook) -> None:
    """Every cluster of a group is held to the group's total: a student who starts a personal
    cluster once the group cluster is stopped is stopped too. Exempt clusters do not count."""
    groups: dict[str, list[ClusterUsage]] = {}
    for u in usages:
        if u.group and not u.info.exempt:
            groups.setdefault(u.group, []).append(u)
    for members in groups.values():
        limits = book.for_group([m.info.cluster_id for m in members if m.group_source != "creator"],
                                [m.info.cluster_id for m in members])
        total = sum(m.used_ms for m in members)
        for m in members:
            m.limits, m.group_used_ms = limits, total


def _tracker(row: Cluster | None) -> Tracker | None:
    if row is None:
        return None
    return Tracker(row.open_since, row.watermark, row.checked_until)


def _flags(row: ClusterDay | None) -> DayFlags:
    if row is None:
        return DayFlags()
    return DayFlags(warned=row.warned_at is not None, terminated=row.terminated_at is not None,
                    blocked=row.blocked_at is not None, notified=row.notified_at is not None,
                    retermination_notified=row.retermination_notified_at is not None,
                    reblock_notified=row.reblock_notified_at is not None)


def measure(lab, clusters: list[ClusterInfo], now: datetime) -> list[ClusterUsage]:
    tz = lab.settings.timezone
    today = acc.local_day(now, tz)
    known = {row.cluster_id: row for row in Cluster.select()}
    rows_today = {row.cluster_id: row for row in
                  ClusterDay.select().where(ClusterDay.day == today)}
    limits_for = limits_book(lab.settings, today)

    def activity(info: ClusterInfo) -> Activity:
        tracker = _tracker(known.get(info.cluster_id))
        if acc.events_expired(tracker, now):
            logger.warning("cluster=%s name=%s: last look is over 30 days old; usage is an estimate",
                           info.cluster_id, info.name)
            return acc.estimate_activity(tracker, info, now)
        start = acc.events_window_start(tracker, now, tz)
        try:
            events = lab.gateway.events(info.cluster_id, start, now, acc.EVENT_TYPES)
        except DeadlineReached:
            raise  # not measured this run; the next run starts from the same watermark
        except Exception as err:  # noqa: BLE001 - fall back, and say so
            logger.warning("cluster=%s name=%s: events unavailable (%s); usage is an estimate from "
                           "state and start times", info.cluster_id, info.name, type(err).__name__)
            return acc.estimate_activity(tracker, info, now)
        return acc.settle_with_state(acc.apply_events(tracker, events, info, now, start), info)

    to_fetch = [c for c in clusters if acc.may_have_run(c, _tracker(known.get(c.cluster_id)))]
    activities = dict(lab.parallel(activity, to_fetch))

    def acl_group(info: ClusterInfo) -> str | None:
        groups = [e.principal for e in lab.gateway.acl(info.cluster_id)
                  if e.principal_type == "group_name" and e.level == "CAN_RESTART" and not e.inherited]
        return sorted(groups)[0] if groups else None

    untagged = [c for c in clusters if not c.group_tag and not (
        known.get(c.cluster_id) and known[c.cluster_id].group_source in ("acl", "creator"))]
    acl_groups = dict(lab.parallel(acl_group, untagged))
    creator_groups = _creators_course_groups(lab, clusters, known, acl_groups)

    out = []
    listed = {c.cluster_id for c in clusters}
    for row in known.values():
        if row.cluster_id not in listed and row.open_since is not None:
            logger.warning("cluster=%s name=%s: no longer in the workspace while running; its session is "
                           "closed at %s, when it was last seen", row.cluster_id, row.name, row.last_seen.isoformat())
            info = ClusterInfo(row.cluster_id, row.name, "DELETED",
                               custom_tags={"group": row.group_name} if row.group_name else {})
            activities[info] = acc.close_vanished(_tracker(row), row.last_seen, now)
            clusters = [*clusters, info]
    for info in clusters:
        row = known.get(info.cluster_id)
        found = acl_groups.get(info)
        group, source = resolve_group(info, row, None if isinstance(found, Exception) else found,
                                      creator_groups.get(info.creator or ""))
        result = activities.get(info)
        tracker = _tracker(row) or Tracker()
        usage = ClusterUsage(info, group, source, tracker, today, flags=_flags(rows_today.get(info.cluster_id)),
                             vanished=info.cluster_id not in listed)
        if source == "creator":
            usage.owner = info.creator or (row.owner if row else None)
        if isinstance(result, Exception):
            usage.error = result
        elif result is not None:
            usage.tracker = result.tracker
            usage.estimated = result.estimated
            for interval in result.closed:
                for day, ms in acc.split_by_day(interval, tz).items():
                    piece = usage.pieces.setdefault(day, [0, 0])
                    piece[0] += ms
                    piece[1] += 1
        day_row = rows_today.get(info.cluster_id)
        usage.previous_level = day_row.previous_level if day_row else None
        usage.closed_ms = (day_row.closed_ms if day_row else 0) + usage.pieces.get(today, [0])[0]
        usage.used_ms = acc.used_ms_on(today, tz, usage.closed_ms, usage.tracker.open_since, now)
        usage.limits = limits_for(info.cluster_id)
        usage.group_used_ms = usage.used_ms
        out.append(usage)
    apply_group_quota(out, limits_for)
    return out


def _creators_course_groups(lab, clusters: list[ClusterInfo], known: dict[str, Cluster],
                            acl_groups: dict) -> dict[str, str]:
    """creator -> the course group they belong to, for clusters no other rule maps. A course group
    is one that has a cluster of its own; a creator in none (an admin, a TA) maps to nothing."""
    own = {row.group_name for row in known.values() if row.group_name and row.group_source in ("tag", "acl", "name")}
    own |= {c.group_tag for c in clusters if c.group_tag}
    own |= {g for g in acl_groups.values() if isinstance(g, str)}
    own |= {group_from_name(c.name) for c in clusters if group_from_name(c.name)}
    unmapped = {c.creator for c in clusters if c.creator and not c.exempt and not c.group_tag
                and not group_from_name(c.name) and not isinstance(acl_groups.get(c), str)
                and not (known.get(c.cluster_id) and known[c.cluster_id].group_source in ("acl", "creator"))}
    if not own or not unmapped:
        return {}
    out = {}
    for creator, groups in lab.parallel(lab.gateway.groups_of_user, sorted(unmapped)):
        if isinstance(groups, Exception):
            logger.warning("creator=%s: group membership unreadable (%s); their clusters stay unmapped this run",
                           creator, type(groups).__name__)
            continue
        course = sorted(set(groups) & own)
        if course:
            out[creator] = course[0]
            if len(course) > 1:
                logger.warning("creator=%s is in several course groups (%s); clusters are counted to %s",
                               creator, ", ".join(course), course[0])
    return out


def record(usages: list[ClusterUsage], now: datetime) -> None:
    """Write trackers and booked usage; the caller holds the transaction."""
    closed_days = {row.day for row in ClosedDay.select(ClosedDay.day)}
    for u in usages:
        info = u.info
        Cluster.insert(
            cluster_id=info.cluster_id, name=info.name, group_name=u.group, group_source=u.group_source, owner=u.owner,
            course=info.custom_tags.get("course"), exempt=info.exempt, state=info.state,
            node_type_id=info.node_type_id, num_workers=info.num_workers, first_seen=now, last_seen=now,
            open_since=u.tracker.open_since, watermark=u.tracker.watermark,
            checked_until=u.tracker.checked_until, estimated=u.estimated,
        ).on_conflict(
            conflict_target=[Cluster.cluster_id],
            preserve=[Cluster.name, Cluster.group_name, Cluster.group_source, Cluster.owner, Cluster.course,
                      Cluster.exempt, Cluster.state, Cluster.node_type_id, Cluster.num_workers,
                      Cluster.last_seen, Cluster.open_since, Cluster.watermark, Cluster.checked_until,
                      Cluster.estimated],
        ).execute()
        for day, (ms, sessions) in sorted(u.pieces.items()):
            if day in closed_days:
                # Usage that surfaced after its day was archived: correct the archive.
                logger.warning("%s: %d s of late usage booked to closed day %s", u.label, ms // 1000, day)
                UsageHistory.update(used_ms=UsageHistory.used_ms + ms,
                                    sessions=UsageHistory.sessions + sessions).where(
                    (UsageHistory.cluster == info.cluster_id) & (UsageHistory.day == day)).execute()
                continue
            ClusterDay.insert(cluster=info.cluster_id, day=day, closed_ms=ms, sessions=sessions,
                              estimated=u.estimated).on_conflict(
                conflict_target=[ClusterDay.cluster, ClusterDay.day],
                update={ClusterDay.closed_ms: ClusterDay.closed_ms + ms,
                        ClusterDay.sessions: ClusterDay.sessions + sessions},
            ).execute()
        ClusterDay.insert(cluster=info.cluster_id, day=u.day, used_ms=u.used_ms,
                          limit_ms=u.limits.max_ms, as_of=now, estimated=u.estimated).on_conflict(
            conflict_target=[ClusterDay.cluster, ClusterDay.day],
            update={ClusterDay.used_ms: u.used_ms, ClusterDay.limit_ms: u.limits.max_ms,
                    ClusterDay.as_of: now},
        ).execute()
        if u.estimated:
            ClusterDay.update(estimated=True).where(
                (ClusterDay.cluster == info.cluster_id) & (ClusterDay.day == u.day)).execute()
