"""The project's own view of workspace objects. The gateway turns SDK objects into these, so
nothing above it depends on databricks-sdk types."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class ClusterInfo:
    cluster_id: str
    name: str
    state: str
    custom_tags: dict = field(default_factory=dict, hash=False, compare=False)
    start_time: datetime | None = None
    terminated_time: datetime | None = None
    last_restarted_time: datetime | None = None
    creator: str | None = None
    node_type_id: str | None = None
    num_workers: int | None = None          # the autoscale maximum for an autoscaling cluster
    driver_node_type_id: str | None = None  # when the driver's VM differs from the workers'
    target_workers: int | None = None       # the list's num_workers: the desired count, which a resize moves
    source: str | None = None       # cluster_source: UI, API, JOB, ...
    access_mode: str | None = None  # data_security_mode
    executors: int | None = None    # workers present now (the list's `executors`), when it says
    photon: bool = False            # runtime_engine PHOTON: billed at the node type's Photon DBU rate

    # What the cluster's tags claim. Whoever created the cluster set them, so they decide only on
    # a lab cluster (core/trust.py); on a student's cluster they are input, never truth.
    @property
    def claimed_group(self) -> str | None:
        return (self.custom_tags.get("group") or "").strip() or None

    @property
    def claimed_quota(self) -> str:
        return (self.custom_tags.get("quota") or "").strip().lower()

    @property
    def claims_exempt(self) -> bool:
        return self.claimed_quota == "exempt"


@dataclass(frozen=True)
class ClusterEvent:
    at: datetime
    kind: str
    workers: int | None = None   # details.current_num_workers, where the event carries it
    target: int | None = None    # details.target_num_workers (RESIZING: the size it is going to)


@dataclass(frozen=True)
class AclEntry:
    principal_type: str  # user_name | group_name | service_principal_name
    principal: str
    level: str
    inherited: bool = False


@dataclass(frozen=True)
class Person:
    user_name: str
    email: str
    display_name: str
    user_id: str | None = None
    entitlements: tuple[str, ...] = ()


@dataclass(frozen=True)
class GroupInfo:
    group_id: str
    name: str
    members: tuple[Person, ...]
    entitlements: tuple[str, ...] = ()
    subgroups: tuple[str, ...] = ()   # ids of groups nested in this one
    external_id: str | None = None    # set for groups synced from Entra ID
    account: bool = False             # an account group (SCIM meta.resourceType "Group")


@dataclass(frozen=True)
class PolicyInfo:
    policy_id: str
    name: str
    family: str | None = None  # e.g. personal-vm for Personal Compute


@dataclass(frozen=True)
class StatementResult:
    """A SQL statement's outcome: SUCCEEDED with rows (each value a string or None), or another
    state (FAILED, CANCELED, TIMEOUT) with why."""
    state: str
    rows: list = field(default_factory=list, hash=False, compare=False)
    error: str | None = None
