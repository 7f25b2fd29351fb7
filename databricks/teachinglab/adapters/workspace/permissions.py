"""Permissions: a cluster's ACL read and changed without touching other entries, and a folder's."""
from __future__ import annotations

from databricks.sdk.service import compute
from databricks.sdk.service import workspace as ws_service

from databricks.teachinglab.adapters.workspace.base import NotFound, _direct_level, _principal
from databricks.teachinglab.core.model import AclEntry


class PermissionsApi:
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
