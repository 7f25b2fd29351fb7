"""A cluster's usage today, who it counts to, and the limits it is held to. Pure."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Callable, Iterable

from databricks.teachinglab.core.accounting import Tracker
from databricks.teachinglab.core.errors import Failed
from databricks.teachinglab.core.model import ClusterInfo
from databricks.teachinglab.core.quota import DayFlags, Limits
from databricks.teachinglab.core.records import GrantRecord, TrackedCluster
from databricks.teachinglab.core.trust import Attribution
from databricks.teachinglab.core.units import QuotaUnit


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
    node_pieces: dict[date, int] = field(default_factory=dict)  # day -> node-ms of closed segments to book
    closed_node_ms: int = 0   # today's closed node-time after booking
    used_node_ms: int = 0     # today's node-time at `now` (1 driver + workers, for every ms used)
    startup_pieces: dict[date, tuple[int, int]] = field(default_factory=dict)  # day -> start-up (ms, node-ms)
    segments: tuple = ()      # the node segments closed this run: the ledger's sessions
    limits: Limits | None = None
    used: int = 0             # today's usage at `now` in the quota unit (core/units.py)
    unpriced: bool = False    # a node type the price table lacks: counted at its dearest rate
    flags: DayFlags = field(default_factory=DayFlags)
    previous_level: str | None = None
    group_level: str | None = None  # the group's direct level now, read for clusters blocked today
    estimated: bool = False
    error: Failed | None = None
    vanished: bool = False  # in the ledger, no longer in the workspace: counted, never enforced

    known: TrackedCluster | None = None  # the ledger's row, when seen before
    owner: str | None = None  # the student who created it, for a cluster found through its creator
    attribution: Attribution = field(default_factory=lambda: Attribution(None, None, None))
    exempt: bool = False      # a lab cluster's recorded quota=exempt, or the admin's exemption
    group_used_ms: int = 0    # the group's usage today over all its clusters (its own when no group)
    group_used: int = 0       # the same in the quota unit: what the quota is decided on
    limit_at: datetime | None = None  # at the current rate, when the group reaches its hard quota

    @property
    def kind(self) -> str | None:
        return self.attribution.kind

    @property
    def orphan(self) -> bool:
        """A student's cluster whose creator is in no course group: held to the quota alone."""
        return self.kind == "student" and self.group is None and not self.vanished

    @property
    def label(self) -> str:
        owner = f" owner={self.owner}" if self.owner else ""
        return f"cluster={self.info.cluster_id} name={self.info.name} group={self.group or '-'}{owner}"

    @property
    def used_limit(self) -> str:
        if self.limits is None:
            return f"used={self.group_used_ms / 60_000:.1f}/?min"
        unit = self.limits.unit
        if unit.name == "minutes":
            return f"used={self.group_used_ms / 60_000:.1f}/{self.limits.hard // unit.scale}min"
        return (f"used={unit.number(self.group_used)}/{unit.number(self.limits.hard)}{unit.symbol} "
                f"({self.group_used_ms / 60_000:.1f}min)")


@dataclass
class LimitsBook:
    """Limits on one day, all in the quota unit: the defaults, per-cluster overrides and the day's
    grants."""
    unit: QuotaUnit
    defaults: tuple[float, float]
    overrides: dict[str, tuple[float, float]]
    grants: dict[str, float]
    group_defaults: dict[str, tuple[float, float]] = field(default_factory=dict)  # a policy's [groups.X] daily

    def __call__(self, cluster_id: str) -> Limits:
        warn, hard = self.overrides.get(cluster_id, self.defaults)
        return Limits.of(self.unit, warn, hard, self.grants.get(cluster_id, 0))

    @classmethod
    def of(cls, unit: QuotaUnit, defaults: tuple[float, float], overrides: dict[str, tuple[float, float]],
           grants: list[GrantRecord]) -> "LimitsBook":
        """Overrides and grants made in another unit (QUOTA_UNIT changed since) are the caller's
        to leave out and report: an amount of minutes means nothing as DBUs."""
        total: dict[str, float] = {}
        for grant in grants:
            total[grant.cluster_id] = total.get(grant.cluster_id, 0) + grant.amount
        return cls(unit, defaults, overrides, total)

    def for_group(self, members: Iterable[tuple[str, str | None]], group: str | None = None) -> Limits:
        """A group's daily quota covers all its clusters, given as (cluster id, how it was mapped):
        its own clusters' quota (the largest, if it has several; a student's cluster, found through
        its creator, is not its own), plus every grant made to any of them today."""
        members = list(members)
        home = [c for c, source in members if source != "creator"]
        default = self.group_defaults.get(group, self.defaults)
        warn, hard = max((self.overrides.get(c, default) for c in home), key=lambda b: b[1], default=default)
        return Limits.of(self.unit, warn, hard, self.granted(members))

    def granted(self, members: Iterable[tuple[str, str | None]]) -> float:
        return sum(self.grants.get(c, 0) for c, _ in members)


