"""The whole emulated workspace: state, clock, tokens, injected faults and a request log."""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from datetime import datetime

from .clock import SandboxClock
from .clusters import ACTIVE_STATES, ClusterBook, Delays
from .errors import ApiError
from .identity import Directory
from .objects import Libraries, WorkspaceTree
from .permissions import ClusterAcls
from .billing import Warehouses
from .policies import Policies
from .serverless import Serverless
from .catalog import UnityCatalog
from .view import WorkspaceView


@dataclass
class Fault:
    """Answer matching requests with an error, `times` times (None = until removed)."""
    method: str
    path: str  # regular expression, searched in the path without the /api/2.x prefix
    status: int
    error_code: str = "INTERNAL_ERROR"
    times: int | None = 1
    retry_after: int | None = None
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (self.method in ("*", method)) and re.search(self.path, path) is not None


@dataclass
class LoggedRequest:
    method: str
    path: str
    status: int
    body: dict | None = field(default=None, repr=False)


class Workspace(WorkspaceView):
    def __init__(self, clock: SandboxClock, *, tokens: dict[str, str] | None = None,
                 delays: Delays | None = None):
        self.clock = clock
        self.lock = threading.RLock()
        self.tokens = dict(tokens or {"sandbox-token": "admin@example.edu"})
        self.directory = Directory()
        self.clusters = ClusterBook(delays)
        self.acls = ClusterAcls(self.directory)
        self.policies = Policies(self.directory)
        self.workspace_id = 1234567890123456
        self.account_id = "00000000-0000-4000-8000-000000000001"
        self.tree = WorkspaceTree(lambda: int(self.clock.now().timestamp() * 1000))
        self.libraries = Libraries()
        self.clusters.on_running.append(self.libraries.cluster_started)
        self.warehouses = Warehouses()   # SQL warehouses and the billing statement (billing.py)
        self.serverless = Serverless(self.directory)  # serverless compute: access and its bill
        self.catalog = UnityCatalog(self.directory)   # Unity Catalog: catalogs, schemas, grants
        self.faults: list[Fault] = []
        self.requests: list[LoggedRequest] = []
        self.refused: list[tuple[datetime, str, str, str]] = []
        self.latency = 0.0  # seconds each request waits, to model a remote workspace in benchmarks
        # Azure's "Dedicated group clusters": a workspace setting an admin turns on before a cluster
        # can be dedicated to a group. On here; a test turns it off to see a refused create (the
        # real refusal's wording is not documented; modelled as INVALID_PARAMETER_VALUE).
        self.dedicated_group_clusters = True
        for user_name in set(self.tokens.values()):
            self.add_user(user_name, admin=True)

    # -- control, for tests, scenarios and the demo -----------------------------------------
    def now(self) -> datetime:
        with self.lock:
            now = self.clock.now()
            self.clusters.run_due(now)
            return now

    def advance(self, seconds: float) -> datetime:
        with self.lock:
            self.clock.advance(seconds)
            return self.now()

    def inject(self, fault: Fault) -> Fault:
        with self.lock:
            self.faults.append(fault)
            return fault

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    fault.hits += 1
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self.faults.remove(fault)
                    return fault
        return None

    def add_user(self, user_name: str, *, display_name: str | None = None, admin: bool = False,
                 given_name: str = "", family_name: str = "") -> str:
        with self.lock:
            uid = self.directory.find_user(user_name)
            if uid is None:
                uid = self.directory.create_user({
                    "userName": user_name, "displayName": display_name or user_name,
                    "name": {"givenName": given_name, "familyName": family_name}})["id"]
                self.tree.mkdirs(f"/Users/{user_name}")
            if admin:
                self.directory.members[self.directory.group_id("admins")].add(uid)
            return uid

    def add_group(self, name: str, members: list[str] = (), *, account: bool = False,
                  external_id: str | None = None, assigned: bool = True) -> str:
        """A workspace-local group, or an account group (assigned to this workspace unless told
        otherwise; with `external_id`, as synced from Entra ID)."""
        with self.lock:
            gid = self.directory.group_id(name, account=account) or self.directory.create_group(
                {"displayName": name, **({"externalId": external_id} if external_id else {})}, account=account)["id"]
            if account and assigned:
                self.directory.assign(gid, ["USER"])
            for user_name in members:
                self.directory.members[gid].add(self.add_user(user_name))
            return gid

    def add_cluster(self, name: str, *, tags: dict | None = None, cluster_id: str | None = None,
                    acl: list[dict] | None = None, spec: dict | None = None,
                    creator: str | None = None) -> str:
        """A terminated cluster, as left by provisioning (or, with `creator`, made by that user;
        with spec={"cluster_source": "JOB"}, a job cluster)."""
        with self.lock:
            full = {"cluster_name": name, "spark_version": "15.4.x-scala2.12",
                    "node_type_id": "Standard_DS3_v2", "num_workers": 1,
                    "autotermination_minutes": 60, "custom_tags": dict(tags or {}), **(spec or {})}
            if creator:
                self.add_user(creator)
            creator = creator or next(iter(self.tokens.values()))
            cluster = self.clusters.create(full, creator, self.now(), start=False, cluster_id=cluster_id)
            cluster.state = "TERMINATED"
            self.acls.grant_creator(cluster.cluster_id, creator)
            if acl:
                self.acls.patch(cluster.cluster_id, {"access_control_list": acl})
            return cluster.cluster_id

    def user_action(self, when: datetime, action: str, cluster_id: str, **kwargs) -> None:
        """Schedule what a student (or autotermination) does at `when`."""
        group = kwargs.get("as_group")

        def run(at: datetime) -> None:
            try:
                if group and action in ("start", "restart") and not self.can_restart(cluster_id, group):
                    raise ApiError(403, "PERMISSION_DENIED",
                                   f"Group {group} lacks CAN_RESTART on cluster {cluster_id}")
                if action == "start":
                    self.clusters.start(cluster_id, at, kwargs.get("user", "student"))
                elif action == "terminate":
                    self.clusters.terminate(cluster_id, at, kwargs.get("user", "student"),
                                            kwargs.get("reason", "USER_REQUEST"))
                elif action == "restart":
                    self.clusters.restart(cluster_id, at, kwargs.get("user", "student"))
                elif action == "resize":
                    self.clusters.resize(cluster_id, kwargs["num_workers"], at)
                else:
                    raise ValueError(action)
            except ApiError as err:  # a student clicking Start on a blocked cluster, say
                self.refused.append((at, action, cluster_id, err.message))

        with self.lock:
            self.clusters.at(when, run)

    def session(self, cluster_id: str, start: datetime, end: datetime | None, **kwargs) -> None:
        """A student session: started at `start`, RUNNING after the start-up delay, stopped at `end`."""
        self.user_action(start, "start", cluster_id, **kwargs)
        if end is not None:
            self.user_action(end, "terminate", cluster_id, **kwargs)

    def running_count(self) -> int:
        with self.lock:
            return sum(1 for c in self.clusters.clusters.values() if c.state in ACTIVE_STATES)

    def can_restart(self, cluster_id: str, group: str) -> bool:
        return self.acls.level_of(cluster_id, "group_name", group) in ("CAN_RESTART", "CAN_MANAGE")

    def check_token(self, header: str | None) -> str:
        if not header or not header.startswith("Bearer "):
            raise ApiError(401, "UNAUTHENTICATED", "Credential was not sent or was of an unsupported type.")
        user = self.tokens.get(header[len("Bearer "):].strip())
        if user is None:
            raise ApiError(401, "UNAUTHENTICATED", "Invalid access token.")
        return user

    def check_dedicated_to_group(self, body: dict) -> None:
        single = body.get("single_user_name")
        if single and self.directory.group_id(single) and not self.dedicated_group_clusters:
            raise ApiError(400, "INVALID_PARAMETER_VALUE",
                           f"Cannot assign cluster to group {single}: dedicated group clusters are not enabled "
                           "in this workspace")

    def authorize_create(self, user_name: str, body: dict) -> dict:
        """A cluster create is allowed for admins, for the allow-cluster-create entitlement, or
        under a policy the caller may use; the body is returned for the policy to be applied."""
        pid = body.get("policy_id")
        if pid:
            self.policies.get(pid)
            if not (self.directory.is_admin(user_name) or self.policies.can_use(pid, user_name)):
                raise ApiError(403, "PERMISSION_DENIED",
                               f"User {user_name} does not have CAN_USE permission on cluster policy {pid}")
        elif not (self.directory.is_admin(user_name) or self.directory.entitled(user_name, "allow-cluster-create")):
            raise ApiError(403, "PERMISSION_DENIED", f"User {user_name} is not authorized to create clusters: "
                                                     "it needs unrestricted cluster creation or a cluster policy")
        return body

    def assert_admin(self, user_name: str) -> None:
        """Serverless compute's permissions are changed by workspace admins (CAN_MANAGE is theirs by
        inheritance; the emulator grants it to no one else)."""
        if not self.directory.is_admin(user_name):
            raise ApiError(403, "PERMISSION_DENIED", f"User {user_name} does not have CAN_MANAGE on serverless compute")

    def assert_can_manage(self, cluster_id: str, user_name: str, need: tuple[str, ...]) -> None:
        if self.directory.is_admin(user_name):
            return
        level = self.acls.effective_level(cluster_id, user_name)
        if level not in need:
            raise ApiError(403, "PERMISSION_DENIED",
                           f"User {user_name} does not have {need[0]} permission on cluster {cluster_id}")
