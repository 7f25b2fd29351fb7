"""Exact usage from cluster events. Pure: every function takes `now` and data, none reads a clock.

Usage is the time a cluster was usable: an interval opens at RUNNING and closes at TERMINATING;
RESTARTING and RESIZING inside it do not split it. Days are local days in the quota time zone,
so an interval is split at local midnight and a DST day has 23 or 25 hours.

Node-time is the same time times the nodes running: 1 driver plus the workers the latest event
reported. `current_num_workers` on RUNNING, UPSIZE_COMPLETED, NODES_LOST, ADD_NODES_FAILED,
AUTOSCALING_FAILED and DECOMMISSION_*; a RESIZING is "a change in the target size (upsize or
downsize)" and carries the old size as current and the new one as target: a downsize has no
completion event, so the count drops to the target when it starts (the workers it keeps), an
upsize counts only once the nodes are there (UPSIZE_COMPLETED). The cluster list's executors
correct the count of a RUNNING cluster (workers_from_list). An open interval is cut into
segments of constant node count; what cost and DBUs are computed from.

All amounts are integer milliseconds, so sums never drift; they are shown as seconds or minutes.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta, timezone
from typing import Iterable
from zoneinfo import ZoneInfo

from databricks.teachinglab.core.model import ClusterEvent, ClusterInfo

logger = logging.getLogger(__name__)

OPENS = "RUNNING"
CLOSES = "TERMINATING"
EVENT_TYPES = ("CREATING", "STARTING", "RUNNING", "RESTARTING", "RESIZING", "UPSIZE_COMPLETED", "NODES_LOST",
               "TERMINATING", "DECOMMISSION_STARTED", "DECOMMISSION_ENDED", "ADD_NODES_FAILED", "AUTOSCALING_FAILED")
# On a first look, one of these before the closing TERMINATING (with no RUNNING between) shows the
# cluster was not usable when the window began: a cluster created and stopped before its first
# poll, or a start that failed before RUNNING, costs nothing.
NOT_YET_USABLE = ("CREATING", "STARTING", "RESTARTING")
ACTIVE_STATES = ("PENDING", "RUNNING", "RESTARTING", "RESIZING")
USABLE_STATES = ("RUNNING", "RESTARTING", "RESIZING")
EVENT_RETENTION = timedelta(days=30)
# Events can surface a little after they happened; a window that starts at the last look
# reaches back this far (nothing was applied before it, so nothing can count twice).
EVENT_LAG = timedelta(minutes=10)
MS = timedelta(milliseconds=1)


@dataclass(frozen=True)
class Interval:
    start: datetime
    end: datetime

    def __post_init__(self):
        # Arithmetic between datetimes sharing one tzinfo is wall-clock arithmetic in Python,
        # which is wrong across DST; in UTC it is real elapsed time.
        object.__setattr__(self, "start", self.start.astimezone(timezone.utc))
        object.__setattr__(self, "end", self.end.astimezone(timezone.utc))

    @property
    def ms(self) -> int:
        return max(0, (self.end - self.start) // MS)


@dataclass(frozen=True)
class Segment:
    """A stretch of an interval with a constant number of nodes (1 driver + workers)."""
    start: datetime
    end: datetime
    nodes: int

    @property
    def node_ms(self) -> int:
        return Interval(self.start, self.end).ms * self.nodes


@dataclass(frozen=True)
class Tracker:
    """What the ledger remembers of one cluster between polls.

    open_since:    start of the usable interval still open, if any.
    watermark:     instant of the last event applied; later polls ask only for newer events.
    checked_until: the `now` of the last look, so a cluster idle since then is not asked again.
    workers:       the workers running in the open interval (its latest count); None when closed.
    segment_since: where the open interval's current node count began.
    starting_since: a start (CREATING, STARTING) not yet RUNNING: its VMs are billed already.
    """
    open_since: datetime | None = None
    watermark: datetime | None = None
    checked_until: datetime | None = None
    workers: int | None = None
    segment_since: datetime | None = None
    starting_since: datetime | None = None

    @property
    def nodes(self) -> int:
        return 1 + (self.workers or 0)

    @property
    def is_new(self) -> bool:
        return self.checked_until is None


@dataclass(frozen=True)
class Activity:
    """The outcome of bringing one tracker up to `now`."""
    tracker: Tracker
    closed: tuple[Interval, ...]
    estimated: bool = False
    segments: tuple[Segment, ...] = ()   # node-time closed by the same events (cut where nodes changed)
    startup: tuple[Segment, ...] = ()    # VM time from a start to RUNNING: in the cost only, never in usage


# -- local days --------------------------------------------------------------------------------
def local_day(at: datetime, tz: ZoneInfo) -> date:
    return at.astimezone(tz).date()


def day_start(day: date, tz: ZoneInfo) -> datetime:
    """The first instant of `day` in `tz`, in UTC."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(timezone.utc)