# Runs on the quarter hour re-read what the one-minute runs between them skip: the ACLs of
# blocked clusters, and of clusters no tag maps to a group.
RECHECK_MINUTES = 15


def on_the_quarter_hour(now: datetime, tz) -> bool:
    return now.astimezone(tz).minute % RECHECK_MINUTES == 0


def _groups(usages: list["ClusterUsage"]) -> dict[str, list["ClusterUsage"]]:
    """The clusters counted to each group (exempt ones count to nothing)."""
    groups: dict[str, list[ClusterUsage]] = {}
    for u in usages:
        if u.group and not u.exempt:
            groups.setdefault(u.group, []).append(u)
    return groups


def could_cross(used: int, rate_per_ms: float, limits: Limits, horizon_ms: int) -> bool:
    """Whether a group at `used`, its running clusters adding `rate_per_ms` together (judged at
    their autoscale maximum, so the answer is safe), may pass its soft or hard quota within
    `horizon_ms`, or is past the hard one and still running: then its clusters' events are read,
    so the decision is exact."""
    soon = used + rate_per_ms * horizon_ms
    return (rate_per_ms > 0 and used >= limits.hard) or any(
        used < threshold <= soon for threshold in (limits.warn, limits.hard))


def stop_today(limit_at: datetime | None, day: date, tz) -> datetime | None:
    """The forecast stop, if it falls on the quota day: one after midnight never happens, the
    quota resets first."""
    return limit_at if limit_at is not None and limit_at.astimezone(tz).date() == day else None


def forecast_limits(usages: list["ClusterUsage"], now: datetime, rate_per_ms: Callable[["ClusterUsage"], float]) -> None:
    """When each group reaches its hard quota at the current rate: the sum of what each of its
    clusters usable now adds per ms with the nodes it runs now. None when none runs (nothing is
    coming) or for an unmapped cluster (no quota); `now` when it is there already. Rounded up to
    the second, so a forecast is never earlier than the stop."""
    for members in _groups(usages).values():
        rate = sum(rate_per_ms(m) for m in members if m.tracker.open_since is not None and not m.vanished)
        if rate <= 0:
            continue
        left = max(0, members[0].limits.hard - members[0].group_used)
        seconds = math.ceil(left / (rate * 1000))
        for m in members:
            m.limit_at = now + timedelta(seconds=seconds)


def apply_group_quota(usages: list["ClusterUsage"], book: LimitsBook,
                      policy: Callable[[str, Limits, int], Limits] | None = None,
                      extra: dict[str, int] | None = None) -> None:
    """Every cluster of a group is held to the group's total: a student who starts a personal
    cluster once the group cluster is stopped is stopped too. Exempt clusters do not count.
    `policy(group, daily limits, granted today)`: a semester policy's limits for the group.
    `extra`: group -> today's amount used elsewhere that counts too (serverless, when the policy
    says so)."""
    for group, members in _groups(usages).items():
        ids = [(m.info.cluster_id, m.group_source) for m in members]
        limits = book.for_group(ids, group)
        if policy is not None:
            limits = policy(group, limits, book.unit.of(book.granted(ids)))
        total_ms = sum(m.used_ms for m in members)
        total = sum(m.used for m in members) + (extra or {}).get(group, 0)
        for m in members:
            m.limits, m.group_used_ms, m.group_used = limits, total_ms, total
