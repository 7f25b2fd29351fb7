"""The one module that imports databricks.sdk. It turns SDK objects into the project's dataclasses
and retries what is safe to retry, so everything above it is plain Python."""
from __future__ import annotations

import base64
import json
import logging
import math
import posixpath
import threading
import time
from datetime import datetime, timezone
from typing import Callable, Iterable, TypeVar

import requests
from databricks.sdk import AccountClient, WorkspaceClient
from databricks.sdk.clock import Clock
from databricks.sdk.core import Config
from databricks.sdk import errors as sdk_errors
from databricks.sdk.service import compute, iam, sql
from databricks.sdk.service import workspace as ws_service

from databricks.teachinglab.adapters.deadline import UNBOUNDED, Deadline
from databricks.teachinglab.core.errors import DeadlineReached
from databricks.teachinglab.core.model import (AclEntry, ClusterEvent, ClusterInfo, GroupInfo, Person, PolicyInfo,
                                               StatementResult)

logger = logging.getLogger(__name__)
T = TypeVar("T")

TRANSIENT = (sdk_errors.InternalError, sdk_errors.TemporarilyUnavailable, sdk_errors.TooManyRequests,
             sdk_errors.DeadlineExceeded, sdk_errors.RequestLimitExceeded, sdk_errors.ResourceExhausted,
             requests.ConnectionError, requests.Timeout, TimeoutError)
ApiFailure = sdk_errors.DatabricksError
NotFound = (sdk_errors.NotFound, sdk_errors.ResourceDoesNotExist)
# The SDK retries 429/503 (honouring Retry-After) and connection errors by itself, for at most
# retry_timeout_seconds per call; our own loop (`_retry`) retries on top, within the run's
# deadline. Kept short: it also bounds the host-metadata probe the SDK makes while building its
# Config (databricks-sdk 0.156 Config._resolve_host_metadata), which otherwise waits minutes for
# an unreachable host and here would spend the poll's whole deadline before its first call.
SDK_RETRY_SECONDS = 2
HTTP_TIMEOUT_SECONDS = 15


def _dt(ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc) if ms else None


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


class _NoRetry(Exception):
    """Raised from the SDK's retry sleep for a call that must not be sent twice."""


_call = threading.local()


