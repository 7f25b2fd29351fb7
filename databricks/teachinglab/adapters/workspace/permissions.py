"""Permissions: a cluster's ACL read and changed without touching other entries, and a folder's."""
from __future__ import annotations

from databricks.sdk.service import compute, iam
from databricks.sdk.service import workspace as ws_service

from databricks.teachinglab.adapters.workspace.base import NotFound, _direct_level, _principal
from databricks.teachinglab.core.model import AclEntry


# Serverless compute access control (GA 2026-08-03): each workspace's "Default Interactive
# Compute" and "Default Automated Compute" objects, read and changed through the Permissions API as
# serverless-compute/<id> with levels CAN_USE and CAN_MANAGE (the check against a live
# workspace; the SDK's PermissionsAPI takes any object type in its path). PUT replaces the direct
# entries, so a change is read-modify-write: every other principal keeps what it had.
SERVERLESS_OBJECT = "serverless-compute"


class PermissionsApi:
    def serverless_acl(self, object_id: str) -> list[AclEntry]:
        perms = self._retry(f"permissions of serverless compute {object_id}",
                            lambda: self.client.permissions.get(SERVERLESS_OBJECT, object_id))
        out = []
        for entry in perms.access_control_list or []:
            kind, name = _principal(entry)
            for p in entry.all_permissions or []:
                out.append(AclEntry(kind, name, p.permission_level.value if p.permission_level else "",
                                    bool(p.inherited)))
        return out

    def change_serverless_acl(self, object_id: str, *, grant: list[tuple[str, str]] = (),
                              revoke: list[tuple[str, str]] = ()) -> tuple[list, list, set]:
        """Give CAN_USE to `grant` and take every direct entry of `revoke` away; both are
        (principal_type, name). Returns what changed (granted, revoked) and who holds a direct
        entry afterwards; nothing is written when the ACL is already so. An entry the API refuses
        to name (admins) is never written back."""
        direct = [e for e in self.serverless_acl(object_id) if not e.inherited
                  and not (e.principal_type == "group_name" and e.principal == "admins")]
        held = {(e.principal_type, e.principal) for e in direct}
        revoking = [p for p in revoke if p in held]
        granting = [p for p in grant if p not in held]
        keep = [e for e in direct if (e.principal_type, e.principal) not in set(revoke)]
        after = {(e.principal_type, e.principal) for e in keep} | set(grant)
        if not revoking and not granting:
            return [], [], after
        acl = [iam.AccessControlRequest(**{e.principal_type: e.principal}, permission_level=iam.PermissionLevel(e.level))
               for e in keep]
        acl += [iam.AccessControlRequest(**{kind: name}, permission_level=iam.PermissionLevel.CAN_USE)
                for kind, name in granting]
        self._retry(f"set permissions of serverless compute {object_id}", lambda: self.client.permissions.set(
            SERVERLESS_OBJECT, object_id, access_control_list=acl))
        return granting, revoking, after

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

    def group_level(self, cluster_id: str, group: str) -> str | None:
        """The level `group` holds directly on the cluster (not inherited), or None."""
        return _direct_level(self.acl(cluster_id), group)

    def grant(self, cluster_id: str, entries: list[tuple[str, str, str]]) -> None:
        """Add (principal_type, name, level) entries with PATCH: other entries are untouched."""
        acl = [compute.ClusterAccessControlRequest(**{kind: name},
                                                   permission_level=compute.ClusterPermissionLevel(level))
               for kind, name, level in entries]
        self._retry(f"grant on {cluster_id}", lambda: self.client.clusters.update_permissions(
            cluster_id, access_control_list=acl))

    def folder_managers(self, path: str, level: str = "CAN_MANAGE") -> set[str] | None:
        """Groups with `level` directly on a workspace folder; None when it does not exist."""
        try:
            status = self._retry(f"status of {path}", lambda: self.client.workspace.get_status(path))
        except NotFound:
            return None
        perms = self._retry(f"permissions of {path}", lambda: self.client.workspace.get_permissions(
            "directories", str(status.object_id)))
        return {e.group_name for e in perms.access_control_list or [] if e.group_name
                for p in e.all_permissions or [] if not p.inherited and p.permission_level
                and p.permission_level.value == level}

    def group_folder(self, path: str, group: str, level: str = "CAN_MANAGE") -> None:
        """Make `path` and give `group` `level` on it (PATCH: other entries stay)."""
        self._retry(f"mkdirs {path}", lambda: self.client.workspace.mkdirs(path))
        status = self._retry(f"status of {path}", lambda: self.client.workspace.get_status(path))
        self._retry(f"permissions of {path}", lambda: self.client.workspace.update_permissions(
            "directories", str(status.object_id), access_control_list=[ws_service.WorkspaceObjectAccessControlRequest(
                group_name=group, permission_level=ws_service.WorkspaceObjectPermissionLevel(level))]))
