"""The emulator's query and scenario API: what tests and the demo read and do, in workspace terms.

Tests use these instead of the stores behind them (ClusterBook, Directory, ClusterAcls,
WorkspaceTree), so the stores can change without breaking a product test. Queries return
copies; scenario steps are what a person does in the UI or another tool does through the API.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class ClusterView:
    """A cluster as the tests look at it: a snapshot, not the emulator's record."""
    cluster_id: str
    name: str
    state: str
    creator: str
    pinned: bool
    deleted: bool
    tags: dict
    spec: dict


class WorkspaceView:
    """Mixed into sandbox.Workspace; each method takes the workspace lock."""

    # -- clusters ---------------------------------------------------------------------------
    def cluster(self, cluster_id: str) -> ClusterView:
        with self.lock:
            c = self.clusters.get(cluster_id, include_deleted=True)
            return ClusterView(c.cluster_id, c.spec.get("cluster_name", ""), c.state, c.creator, c.pinned, c.deleted,
                               dict(c.spec.get("custom_tags") or {}), copy.deepcopy(c.spec))

    def cluster_views(self, *, include_deleted: bool = False) -> list[ClusterView]:
        with self.lock:
            ids = [cid for cid, c in self.clusters.clusters.items() if include_deleted or not c.deleted]
        return [self.cluster(cid) for cid in ids]

    def cluster_named(self, name: str) -> ClusterView:
        found = [c for c in self.cluster_views() if c.name == name]
        if len(found) != 1:
            raise LookupError(f"{len(found)} clusters named {name!r}")
        return found[0]

    def edit_cluster(self, cluster_id: str, **changes) -> None:
        """Somebody edits the cluster (UI, another tool): spec fields change, nothing else."""
        with self.lock:
            self.clusters.get(cluster_id).spec.update(changes)

    def pin(self, cluster_id: str) -> None:
        with self.lock:
            self.clusters.get(cluster_id).pinned = True

    def delete_cluster_outside(self, cluster_id: str) -> None:
        """Somebody deletes the cluster for good between two polls."""
        with self.lock:
            self.clusters.get(cluster_id).deleted = True

    def start_cluster(self, cluster_id: str, user: str) -> None:
        with self.lock:
            self.clusters.start(cluster_id, self.now(), user)

    def set_startup_seconds(self, seconds: float) -> None:
        """How long a start takes to reach RUNNING (a real cluster needs minutes)."""
        self.clusters.delays.startup = seconds

    def library_statuses(self, cluster_id: str) -> list[dict]:
        with self.lock:
            return copy.deepcopy(self.libraries.status(cluster_id)["library_statuses"])

    # -- cluster permissions ----------------------------------------------------------------
    def direct_acl(self, cluster_id: str) -> dict[tuple[str, str], str]:
        """(principal kind, name) -> level, for entries set on the cluster itself."""
        with self.lock:
            return dict(self.acls.direct.get(cluster_id, {}))

    def group_level(self, cluster_id: str, group: str) -> str | None:
        return self.direct_acl(cluster_id).get(("group_name", group))

    def set_level(self, cluster_id: str, level: str, *, group: str | None = None, user: str | None = None) -> None:
        """A person in the UI (or a Terraform apply) gives a principal a level on the cluster."""
        key, name = ("group_name", group) if group else ("user_name", user)
        with self.lock:
            self.acls.patch(cluster_id, {"access_control_list": [{key: name, "permission_level": level}]})

    # -- identity ---------------------------------------------------------------------------
    def user_names(self) -> set[str]:
        with self.lock:
            return {u["userName"] for u in self.directory.users.values()}

    def has_user(self, user_name: str) -> bool:
        with self.lock:
            return self.directory.find_user(user_name) is not None

    def user_id(self, user_name: str) -> str | None:
        with self.lock:
            return self.directory.find_user(user_name)

    def group_names(self) -> set[str]:
        with self.lock:
            return {g["displayName"] for g in self.directory.groups.values()}

    def group_id(self, name: str, *, account: bool | None = None) -> str | None:
        with self.lock:
            return self.directory.group_id(name, account=account)

    def group_members(self, name: str) -> set[str]:
        """Direct members' user names (and nested groups' names)."""
        with self.lock:
            d = self.directory
            out = set()
            for pid in d.members.get(d.group_id(name) or "", set()):
                out.add(d.users[pid]["userName"] if pid in d.users else d.groups[pid]["displayName"])
            return out

    def add_member(self, group: str, *, user: str | None = None, group_member: str | None = None) -> None:
        """Somebody adds a user (or a nested group) to a group outside the roster."""
        with self.lock:
            d = self.directory
            member = d.find_user(user) if user else d.group_id(group_member)
            d.members[d.group_id(group)].add(member)

    def token_for(self, principal: str) -> str:
        """A personal access token of this user (or service principal), made as the user makes one."""
        import hashlib
        token = "dapi" + hashlib.sha256(principal.encode()).hexdigest()[:28]
        with self.lock:
            self.tokens[token] = principal
        return token

    def add_service_principal(self, application_id: str, *, display_name: str | None = None,
                              admin: bool = False) -> str:
        """A service principal (e.g. the one Terraform or the tool runs as); `admin` puts it in admins."""
        with self.lock:
            d = self.directory
            sid = d.find_principal(application_id) or d.create_service_principal(
                {"applicationId": application_id, "displayName": display_name or application_id})["id"]
            if admin:
                d.members[d.group_id("admins")].add(sid)
            return sid

    def grant_workspace_admin(self, user_name: str) -> None:
        """An ADMIN permission assignment (the account console's "workspace admin" toggle)."""
        with self.lock:
            self.directory.assign(self.directory.find_user(user_name), ["ADMIN"])

    # -- workspace objects ------------------------------------------------------------------
    def object_status(self, path: str) -> dict | None:
        """The object at `path` (get-status), or None."""
        from .errors import ApiError
        with self.lock:
            try:
                return copy.deepcopy(self.tree.get_status(path))
            except ApiError:
                return None

    def object_acl(self, path: str, kind: str = "directories") -> list[dict]:
        with self.lock:
            status = self.tree.get_status(path)
            return copy.deepcopy(self.tree.permissions(status["object_id"], kind)["access_control_list"])

    def write_notebook(self, path: str, source: bytes, *, language: str = "PYTHON", overwrite: bool = False) -> None:
        """A student saves a notebook (the folders are made as the UI makes them)."""
        import base64
        with self.lock:
            self.tree.mkdirs(path.rsplit("/", 1)[0])
            self.tree.import_({"path": path, "format": "SOURCE", "language": language, "overwrite": overwrite,
                               "content": base64.b64encode(source).decode()})

    def notebook_source(self, path: str) -> bytes:
        import base64
        with self.lock:
            return base64.b64decode(self.tree.export(path, "SOURCE")["content"])

    def add_object(self, path: str, object_type: str, *, size: int = 0, content: bytes = b"") -> None:
        """A repo, a dashboard, a large file: what a backup must skip or keep."""
        with self.lock:
            self.tree.add_object(path, object_type, size=size, content=content)

    def delete_object(self, path: str, *, recursive: bool = False) -> None:
        """A student deletes something by mistake."""
        with self.lock:
            self.tree.delete(path, recursive)

    # -- faults -----------------------------------------------------------------------------
    def remove_fault(self, fault) -> None:
        with self.lock:
            self.faults.remove(fault)

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    # -- what the event log may lose ----------------------------------------------------------
    def stop_without_event(self, cluster_id: str, when) -> None:
        """The cluster is TERMINATED, but no event says so (an event log with a gap)."""
        with self.lock:
            c = self.clusters.get(cluster_id)
            c.state, c.terminated_time = "TERMINATED", int(when.timestamp() * 1000)

    def group_assignment(self, name: str) -> list[str]:
        """The workspace permission assignment of an account group (USER, ADMIN), [] if none."""
        with self.lock:
            gid = self.directory.group_id(name, account=True)
            return list(self.directory.assigned.get(gid, [])) if gid and self.directory.visible(gid) else []

    def groups_named(self, name: str) -> int:
        """How many groups (workspace-local and account) carry this name."""
        with self.lock:
            return sum(g["displayName"] == name for g in self.directory.groups.values())

    def policy_id(self, name: str = "Personal Compute") -> str:
        """The id of a cluster policy by name (every workspace has Personal Compute)."""
        with self.lock:
            return next(pid for pid, p in self.policies.policies.items() if p["name"] == name)

    # -- serverless compute (serverless.py) ---------------------------------------------------
    def serverless_ids(self) -> dict[str, str]:
        """{"interactive": id, "automated": id}: what the admin copies from the workspace settings."""
        with self.lock:
            return dict(self.serverless.ids)

    def serverless_acl(self, kind: str = "interactive") -> dict[tuple[str, str], str]:
        """The direct entries of a serverless compute object: (principal_type, name) -> level."""
        with self.lock:
            return dict(self.serverless.acls[self.serverless.ids[kind]])

    def grant_serverless(self, kind: str, level: str = "CAN_USE", *, group: str | None = None,
                         user: str | None = None) -> None:
        """Someone grants access in the UI (Settings > Compute > Serverless compute > Permissions)."""
        key, name = ("group_name", group) if group else ("user_name", user)
        with self.lock:
            self.serverless.acls[self.serverless.ids[kind]][(key, name)] = level

    def use_serverless(self, user_name: str, start, end, dbu_per_hour: float, *, kind: str = "interactive",
                       notebook_id: str | None = None) -> list[str] | None:
        """A student runs a serverless notebook (or job) from `start` to `end`: its record ids, or
        None when the workspace refused it (no CAN_USE)."""
        from .errors import ApiError
        with self.lock:
            try:
                return self.serverless.use(user_name, start, end, dbu_per_hour, kind=kind, notebook_id=notebook_id)
            except ApiError as err:
                self.refused.append((self.clock.now(), "serverless", user_name, err.message))
                return None

    def restate_serverless(self, record_id: str, dbu: float) -> tuple[str, str]:
        """Billing corrects a record: a retraction and a restatement, visible after the lag."""
        with self.lock:
            return self.serverless.restate(record_id, dbu, self.clock.now())

    def set_serverless_lag(self, hours: float) -> None:
        with self.lock:
            self.serverless.lag = timedelta(hours=hours)

    def serverless_billed(self, user_names: set[str] | None = None) -> float:
        """The DBUs the bill holds in the end for these users (all records, visible or not yet)."""
        with self.lock:
            return self.serverless.billed(self.clock.now(), user_names=user_names)

    # -- Unity Catalog (catalog.py) -----------------------------------------------------------
    def uc_schemas(self, catalog: str) -> dict[str, dict]:
        """The schemas of a catalog, full name -> schema (owner, properties, comment)."""
        with self.lock:
            return {k: dict(v) for k, v in self.catalog.schemas.items() if v["catalog_name"] == catalog}

    def uc_grants(self, kind: str, full_name: str) -> dict[str, set[str]]:
        """principal -> privileges granted directly on a catalog or schema."""
        with self.lock:
            return {p: set(v) for p, v in self.catalog.grants.get((kind, full_name), {}).items() if v}

    def uc_can(self, user_name: str, privilege: str, schema: str) -> bool:
        """Whether a student could, e.g., CREATE_TABLE in the schema (USE_CATALOG, USE_SCHEMA and it)."""
        with self.lock:
            return self.catalog.can(user_name, privilege, schema)

    def uc_add_catalog(self, name: str, *, owner: str = "someone@example.edu") -> None:
        """A catalog that exists before the lab (the workspace catalog, another course's)."""
        with self.lock:
            self.catalog.catalogs[name] = {"name": name, "full_name": name, "owner": owner, "properties": {},
                                           "catalog_type": "MANAGED_CATALOG"}

    def uc_add_table(self, schema: str, table: str) -> None:
        """A student's table in a schema (dropping the schema then needs force)."""
        with self.lock:
            self.catalog.schema(schema)
            self.catalog.tables.setdefault(schema, set()).add(table)