class _RunClock(Clock):
    """The clock the SDK's retry loop sleeps on. A sleep that would pass the run's deadline ends
    the call instead, and a call that must not be repeated (a create, an import) is not retried."""

    def __init__(self):
        self.gateway: WorkspaceGateway | None = None

    def time(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if not getattr(_call, "retry", True):
            raise _NoRetry()
        deadline = self.gateway.deadline if self.gateway else UNBOUNDED
        if not deadline.allows_sleep(seconds):
            raise DeadlineReached(f"throttled by the workspace; waiting {seconds:.0f} s more would pass the "
                                  f"run's {deadline.seconds:g} s deadline")
        (self.gateway._sleep if self.gateway else time.sleep)(seconds)


class _DeadlineAdapter(requests.adapters.HTTPAdapter):
    """Cuts every request's timeout to what is left of the run's deadline."""

    def __init__(self, gateway: "WorkspaceGateway"):
        super().__init__(pool_connections=20, pool_maxsize=20)
        self._gateway = gateway

    def send(self, request, stream=False, timeout=None, **kwargs):
        left = self._gateway.deadline.remaining()
        if left <= 0:
            raise DeadlineReached(f"{request.method} {request.path_url.split('?')[0]}: the run's "
                                  f"{self._gateway.deadline.seconds:g} s deadline has passed")
        if math.isfinite(left) and not isinstance(timeout, tuple):
            timeout = min(timeout or HTTP_TIMEOUT_SECONDS, max(left, 0.05))
        return super().send(request, stream=stream, timeout=timeout, **kwargs)


class WorkspaceGateway:
    def __init__(self, client: WorkspaceClient, *, attempts: int = 4, backoff: float = 0.25,
                 sleep: Callable[[float], None] = time.sleep, deadline: Deadline = UNBOUNDED):
        self.client = client
        self.attempts = attempts
        self.backoff = backoff
        self._sleep = sleep
        self.deadline = deadline
        self._last_failure: BaseException | None = None  # the run's latest transient failure
        self._people: dict[str, Person] = {}
        self._bound_to_deadline()

    @classmethod
    def connect(cls, *, host: str | None, token: str | None, profile: str | None,
                retry_timeout_seconds: int = SDK_RETRY_SECONDS, deadline: Deadline = UNBOUNDED) -> "WorkspaceGateway":
        clock = _RunClock()
        left = deadline.remaining()
        config = Config(host=host, token=token, profile=profile, clock=clock,
                        retry_timeout_seconds=max(1, min(retry_timeout_seconds, math.ceil(min(left, 3600)))),
                        http_timeout_seconds=max(1, min(HTTP_TIMEOUT_SECONDS, left)))
        gateway = cls(WorkspaceClient(config=config), deadline=deadline)
        clock.gateway = gateway
        return gateway

    def _bound_to_deadline(self) -> None:
        # The SDK (0.156) keeps one requests.Session per client; mounting an adapter on it is the
        # requests way to bound each request by what is left of the run's deadline.
        session = getattr(getattr(self.client.api_client, "_api_client", None), "_session", None)
        if session is None:
            logger.debug("databricks-sdk session not found: request timeouts are not cut to the deadline")
            return
        adapter = _DeadlineAdapter(self)
        session.mount("https://", adapter)
        session.mount("http://", adapter)

    @property
    def host(self) -> str:
        return self.client.config.host

    def _check_deadline(self, what: str) -> None:
        """Past the deadline: refuse, naming what the run was waiting on (for the advice line)."""
        try:
            self.deadline.check(what)
        except DeadlineReached as reached:
            raise reached from self._last_failure

    def _retry(self, what: str, call: Callable[[], T]) -> T:
        """An idempotent call: retried on transient errors while the deadline allows."""
        for attempt in range(1, self.attempts + 1):
            self._check_deadline(what)
            try:
                return call()
            except TRANSIENT as err:
                cause = err.__cause__ if isinstance(err, TimeoutError) and err.__cause__ else err
                self._last_failure = cause
                delay = self.backoff * 2 ** (attempt - 1)
                if attempt == self.attempts:
                    raise cause
                if not self.deadline.allows_sleep(delay):
                    raise DeadlineReached(f"{what}: {type(cause).__name__} and no time left to retry "
                                          f"within the run's {self.deadline.seconds:g} s deadline") from cause
                logger.debug("%s failed (%s); retry %d in %.2fs", what, type(cause).__name__, attempt, delay)
                self._sleep(delay)
        raise AssertionError("unreachable")

    def _once(self, what: str, call: Callable[[], T]) -> T:
        """A call that must not be sent twice (a create, an import): one attempt, no retries by
        us or the SDK; a failure is reported and the next run (idempotent) tries again."""
        self._check_deadline(what)
        _call.retry = False
        try:
            return call()
        except _NoRetry as stop:
            raise stop.__context__ from None
        finally:
            _call.retry = True

    # -- clusters ---------------------------------------------------------------------------
    def list_clusters(self, *, every_source: bool = False) -> list[ClusterInfo]:
        """Interactive clusters only (created in the UI or through the API): job clusters come and
        go with their runs and are not listed every poll. `every_source` lists them all (the audit)."""
        only = None if every_source else compute.ListClustersFilterBy(
            cluster_sources=[compute.ClusterSource.UI, compute.ClusterSource.API])
        return self._retry("list clusters", lambda: [self._cluster(c) for c in self.client.clusters.list(
            filter_by=only)])

    def get_cluster(self, cluster_id: str) -> ClusterInfo:
        return self._retry(f"get {cluster_id}", lambda: self._cluster(self.client.clusters.get(cluster_id)))

    @staticmethod
    def _cluster(c: compute.ClusterDetails) -> ClusterInfo:
        return ClusterInfo(
            cluster_id=c.cluster_id, name=c.cluster_name or c.cluster_id,
            state=c.state.value if c.state else "UNKNOWN",
            custom_tags=dict(c.custom_tags or {}),
            start_time=_dt(c.start_time), terminated_time=_dt(c.terminated_time),
            last_restarted_time=_dt(c.last_restarted_time), creator=c.creator_user_name,
            source=c.cluster_source.value if c.cluster_source else None,
            access_mode=c.data_security_mode.value if c.data_security_mode else None,
            node_type_id=c.node_type_id, driver_node_type_id=c.driver_node_type_id,
            num_workers=c.num_workers if c.autoscale is None else c.autoscale.max_workers,
            # Clusters API: "this field reflects the desired number of workers rather than the
            # actual current number"; a change means a resize the events will tell exactly.
            target_workers=c.num_workers,
        )

    def events(self, cluster_id: str, start: datetime, end: datetime,
               kinds: Iterable[str]) -> list[ClusterEvent]:
        types = [compute.EventType(k) for k in kinds]

        def fetch() -> list[ClusterEvent]:
            out = []
            for e in self.client.clusters.events(cluster_id, start_time=_ms(start), end_time=_ms(end),
                                                 order=compute.GetEventsOrder.ASC, event_types=types,
                                                 limit=500):
                if e.type is not None and e.timestamp is not None:
                    workers = e.details.current_num_workers if e.details else None
                    out.append(ClusterEvent(_dt(e.timestamp), e.type.value, workers))
            return out

        return self._retry(f"events of {cluster_id}", fetch)

    def terminate(self, cluster_id: str) -> None:
        # Terminating a TERMINATING or TERMINATED cluster is a no-op, so this is safe to repeat.
        self._retry(f"terminate {cluster_id}", lambda: self.client.clusters.delete(cluster_id))

    # -- permissions ------------------------------------------------------------------------
    def acl(self, cluster_id: str) -> list[AclEntry]:
        perms = self._retry(f"permissions of {cluster_id}",
                            lambda: self.client.clusters.get_permissions(cluster_id))
        out = []
        for entry in perms.access_control_list or []:
            kind, name = _principal(entry)
            for p in entry.all_permissions or []:
                out.append(AclEntry(kind, name, p.permission_level.value, bool(p.inherited)))
        return out

    def set_group_level(self, cluster_id: str, group: str, level: str) -> str | None:
        """Give `group` exactly `level` on the cluster and return the level it had.

        Read-modify-write of the direct entries: every other principal keeps exactly what it had.
        (A plain PUT with only the group, as the old tool did, wiped the rest; PATCH cannot be
        relied on to lower a level.)
        """
        # An admins entry is never written back: the API refuses to modify admin permissions
        # (admins inherit CAN_MANAGE), even where a workspace shows one as direct.
        direct = [e for e in self.acl(cluster_id) if not e.inherited
                  and not (e.principal_type == "group_name" and e.principal == "admins")]
        previous = _direct_level(direct, group)
        if previous == level:
            return previous
        entries = [compute.ClusterAccessControlRequest(
            **{e.principal_type: e.principal}, permission_level=compute.ClusterPermissionLevel(e.level))
            for e in direct if not (e.principal_type == "group_name" and e.principal == group)]
        entries.append(compute.ClusterAccessControlRequest(
            group_name=group, permission_level=compute.ClusterPermissionLevel(level)))
        self._retry(f"set permissions of {cluster_id}",
                    lambda: self.client.clusters.set_permissions(cluster_id, access_control_list=entries))
        return previous

    # -- policies ---------------------------------------------------------------------------
    def policies(self) -> list[PolicyInfo]:
        raw = self._retry("list cluster policies", lambda: list(self.client.cluster_policies.list()))
        return [PolicyInfo(p.policy_id, p.name or p.policy_id, p.policy_family_id) for p in raw]

    def policy_acl(self, policy_id: str) -> list[AclEntry]:
        perms = self._retry(f"permissions of policy {policy_id}",
                            lambda: self.client.cluster_policies.get_permissions(policy_id))
        return [AclEntry(*_principal(entry), p.permission_level.value, bool(p.inherited))
                for entry in perms.access_control_list or [] for p in entry.all_permissions or []]

    def group_level(self, cluster_id: str, group: str) -> str | None:
        """The level `group` holds directly on the cluster (not inherited), or None."""
        return _direct_level(self.acl(cluster_id), group)

    # -- identity ---------------------------------------------------------------------------
    def groups(self) -> list[GroupInfo]:
        raw = self._retry("list groups", lambda: list(self.client.groups.list(
            attributes="id,displayName,members,entitlements,externalId,meta")))
        return [self._group(g) for g in raw]

    def workspace_admin_ids(self) -> set[str] | None:
        """Principal ids assigned ADMIN on this workspace (identity federation's permission
        assignments), or None where the workspace has no such API (no identity federation)."""
        try:
            doc = self._retry("permission assignments", lambda: self.client.api_client.do(
                "GET", "/api/2.0/preview/permissionassignments"))
        except (*NotFound, sdk_errors.BadRequest, sdk_errors.NotImplemented):
            return None
        return {str((a.get("principal") or {}).get("principal_id")) for a in doc.get("permission_assignments") or []
                if "ADMIN" in (a.get("permissions") or [])}

    def group(self, name: str) -> GroupInfo | None:
        found = self._retry(f"group {name}", lambda: list(self.client.groups.list(
            filter=f'displayName eq {scim_string(name)}', attributes="id,displayName,members")))
        return self._group(found[0]) if found else None

    def admin_principals(self) -> set[str]:
        """Lower-case user names and service principals' application ids of every workspace admin:
        the members of `admins`, through nested groups too, and the principals holding the
        workspace ADMIN permission assignment (every member of a group that holds it)."""
        names: set[str] = set()
        pending: list[str] = []
        admins = self._retry("group admins", lambda: list(self.client.groups.list(
            filter='displayName eq "admins"', attributes="id,displayName,members")))
        seen = {g.id for g in admins}
        for g in admins:
            pending += self._member_names(g, names)
        for kind, name, principal_id in self.admin_assignments():
            if kind == "group_name":
                pending.append(principal_id)
            elif name:
                names.add(name.lower())
        while pending:
            gid = pending.pop()
            if gid in seen:
                continue
            seen.add(gid)
            try:
                group = self._retry(f"group {gid}", lambda: self.client.groups.get(gid))
            except NotFound:
                continue
            pending += self._member_names(group, names)
        return names

    def _member_names(self, group: iam.Group, names: set[str]) -> list[str]:
        """Add the group's users and service principals to `names`; return its nested groups' ids."""
        nested = []
        for ref in group.members or []:
            kind = (ref.ref or "").split("/", 1)[0]
            if kind == "Groups":
                nested.append(ref.value)
            elif kind == "ServicePrincipals":
                sp = self._retry(f"service principal {ref.value}", lambda: self.client.service_principals.get(ref.value))
                if sp.application_id:
                    names.add(sp.application_id.lower())
            else:
                person = self.person(ref.value)
                if person:
                    names.add(person.user_name.lower())
        return nested

    def admin_assignments(self) -> list[tuple[str, str | None, str]]:
        """(principal kind, name, id) of every ADMIN permission assignment; [] where the workspace
        has no such API (no identity federation)."""
        try:
            doc = self._retry("permission assignments", lambda: self.client.api_client.do(
                "GET", "/api/2.0/preview/permissionassignments"))
        except (*NotFound, sdk_errors.BadRequest, sdk_errors.NotImplemented):
            return []
        out = []
        for a in doc.get("permission_assignments") or []:
            if "ADMIN" not in (a.get("permissions") or []):
                continue
            p = a.get("principal") or {}
            kind = next((k for k in ("group_name", "user_name", "service_principal_name") if p.get(k)), "unknown")
            out.append((kind, p.get(kind), str(p.get("principal_id"))))
        return out

    def _group(self, g: iam.Group) -> GroupInfo:
        members, subgroups = [], []
        for ref in g.members or []:
            if ref.ref and ref.ref.startswith("Groups/"):
                subgroups.append(ref.value)
                continue
            if ref.ref and not ref.ref.startswith("Users/"):
                continue  # service principals get no mail
            person = self.person(ref.value)
            if person:
                members.append(person)
        return GroupInfo(g.id, g.display_name, tuple(members),
                         tuple(sorted(e.value for e in g.entitlements or [] if e.value)), tuple(subgroups),
                         g.external_id or None, bool(g.meta and g.meta.resource_type == "Group"))

    def groups_of_user(self, user_name: str) -> list[str]:
        """Display names of the groups `user_name` is a direct member of (SCIM `groups`)."""
        # userName is unique: the first match is the only one, and stopping there spares the
        # SDK's read of a second, empty page.
        user = self._retry(f"groups of {user_name}", lambda: next(iter(self.client.users.list(
            filter=f'userName eq {scim_string(user_name)}', attributes="id,userName,groups")), None))
        return sorted({g.display for g in (user.groups or []) if g.display}) if user else []

    def person(self, user_id: str) -> Person | None:
        if user_id not in self._people:
            try:
                u = self._retry(f"user {user_id}", lambda: self.client.users.get(user_id))
            except NotFound:
                return None
            email = next((e.value for e in (u.emails or []) if e.primary), None) or u.user_name
            self._people[user_id] = Person(u.user_name, email, u.display_name or u.user_name, u.id)
        return self._people[user_id]

    # -- SQL (the billing system table) -------------------------------------------------------
    def sql(self, warehouse_id: str, statement: str, parameters: dict[str, str], *, budget_seconds: float,
            poll_seconds: float = 2.0) -> StatementResult:
        """A read-only statement on a SQL warehouse (Statement Execution API), rows INLINE as
        JSON_ARRAY (strings). It waits up to 10 s per request and polls; one still running after
        `budget_seconds` (a stopped warehouse starting, a slow query) is canceled and said so. A
        statement that fails to run comes back as a 200 with FAILED (the API's documented way)."""
        api = self.client.statement_execution
        params = [sql.StatementParameterListItem(name=k, value=v) for k, v in parameters.items()]
        budget = Deadline(budget_seconds)
        response = self._retry("SQL statement", lambda: api.execute_statement(
            statement=statement, warehouse_id=warehouse_id, parameters=params, wait_timeout="10s",
            on_wait_timeout=sql.ExecuteStatementRequestOnWaitTimeout.CONTINUE,
            disposition=sql.Disposition.INLINE, format=sql.Format.JSON_ARRAY))
        statement_id = response.statement_id
        while response.status and response.status.state in (sql.StatementState.PENDING, sql.StatementState.RUNNING):
            if not budget.allows_sleep(poll_seconds):
                self._retry("cancel statement", lambda: api.cancel_execution(statement_id))
                return StatementResult("TIMEOUT", [], f"still {response.status.state.value} after "
                                                     f"{budget_seconds:g} s; canceled")
            self._sleep(poll_seconds)
            response = self._retry("SQL statement status", lambda: api.get_statement(statement_id))
        state = response.status.state.value if response.status and response.status.state else "UNKNOWN"
        if state != "SUCCEEDED":
            error = response.status.error if response.status else None
            code = error.error_code.value if error and error.error_code else state
            return StatementResult(state, [], f"{code}: {error.message if error else 'no detail'}")
        rows = list(response.result.data_array or []) if response.result else []
        chunk = response.result.next_chunk_index if response.result else None
        while chunk is not None:
            part = self._retry("SQL result chunk", lambda: api.get_statement_result_chunk_n(statement_id, chunk))
            rows += part.data_array or []
            chunk = part.next_chunk_index
        return StatementResult("SUCCEEDED", rows, None)

    def workspace_id(self) -> int:
        return self._retry("workspace id", self.client.get_workspace_id)

    def me(self) -> str:
        return self._retry("current user", lambda: self.client.current_user.me().user_name)

    # -- provisioning -----------------------------------------------------------------------
    def users(self) -> list[Person]:
        raw = self._retry("list users", lambda: list(self.client.users.list(
            attributes="id,userName,displayName,emails,entitlements")))
        out = []
        for u in raw:
            email = next((e.value for e in (u.emails or []) if e.primary), None) or u.user_name
            person = Person(u.user_name, email, u.display_name or u.user_name, u.id,
                            tuple(sorted(e.value for e in u.entitlements or [] if e.value)))
            self._people[u.id] = person
            out.append(person)
        return out

    def create_user(self, email: str, display_name: str) -> Person:
        u = self._once(f"create user {email}", lambda: self.client.users.create(
            user_name=email, display_name=display_name, emails=[iam.ComplexValue(value=email, primary=True)],
            entitlements=[iam.ComplexValue(value="workspace-access")]))
        return Person(u.user_name, email, u.display_name or email, u.id)

    def delete_user(self, user_id: str) -> None:
        self._retry(f"delete user {user_id}", lambda: self.client.users.delete(user_id))

    def create_group(self, name: str) -> GroupInfo:
        g = self._once(f"create group {name}", lambda: self.client.groups.create(display_name=name))
        return GroupInfo(g.id, g.display_name, ())

    def delete_group(self, group_id: str) -> None:
        self._retry(f"delete group {group_id}", lambda: self.client.groups.delete(group_id))

    def change_members(self, group_id: str, *, add: list[str] = (), remove: list[str] = ()) -> None:
        _patch_members(self._retry, self.client.groups, f"members of {group_id}", group_id, add, remove)

    def create_cluster(self, spec: dict) -> str:
        autoscale = spec.get("autoscale")
        details = self._once(f"create cluster {spec['cluster_name']}", lambda: self.client.clusters.create(
            cluster_name=spec["cluster_name"], spark_version=spec["spark_version"],
            node_type_id=spec["node_type_id"], driver_node_type_id=spec.get("driver_node_type_id"),
            autotermination_minutes=spec["autotermination_minutes"], custom_tags=spec["custom_tags"],
            autoscale=compute.AutoScale(min_workers=autoscale[0], max_workers=autoscale[1]) if autoscale else None,
            num_workers=None if autoscale else spec.get("num_workers", 0),
            data_security_mode=compute.DataSecurityMode(spec["data_security_mode"])
            if spec.get("data_security_mode") else None,
            single_user_name=spec.get("single_user_name")))
        return details.response.cluster_id

    def cluster_spec(self, cluster_id: str) -> dict:
        c = self._retry(f"get {cluster_id}", lambda: self.client.clusters.get(cluster_id))
        return {"cluster_name": c.cluster_name, "spark_version": c.spark_version, "node_type_id": c.node_type_id,
                "autotermination_minutes": c.autotermination_minutes, "custom_tags": dict(c.custom_tags or {}),
                "autoscale": (c.autoscale.min_workers, c.autoscale.max_workers) if c.autoscale else None,
                "data_security_mode": c.data_security_mode.value if c.data_security_mode else None,
                "single_user_name": c.single_user_name}

    def pinned_count(self) -> int:
        only = compute.ListClustersFilterBy(is_pinned=True)
        return self._retry("count pinned clusters", lambda: sum(1 for _ in self.client.clusters.list(filter_by=only)))

    def libraries_on(self, cluster_id: str) -> dict[tuple[str, str], tuple[str, str]]:
        """(kind, name) -> (status, message) of the libraries queued on a cluster."""
        out = {}
        for s in self._retry(f"libraries of {cluster_id}", lambda: list(self.client.libraries.cluster_status(cluster_id))):
            lib = s.library
            key = ("pypi", lib.pypi.package) if lib and lib.pypi else ("maven", lib.maven.coordinates) \
                if lib and lib.maven else ("other", str(lib))
            out[key] = (s.status.value if s.status else "", " ".join(s.messages or []))
        return out

    def folder_managers(self, path: str) -> set[str] | None:
        """Groups with CAN_MANAGE directly on a workspace folder; None when it does not exist."""
        try:
            status = self._retry(f"status of {path}", lambda: self.client.workspace.get_status(path))
        except NotFound:
            return None
        perms = self._retry(f"permissions of {path}", lambda: self.client.workspace.get_permissions(
            "directories", str(status.object_id)))
        return {e.group_name for e in perms.access_control_list or [] if e.group_name
                for p in e.all_permissions or [] if not p.inherited and p.permission_level
                and p.permission_level.value == "CAN_MANAGE"}

    def group_folder(self, path: str, group: str) -> None:
        """Make `path` and give `group` CAN_MANAGE on it (PATCH: other entries stay)."""
        self._retry(f"mkdirs {path}", lambda: self.client.workspace.mkdirs(path))
        status = self._retry(f"status of {path}", lambda: self.client.workspace.get_status(path))
        self._retry(f"permissions of {path}", lambda: self.client.workspace.update_permissions(
            "directories", str(status.object_id), access_control_list=[ws_service.WorkspaceObjectAccessControlRequest(
                group_name=group, permission_level=ws_service.WorkspaceObjectPermissionLevel.CAN_MANAGE)]))

    def pin(self, cluster_id: str) -> None:
        self._retry(f"pin {cluster_id}", lambda: self.client.clusters.pin(cluster_id))

    def grant(self, cluster_id: str, entries: list[tuple[str, str, str]]) -> None:
        """Add (principal_type, name, level) entries with PATCH: other entries are untouched."""
        acl = [compute.ClusterAccessControlRequest(**{kind: name},
                                                   permission_level=compute.ClusterPermissionLevel(level))
               for kind, name, level in entries]
        self._retry(f"grant on {cluster_id}", lambda: self.client.clusters.update_permissions(
            cluster_id, access_control_list=acl))

    def install_libraries(self, cluster_id: str, pypi: list[str], maven: list[str]) -> None:
        libs = [compute.Library(pypi=compute.PythonPyPiLibrary(package=p)) for p in pypi]
        libs += [compute.Library(maven=compute.MavenLibrary(coordinates=m)) for m in maven]
        if libs:
            self._retry(f"libraries of {cluster_id}", lambda: self.client.libraries.install(cluster_id, libraries=libs))

    def permanent_delete(self, cluster_id: str) -> None:
        self._retry(f"delete {cluster_id}", lambda: self.client.clusters.permanent_delete(cluster_id))

    # -- workspace files --------------------------------------------------------------------
    def list_dir(self, path: str) -> list[tuple[str, str, str | None, int | None]]:
        """(path, object_type, language, size) of the objects directly under `path`."""
        try:
            items = self._retry(f"list {path}", lambda: list(self.client.workspace.list(path)))
        except NotFound:
            return []
        return [(o.path, o.object_type.value if o.object_type else "", o.language.value if o.language else None,
                 o.size) for o in items]

    def export(self, path: str, fmt: str) -> bytes:
        res = self._retry(f"export {path}", lambda: self.client.workspace.export(
            path, format=ws_service.ExportFormat(fmt)))
        return base64.b64decode(res.content or "")

    def import_(self, path: str, content: bytes, fmt: str, language: str | None) -> None:
        self._retry(f"mkdirs {path}", lambda: self.client.workspace.mkdirs(posixpath.dirname(path)))
        if fmt != "DBC":
            self._once(f"import {path}", lambda: self._import(path, content, fmt, language, overwrite=True))
            return
        # The import API refuses overwrite for DBC ("it may contain a directory"), so the target is
        # deleted first. Its current version is kept in memory and put back if the import fails:
        # a restore must never leave the student with neither version.
        try:
            current = self.export(path, "DBC")
        except NotFound:
            current = None
        except ApiFailure as err:
            raise RuntimeError(f"{path} exists and cannot be saved before it is replaced ({err}); "
                               "nothing changed: delete it by hand, or restore in SOURCE format") from None
        if current is not None:
            self._retry(f"delete {path}", lambda: self.client.workspace.delete(path))
        try:
            self._once(f"import {path}", lambda: self._import(path, content, "DBC", None, overwrite=False))
        except Exception:
            if current is not None:
                self._once(f"put back {path}", lambda: self._import(path, current, "DBC", None, overwrite=False))
                logger.error("%s: DBC import failed; the version that was there is back in place", path)
            raise

    def _import(self, path: str, content: bytes, fmt: str, language: str | None, *, overwrite: bool) -> None:
        self.client.workspace.import_(
            path, content=base64.b64encode(content).decode(), format=ws_service.ImportFormat(fmt),
            language=ws_service.Language(language) if language else None, overwrite=overwrite)


class AccountDirectory:
    """Account groups and their assignment to a workspace (identity federation), through the
    account API. Shares the retry and create-once rules of the workspace gateway."""

    def __init__(self, client: AccountClient, gateway: WorkspaceGateway):
        self.client = client
        self._gateway = gateway  # its _retry/_once and deadline

    @classmethod
    def connect(cls, *, host: str, account_id: str, token: str | None, profile: str | None,
                gateway: WorkspaceGateway) -> "AccountDirectory":
        clock = _RunClock()
        clock.gateway = gateway
        config = Config(host=host, account_id=account_id, token=token, profile=profile, clock=clock,
                        retry_timeout_seconds=SDK_RETRY_SECONDS, http_timeout_seconds=HTTP_TIMEOUT_SECONDS)
        return cls(AccountClient(config=config), gateway)

    def group(self, name: str) -> tuple[str, str | None, set[str]] | None:
        """(id, externalId, member ids) of the account group called `name`, or None."""
        g = self._gateway._retry(f"account group {name}", lambda: next(iter(self.client.groups.list(
            filter=f'displayName eq {scim_string(name)}', attributes="id,displayName,externalId,members")), None))
        if g is None:
            return None
        return g.id, g.external_id or None, {m.value for m in g.members or [] if m.value}

    def create_group(self, name: str) -> str:
        return self._gateway._once(f"create account group {name}", lambda: self.client.groups.create(
            display_name=name)).id

    def change_members(self, group_id: str, *, add: list[str] = (), remove: list[str] = ()) -> None:
        _patch_members(self._gateway._retry, self.client.groups, f"members of account group {group_id}",
                       group_id, add, remove)

    def assigned(self, workspace_id: int) -> set[str]:
        return {str(a.principal.principal_id) for a in self._gateway._retry(
            "workspace assignments", lambda: list(self.client.workspace_assignment.list(workspace_id)))
            if a.principal and a.principal.principal_id is not None}

    def assign(self, workspace_id: int, principal_id: str) -> None:
        self._gateway._retry(f"assign {principal_id}", lambda: self.client.workspace_assignment.update(
            workspace_id, int(principal_id), permissions=[iam.WorkspacePermission.USER]))


def failure_kind(err: BaseException) -> str:
    """What kind of workspace failure `err` is, following __cause__: auth | network | deadline |
    throttled | api | other. The CLI turns it into one line of advice and an exit code."""
    seen, deadline = 0, False
    while err is not None and seen < 6:
        if isinstance(err, DeadlineReached):
            deadline = True  # what the retries were waiting on, further down, says more
        elif isinstance(err, (sdk_errors.Unauthenticated, sdk_errors.PermissionDenied)):
            return "auth"
        elif isinstance(err, (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError)):
            return "network"
        elif isinstance(err, (sdk_errors.TooManyRequests, sdk_errors.RequestLimitExceeded,
                            sdk_errors.ResourceExhausted, sdk_errors.TemporarilyUnavailable)):
            return "throttled"
        elif isinstance(err, ApiFailure):
            return "api"
        err, seen = err.__cause__ or err.__context__, seen + 1
    return "deadline" if deadline else "other"


def scim_string(value: str) -> str:
    """A SCIM filter's string literal: JSON string rules (RFC 7644 3.4.2.2), so a quote or a
    backslash in a group name cannot end the literal or escape its closing quote."""
    return json.dumps(value, ensure_ascii=False)


def _direct_level(entries: list[AclEntry], group: str) -> str | None:
    return next((e.level for e in entries if e.principal_type == "group_name" and e.principal == group
                 and not e.inherited), None)


def _patch_members(retry, groups_api, what: str, group_id: str, add, remove) -> None:
    """One SCIM PATCH adding and removing members (workspace or account GroupsAPI alike)."""
    ops = []
    if add:
        ops.append(iam.Patch(op=iam.PatchOp.ADD, path="members", value=[{"value": i} for i in add]))
    ops += [iam.Patch(op=iam.PatchOp.REMOVE, path=f'members[value eq "{i}"]') for i in remove]
    if ops:
        retry(what, lambda: groups_api.patch(
            group_id, operations=ops, schemas=[iam.PatchSchema.URN_IETF_PARAMS_SCIM_API_MESSAGES_2_0_PATCH_OP]))


def _principal(entry: compute.ClusterAccessControlResponse) -> tuple[str, str]:
    for kind in ("user_name", "group_name", "service_principal_name"):
        value = getattr(entry, kind)
        if value:
            return kind, value
    return "unknown", ""
