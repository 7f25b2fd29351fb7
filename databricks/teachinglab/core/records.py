"""What the ledger holds, as plain immutable rows. The repository (adapters/ledger) converts its
Peewee rows into these at the boundary, so services and core never touch a model class."""
from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, datetime

from databricks.teachinglab.core.accounting import Tracker
from databricks.teachinglab.core.quota import DayFlags


@dataclass(frozen=True)
class TrackedCluster:
    """A cluster the ledger knows, with its accounting tracker."""
    cluster_id: str
    name: str
    group_name: str | None = None
    group_source: str | None = None   # tag | acl | name | creator
    owner: str | None = None
    course: str | None = None
    exempt: bool = False
    state: str = "UNKNOWN"
    node_type_id: str | None = None
    num_workers: int | None = None
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    open_since: datetime | None = None
    watermark: datetime | None = None
    checked_until: datetime | None = None
    estimated: bool = False
    workers: int | None = None
    segment_since: datetime | None = None
    driver_node_type_id: str | None = None
    starting_since: datetime | None = None
    creator: str | None = None
    kind: str | None = None             # lab | student (core/trust.py); None before it was told
    tag_group: str | None = None        # a lab cluster's `group` tag as first seen ('' for none)
    tag_quota: str | None = None        # its `quota` tag as first seen
    tag_drift: bool = False
    photon: bool = False                # runtime_engine PHOTON: priced at Photon's DBU rate

    @property
    def tracker(self) -> Tracker:
        return Tracker(self.open_since, self.watermark, self.checked_until, self.workers, self.segment_since,
                       self.starting_since)


@dataclass(frozen=True)
class DayRecord:
    """A cluster's day not yet closed: usage and what was done."""
    cluster_id: str
    day: date
    closed_ms: int = 0
    sessions: int = 0
    estimated: bool = False
    used_ms: int = 0
    limit_amount: int = 0                # the hard quota applied, in `quota_unit` (core/units.py)
    quota_unit: str = "minutes"
    as_of: datetime | None = None
    warned_at: datetime | None = None
    over_quota_at: datetime | None = None
    terminated_at: datetime | None = None
    reterminations: int = 0
    blocked_group: str | None = None
    blocked_at: datetime | None = None
    previous_level: str | None = None
    notified_at: datetime | None = None
    retermination_notified_at: datetime | None = None
    restored_at: datetime | None = None
    reblock_notified_at: datetime | None = None
    first_warned_at: datetime | None = None
    first_stopped_at: datetime | None = None
    limit_at: datetime | None = None     # as of `as_of`: when the group reaches its hard quota
    closed_node_ms: int = 0
    used_node_ms: int = 0
    startup_ms: int = 0                  # VM start-up time (start to RUNNING): billed, not usable
    startup_node_ms: int = 0
    quota_cap: str = "daily"             # the cap the hard quota came from (a semester policy)
    warn_amount: int | None = None       # the soft quota the same poll applied (None: a row older than that)

    @property
    def was_warned(self) -> bool:
        """Warned today, even if a grant has since reset the flags."""
        return bool(self.warned_at or self.first_warned_at)

    @property
    def was_stopped(self) -> bool:
        """Stopped (or due to be) today, even if a grant has since reset the flags."""
        return bool(self.terminated_at or self.over_quota_at or self.first_stopped_at)

    @property
    def flags(self) -> DayFlags:
        return DayFlags(warned=self.warned_at is not None, terminated=self.terminated_at is not None,
                        blocked=self.blocked_at is not None, notified=self.notified_at is not None,
                        retermination_notified=self.retermination_notified_at is not None,
                        reblock_notified=self.reblock_notified_at is not None)


@dataclass(frozen=True)
class HistoryRecord:
    """One cluster's closed day, as the nightly close archived it."""
    cluster_id: str
    day: date
    cluster_name: str
    group_name: str | None
    used_ms: int
    limit_amount: int                    # in `quota_unit`, as in DayRecord
    quota_unit: str = "minutes"
    sessions: int = 0
    warned: bool = False
    terminated: bool = False
    blocked_group: str | None = None
    previous_level: str | None = None
    restored_at: datetime | None = None
    estimated: bool = False
    archived_at: datetime | None = None
    exempt: bool = False
    notes: str = ""
    node_ms: int = 0
    startup_ms: int = 0
    startup_node_ms: int = 0


@dataclass(frozen=True)
class GrantRecord:
    cluster_id: str
    day: date
    amount: float                        # in `unit`
    granted_by: str
    granted_at: datetime
    reason: str = ""
    unit: str = "minutes"
    until: date | None = None            # set: a top-up to the group's bank, valid `day`..`until`


@dataclass(frozen=True)
class MessageRecord:
    """An outbox row as the CLI lists it."""
    id: int
    dedupe_key: str
    kind: str
    event: str
    to_addrs: str
    subject: str
    status: str
    attempts: int
    created_at: datetime
    last_error: str = ""


@dataclass(frozen=True)
class ExemptionRecord:
    """An admin's exemption of a cluster (--set_quota exempt)."""
    cluster_id: str
    set_by: str
    set_at: datetime
    reason: str = ""


@dataclass(frozen=True)
class ClosedDayRecord:
    day: date
    archived_at: datetime
    completed_at: datetime | None = None


@dataclass(frozen=True)
class RunRecord:
    id: int
    job: str
    started_at: datetime


def record_of(cls, row):
    """A model row as the record `cls`: the same field names (a foreign key's id as `<name>_id`)."""
    return cls(**{f.name: getattr(row, f.name) for f in fields(cls)})


@dataclass(frozen=True)
class SessionRecord:
    """A usage interval with a constant node count (the usage_session table)."""
    cluster_id: str
    group_name: str | None
    start: datetime
    end: datetime
    nodes: int


@dataclass(frozen=True)
class DayUsage:
    """A cluster's usage on a past day, from the history (closed days) or the day's row (not yet
    closed): what a semester policy's weeks and semester count."""
    cluster_id: str
    group_name: str | None
    day: date
    used_ms: int
    node_ms: int
    startup_ms: int
    startup_node_ms: int
    exempt: bool = False


@dataclass(frozen=True)
class ServerlessDay:
    """A group's serverless use on one local day (None: use by no course group's member), as far
    as billing has shown it; `known_at` is when the latest part of it was read."""
    group_name: str | None
    day: date
    dbu: float
    usd: float | None
    known_at: datetime
    records: int


@dataclass(frozen=True)
class ServerlessBlockRecord:
    group_name: str
    cap: str
    used: float
    limit: float
    blocked_at: datetime
    returns_on: date | None
    lifted_at: datetime | None
