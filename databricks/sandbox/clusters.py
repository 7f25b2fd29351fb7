"""Clusters, their state machine and their event log, as the Databricks Clusters API shows them.

States follow PENDING -> RUNNING -> (RESTARTING | RESIZING) -> RUNNING -> TERMINATING -> TERMINATED.
Transitions that take time in a real workspace (start-up, restart, resize, shut-down) are
scheduled on the sandbox clock and happen when the clock passes them, with the event stamped
at the scheduled instant, not at the moment somebody looked.
"""
from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable

from .clock import from_ms, to_ms
from .errors import ApiError

ACTIVE_STATES = {"PENDING", "RUNNING", "RESTARTING", "RESIZING"}


@dataclass
class Delays:
    startup: float = 60.0
    restart: float = 60.0
    resize: float = 30.0
    shutdown: float = 30.0


@dataclass
class Cluster:
    cluster_id: str
    spec: dict
    creator: str
    state: str = "TERMINATED"
    state_message: str = ""
    start_time: int | None = None
    terminated_time: int | None = None
    last_restarted_time: int | None = None
    pinned: bool = False
    deleted: bool = False
    events: list[dict] = field(default_factory=list)
    termination_reason: dict | None = None
    generation: int = 0  # bumps on every state change, so stale scheduled steps are skipped
    workers: int = 0     # workers present now (a resize moves it when the nodes arrive or leave)
    # The truth billing follows: (instant, nodes present), None once the cluster stops. Kept apart
    # from the events, which (like the real ones) do not say when a downsize's nodes left.
    node_log: list[tuple[datetime, int | None]] = field(default_factory=list)

    @property
    def source(self) -> str:
        """UI, API, JOB, ...: who created it. Job clusters are JOB; the API sets it, never the caller."""
        return self.spec.get("cluster_source") or "UI"

    def as_json(self) -> dict:
        out = dict(self.spec)
        out.update(
            cluster_id=self.cluster_id,
            state=self.state,
            state_message=self.state_message,
            creator_user_name=self.creator,
            cluster_source=self.source,
            # Clusters API: the access mode as created; NONE (no isolation, legacy) when not given.
            data_security_mode=self.spec.get("data_security_mode") or "NONE",
            default_tags={"Vendor": "Databricks", "Creator": self.creator,
                          "ClusterName": self.spec.get("cluster_name", ""),
                          "ClusterId": self.cluster_id},
            # Photon docs: "Photon is not enabled by default on compute created with the Clusters
            # API"; a cluster made in the UI gets it (a scenario says so with runtime_engine).
            runtime_engine=self.spec.get("runtime_engine") or "STANDARD",
        )
        if self.state == "RUNNING":  # ClusterDetails.executors: "Nodes on which the Spark executors reside"
            out["executors"] = [{"node_id": f"{self.cluster_id}-w{i}", "private_ip": f"10.0.0.{i + 10}"}
                                for i in range(self.workers)]
        for key in ("start_time", "terminated_time", "last_restarted_time"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.termination_reason and self.state == "TERMINATED":
            out["termination_reason"] = self.termination_reason
        return out


class ClusterBook:
    """All clusters plus the schedule of their pending transitions."""

    def __init__(self, delays: Delays | None = None):
        self.delays = delays or Delays()
        self.clusters: dict[str, Cluster] = {}
        self._schedule: list[tuple[int, int, Callable[[datetime], None]]] = []
        self._seq = itertools.count()
        self._ids = itertools.count(1)
        self.on_running: list[Callable[[str], None]] = []
        self.max_pinned = 100

    # -- schedule ---------------------------------------------------------------------------
    def at(self, when: datetime, action: Callable[[datetime], None]) -> None:
        heapq.heappush(self._schedule, (to_ms(when), next(self._seq), action))

    def run_due(self, now: datetime) -> None:
        while self._schedule and self._schedule[0][0] <= to_ms(now):
            at_ms, _, action = heapq.heappop(self._schedule)
            action(from_ms(at_ms))

    def pending_count(self) -> int:
        return len(self._schedule)

    # -- helpers ----------------------------------------------------------------------------
    def get(self, cluster_id: str, *, include_deleted: bool = False) -> Cluster:
        cluster = self.clusters.get(cluster_id or "")
        if cluster is None or (cluster.deleted and not include_deleted):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Cluster {cluster_id} does not exist")
        return cluster

    def _event(self, cluster: Cluster, when: datetime, kind: str, details: dict | None = None) -> None:
        cluster.events.append({
            "cluster_id": cluster.cluster_id,
            "timestamp": to_ms(when),
            "type": kind,
            "details": details or {},
        })
        cluster.events.sort(key=lambda e: e["timestamp"])

    def _set_state(self, cluster: Cluster, state: str, message: str = "") -> int:
        cluster.state = state
        cluster.state_message = message
        cluster.generation += 1
        return cluster.generation

    def _later(self, cluster: Cluster, when: datetime, seconds: float,
               step: Callable[[Cluster, datetime], None]) -> None:
        generation = cluster.generation

        def run(at: datetime) -> None:
            if cluster.generation == generation:
                step(cluster, at)

        self.at(when + timedelta(seconds=seconds), run)

    # -- API operations; every one takes the instant it happens at --------------------------
    def create(self, spec: dict, creator: str, when: datetime, *, start: bool = True,
               cluster_id: str | None = None) -> Cluster:
        if not spec.get("cluster_name"):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", "cluster_name is required")
        if not spec.get("spark_version"):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", "spark_version is required")
        cid = cluster_id or f"{when:%m%d}-{next(self._ids):06d}-sbx{len(self.clusters):04d}"
        cluster = Cluster(cluster_id=cid, spec=_clean_spec(spec), creator=creator)
        self.clusters[cid] = cluster
        self._event(cluster, when, "CREATING", {"user": creator})
        if start:
            self._begin_start(cluster, when, creator)
        return cluster

    def edit(self, cluster_id: str, spec: dict, when: datetime) -> None:
        cluster = self.get(cluster_id)
        if cluster.state not in ("RUNNING", "TERMINATED"):
            raise ApiError(400, "INVALID_STATE",
                           f"Cluster {cluster_id} is in unexpected state {cluster.state}.")
        cluster.spec = _clean_spec({**spec})
        self._event(cluster, when, "EDITED", {})
        if cluster.state == "RUNNING":
            self.restart(cluster_id, when, "edit")

    def start(self, cluster_id: str, when: datetime, user: str) -> None:
        cluster = self.get(cluster_id)
        if cluster.state != "TERMINATED":
            raise ApiError(400, "INVALID_STATE",
                           f"Cluster {cluster_id} is in unexpected state {cluster.state}.")
        self._begin_start(cluster, when, user)

    def _begin_start(self, cluster: Cluster, when: datetime, user: str) -> None:
        self._set_state(cluster, "PENDING", "Starting Spark")
        cluster.start_time = to_ms(when)
        cluster.terminated_time = None
        self._event(cluster, when, "STARTING", {"user": user})
        self._later(cluster, when, self.delays.startup, self._become_running)

    def _become_running(self, cluster: Cluster, when: datetime) -> None:
        self._set_state(cluster, "RUNNING")
        # Clusters API events: RUNNING carries current_num_workers; an autoscaling cluster starts at
        # its minimum (docs: "Autoscaling ... starts with the minimum number of workers").
        autoscale = cluster.spec.get("autoscale") or {}
        workers = cluster.spec.get("num_workers", autoscale.get("min_workers", 0))
        cluster.workers = workers
        cluster.node_log.append((when, 1 + workers))
        self._event(cluster, when, "RUNNING", {"current_num_workers": workers})
        for hook in self.on_running:
            hook(cluster.cluster_id)

    def restart(self, cluster_id: str, when: datetime, user: str) -> None:
        cluster = self.get(cluster_id)
        if cluster.state != "RUNNING":
            raise ApiError(400, "INVALID_STATE",
                           f"Cluster {cluster_id} is in unexpected state {cluster.state}.")
        self._set_state(cluster, "RESTARTING", "Restarting Spark")
        cluster.last_restarted_time = to_ms(when)
        self._event(cluster, when, "RESTARTING", {"user": user})
        self._later(cluster, when, self.delays.restart, self._become_running)

    def resize(self, cluster_id: str, num_workers: int, when: datetime) -> None:
        """As the Clusters API reports a resize (or an autoscaling step): RESIZING, "a change in the
        target size (upsize or downsize)", with the old size as current_num_workers and the new one
        as target_num_workers (EventDetails); UPSIZE_COMPLETED only for growth, once the nodes are
        there; a downsize has no completion event, only DECOMMISSION_STARTED and _ENDED (EventType),
        and its nodes leave when the decommission ends. The list's num_workers is the target at
        once ("reflects the desired number of workers rather than the actual current number")."""
        cluster = self.get(cluster_id)
        if cluster.state != "RUNNING":
            raise ApiError(400, "INVALID_STATE",
                           f"Cluster {cluster_id} is in unexpected state {cluster.state}.")
        old = cluster.workers
        self._set_state(cluster, "RESIZING", "Resizing")
        self._event(cluster, when, "RESIZING", {"current_num_workers": old, "target_num_workers": num_workers,
                                                "cause": "RESIZE_REQUESTED"})
        cluster.spec["num_workers"] = num_workers
        if num_workers < old:
            self._event(cluster, when, "DECOMMISSION_STARTED", {})

        def done(c: Cluster, at: datetime) -> None:
            self._set_state(c, "RUNNING")
            c.workers = num_workers
            c.node_log.append((at, 1 + num_workers))
            if num_workers > old:
                self._event(c, at, "UPSIZE_COMPLETED", {"current_num_workers": num_workers,
                                                        "target_num_workers": num_workers})
            elif num_workers < old:
                self._event(c, at, "DECOMMISSION_ENDED", {})

        self._later(cluster, when, self.delays.resize, done)

    def terminate(self, cluster_id: str, when: datetime, user: str, reason: str = "USER_REQUEST") -> None:
        cluster = self.get(cluster_id)
        if cluster.state in ("TERMINATING", "TERMINATED"):
            return  # the real API treats this as a no-op
        self._set_state(cluster, "TERMINATING", "Terminating")
        if cluster.node_log and cluster.node_log[-1][1] is not None:
            cluster.node_log.append((when, None))  # billed until it stops being usable, as measured
        cluster.termination_reason = {"code": reason, "type": "SUCCESS",
                                      "parameters": {"username": user}}
        self._event(cluster, when, "TERMINATING", {"user": user, "reason": cluster.termination_reason})

        def done(c: Cluster, at: datetime) -> None:
            self._set_state(c, "TERMINATED", "Terminated")
            c.terminated_time = to_ms(at)  # the real API logs no event for this step

        self._later(cluster, when, self.delays.shutdown, done)

    def permanent_delete(self, cluster_id: str, when: datetime, user: str) -> None:
        cluster = self.get(cluster_id)
        self.terminate(cluster_id, when, user)
        cluster.deleted = True

    def events(self, body: dict) -> dict:
        cluster = self.get(body.get("cluster_id", ""), include_deleted=True)
        start = body.get("start_time")
        end = body.get("end_time")
        types = set(body.get("event_types") or [])
        order = (body.get("order") or "DESC").upper()
        if order not in ("ASC", "DESC"):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"order must be ASC or DESC, not {order}")
        offset = int(body.get("offset") or 0)
        limit = int(body.get("limit") or 50)
        if not 1 <= limit <= 500:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", "limit must be between 1 and 500")
        chosen = [e for e in cluster.events
                  if (start is None or e["timestamp"] >= int(start))
                  and (end is None or e["timestamp"] <= int(end))
                  and (not types or e["type"] in types)]
        if order == "DESC":
            chosen = list(reversed(chosen))
        page = chosen[offset:offset + limit]
        out: dict = {"events": page, "total_count": len(chosen)}
        if offset + limit < len(chosen):
            out["next_page"] = {**body, "offset": offset + limit, "limit": limit}
        return out


def _clean_spec(spec: dict) -> dict:
    keep = dict(spec)
    for key in ("cluster_id", "state", "state_message", "start_time", "terminated_time",
                "last_restarted_time", "creator_user_name", "default_tags"):
        keep.pop(key, None)
    keep.setdefault("autotermination_minutes", 120)
    keep.setdefault("custom_tags", {})
    return keep