def day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    return day_start(day, tz), day_start(day + timedelta(days=1), tz)


def overlap_ms(start: datetime, end: datetime, lo: datetime, hi: datetime) -> int:
    utc = timezone.utc
    return max(0, (min(end, hi).astimezone(utc) - max(start, lo).astimezone(utc)) // MS)


def split_by_day(interval: Interval, tz: ZoneInfo) -> dict[date, int]:
    """Milliseconds of `interval` on each local day it touches."""
    out: dict[date, int] = {}
    day = local_day(interval.start, tz)
    while True:
        lo, hi = day_bounds(day, tz)
        if lo >= interval.end:
            break
        part = overlap_ms(interval.start, interval.end, lo, hi)
        if part:
            out[day] = out.get(day, 0) + part
        day += timedelta(days=1)
    return out


# -- events -> intervals -----------------------------------------------------------------------
def may_have_run(cluster: ClusterInfo, tracker: Tracker | None) -> bool:
    """Whether events must be asked for: skips clusters idle since the last look."""
    if tracker is None or tracker.is_new or tracker.open_since is not None:
        return True
    if cluster.state != "TERMINATED":
        return True
    stamps = [t for t in (cluster.terminated_time, cluster.last_restarted_time, cluster.start_time) if t]
    return bool(stamps) and max(stamps) > tracker.checked_until  # no stamps: it never ran


# A running cluster nothing has disturbed is measured from its open interval alone; its events
# are still read at least this often, whatever else happens (see quiet()).
FULL_READ_EVERY = timedelta(minutes=60)


def quiet(cluster: ClusterInfo, tracker: Tracker | None, now: datetime) -> bool:
    """A running cluster whose events need not be read this run: its interval is open, the list
    shows it usable at the worker count last read, it has not started or restarted since its
    events were last read, and they were read less than FULL_READ_EVERY ago. Its usage up to `now` is the open interval's share;
    nothing is lost by waiting, because the watermark does not move: the next read replays all
    that happened. (Whether the Clusters API moves `start_time` on every start is not documented;
    `last_restarted_time` or the periodic read catches a stop and start between two runs.)"""
    if tracker is None or tracker.is_new or tracker.open_since is None:
        return False
    if cluster.state not in USABLE_STATES:
        return False
    stamps = [t for t in (cluster.last_restarted_time, cluster.start_time) if t]
    if stamps and max(stamps) > tracker.checked_until:
        return False
    if cluster.target_workers is not None and tracker.workers is not None and cluster.target_workers != tracker.workers:
        return False  # resized (or resizing) since the last read: node-time needs the events
    return now - tracker.checked_until < FULL_READ_EVERY


def events_window_start(tracker: Tracker | None, now: datetime, tz: ZoneInfo) -> datetime:
    """Where to ask for events from: just after the last applied event; after the last look when
    none was ever applied; from today's start for a cluster never seen before."""
    if tracker is not None and tracker.watermark is not None:
        return tracker.watermark + MS
    if tracker is not None and tracker.checked_until is not None:
        return tracker.checked_until - EVENT_LAG
    return day_start(local_day(now, tz), tz)


def events_expired(tracker: Tracker | None, now: datetime) -> bool:
    """Events are kept 30 days; a tracker older than that cannot be brought up to date from them."""
    return bool(tracker and tracker.checked_until and now - tracker.checked_until >= EVENT_RETENTION)


def apply_events(tracker: Tracker | None, events: Iterable[ClusterEvent], cluster: ClusterInfo,
                 now: datetime, window_start: datetime) -> Activity:
    """Replay new events onto the tracker; returns the intervals (and node segments) they closed.

    Events at or before the watermark were applied already and are skipped, so the same window
    can be replayed any number of times without counting anything twice.
    """
    state = tracker or Tracker()
    first_look = state.is_new
    open_since, watermark = state.open_since, state.watermark
    workers, segment_since = state.workers, state.segment_since or state.open_since
    starting_since = state.starting_since
    applied_up_to = state.watermark
    closed: list[Interval] = []
    segments: list[Segment] = []
    startup: list[Segment] = []
    seen_any = False
    # Whether, on a first look, the cluster may have been usable since before the window: only
    # until the first event that shows otherwise (or the first session that closes).
    maybe_ran_before = first_look
    unknown = cluster.num_workers or 0  # the autoscale maximum: a cost is never under-counted

    def cut(at: datetime) -> None:
        if segment_since is not None and at > segment_since:
            segments.append(Segment(segment_since, at, 1 + (workers if workers is not None else unknown)))

    for event in sorted(events, key=lambda e: e.at):
        if event.at > now or (applied_up_to is not None and event.at <= applied_up_to):
            continue
        seen_any = True
        watermark = event.at
        if event.kind == OPENS and open_since is None:
            open_since = segment_since = event.at
            workers = event.workers if event.workers is not None else unknown
            if starting_since is not None:
                startup.append(Segment(starting_since, event.at, 1 + workers))
                starting_since = None
        elif event.kind in NOT_YET_USABLE and open_since is None:
            maybe_ran_before = False
            if event.kind in ("CREATING", "STARTING"):
                starting_since = event.at  # the latest start: an earlier one that never got anywhere has ended
        elif event.kind == CLOSES:
            if open_since is None and starting_since is not None:  # a start that never got to RUNNING
                startup.append(Segment(starting_since, event.at, 1 + unknown))
            starting_since = None
            if open_since is not None:
                closed.append(Interval(open_since, event.at))
                cut(event.at)
            elif maybe_ran_before:  # it was already running when our window began
                closed.append(Interval(window_start, event.at))
                segment_since = window_start
                cut(event.at)
            open_since = segment_since = workers = None
            maybe_ran_before = False
        elif event.workers is not None:  # a resize, lost nodes, a RUNNING after a restart
            if open_since is None and maybe_ran_before:
                # A first look at a cluster that was running before the window began: it is
                # usable from the window's start, at a count not known until now (the maximum).
                open_since = segment_since = window_start
                workers = unknown
            count = workers_after(event)
            if open_since is not None and count != workers:
                cut(event.at)
                segment_since, workers = event.at, count
    if first_look and open_since is None and not seen_any and cluster.state in USABLE_STATES:
        # Running, and nothing happened since the window began: it has run since before it.
        open_since = segment_since = window_start
        workers = unknown
    kept = tuple(i for i in closed if i.ms > 0)
    return Activity(Tracker(open_since, watermark, now, workers if open_since else None,
                            segment_since if open_since else None, starting_since), kept,
                    segments=tuple(g for g in segments if g.node_ms > 0),
                    startup=tuple(g for g in startup if g.node_ms > 0))


def workers_after(event: ClusterEvent) -> int:
    """The workers an event leaves: its current count, or the target of a RESIZING that shrinks."""
    if event.kind == "RESIZING" and event.target is not None and event.target < event.workers:
        return event.target
    return event.workers


def workers_from_list(activity: Activity, cluster: ClusterInfo, now: datetime) -> Activity:
    """A RUNNING cluster whose list shows another number of executors than the events left (a
    downsize whose decommission the events never closed, nodes lost unreported): the count
    follows the list from `now` on. Safe to repeat at the same `now`."""
    t = activity.tracker
    if cluster.state != "RUNNING" or cluster.executors is None or t.open_since is None or t.workers is None \
            or cluster.executors == t.workers:
        return activity
    start = t.segment_since or t.open_since
    closed = (Segment(start, now, t.nodes),) if now > start else ()
    return replace(activity, tracker=replace(t, workers=cluster.executors, segment_since=max(start, now)),
                   segments=activity.segments + closed)


def estimate_activity(tracker: Tracker | None, cluster: ClusterInfo, now: datetime) -> Activity:
    """Fallback when events cannot be had: infer from the cluster's state and timestamps.

    The watermark moves to `now`, so events that become readable later are not counted again
    on top of this estimate.
    """
    state = tracker or Tracker()
    floor = state.watermark or state.checked_until
    open_since = state.open_since
    closed: list[Interval] = []
    segments: tuple[Segment, ...] = ()
    workers = state.workers
    if cluster.state in USABLE_STATES and open_since is None:
        began = cluster.last_restarted_time or cluster.start_time or now
        open_since = max(began, floor) if floor else began
        workers = cluster.num_workers or 0  # not known without events: the maximum
    elif cluster.state not in USABLE_STATES and open_since is not None:
        end = cluster.terminated_time if cluster.terminated_time and cluster.terminated_time >= open_since else now
        closed.append(Interval(open_since, min(end, now)))
        segments = _close_segment(state, min(end, now))
        open_since = workers = None
    return Activity(Tracker(open_since, now, now, workers, _segment_start(state, open_since)),
                    tuple(i for i in closed if i.ms > 0), estimated=True, segments=segments)


def _segment_start(state: Tracker, open_since: datetime | None) -> datetime | None:
    """Where the open interval's current node count began, for a tracker carried forward."""
    if open_since is None:
        return None
    return state.segment_since if state.open_since == open_since and state.segment_since else open_since


def _close_segment(state: Tracker, end: datetime) -> tuple[Segment, ...]:
    start = state.segment_since or state.open_since
    if start is None or end <= start:
        return ()
    return (Segment(start, end, state.nodes),)


def settle_with_state(activity: Activity, cluster: ClusterInfo) -> Activity:
    """A cluster the API shows TERMINATED cannot still be running. If its closing event never
    arrived, close the interval at `terminated_time` (an estimate, marked as such) rather than
    charging the group for time the cluster was off."""
    t = activity.tracker
    if cluster.state == "TERMINATED" and t.open_since is None and t.starting_since is not None:
        return replace(activity, tracker=replace(t, starting_since=None))  # a start whose end was never told
    if cluster.state != "TERMINATED" or t.open_since is None:
        return activity
    end = cluster.terminated_time if cluster.terminated_time and cluster.terminated_time > t.open_since \
        else t.open_since
    logger.warning("cluster=%s name=%s: TERMINATED without a closing event; closed at %s (estimate)",
                   cluster.cluster_id, cluster.name, end.isoformat())
    closed = activity.closed + ((Interval(t.open_since, end),) if end > t.open_since else ())
    return Activity(replace(t, open_since=None, workers=None, segment_since=None, starting_since=None), closed,
                    estimated=True, segments=activity.segments + _close_segment(t, end), startup=activity.startup)


def close_vanished(tracker: Tracker, last_seen: datetime, now: datetime) -> Activity:
    """A cluster gone from the workspace (permanently deleted) while its interval was open: close
    it when it was last seen running, so a deleted cluster is not charged for ever."""
    end = min(max(last_seen, tracker.open_since), now)
    closed = (Interval(tracker.open_since, end),) if end > tracker.open_since else ()
    return Activity(Tracker(None, tracker.watermark, now), closed, estimated=True,
                    segments=_close_segment(tracker, end))


def clip_open_interval(tracker: Tracker, boundary: datetime) -> Tracker:
    """Move an open interval's start (and its node segment's) to `boundary` once the time before
    it has been archived."""
    if tracker.open_since is not None and tracker.open_since < boundary:
        segment = tracker.segment_since or tracker.open_since
        return replace(tracker, open_since=boundary, segment_since=max(segment, boundary))
    return tracker


# -- usage on a day ----------------------------------------------------------------------------
def node_ms_by_day(segments: Iterable[Segment], tz: ZoneInfo) -> dict[date, int]:
    """Node-milliseconds of closed segments on each local day they touch."""
    out: dict[date, int] = {}
    for g in segments:
        for day, ms in split_by_day(Interval(g.start, g.end), tz).items():
            out[day] = out.get(day, 0) + ms * g.nodes
    return out


def startup_by_day(startup: Iterable[Segment], tz: ZoneInfo) -> dict[date, tuple[int, int]]:
    """Start-up VM time on each local day: (ms, node-ms)."""
    out: dict[date, tuple[int, int]] = {}
    for g in startup:
        for day, ms in split_by_day(Interval(g.start, g.end), tz).items():
            have = out.get(day, (0, 0))
            out[day] = (have[0] + ms, have[1] + ms * g.nodes)
    return out


def used_node_ms_on(day: date, tz: ZoneInfo, closed_node_ms: int, tracker: Tracker, now: datetime) -> int:
    """Closed node-time booked to `day` plus the open segment's share of it up to `now`."""
    start = tracker.segment_since or tracker.open_since
    if tracker.open_since is None or start is None:
        return closed_node_ms
    lo, hi = day_bounds(day, tz)
    return closed_node_ms + overlap_ms(start, now, lo, hi) * tracker.nodes

def used_ms_on(day: date, tz: ZoneInfo, closed_ms: int, open_since: datetime | None,
               now: datetime) -> int:
    """Closed usage already booked to `day` plus the open interval's share of it up to `now`."""
    if open_since is None:
        return closed_ms
    lo, hi = day_bounds(day, tz)
    return closed_ms + overlap_ms(open_since, now, lo, hi)
