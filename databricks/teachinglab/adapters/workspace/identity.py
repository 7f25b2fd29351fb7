"""Identity: users, groups and their members, the workspace admins, the tool's own identity (SCIM)."""
from __future__ import annotations

from databricks.sdk import errors as sdk_errors
from databricks.sdk.service import iam

from databricks.teachinglab.adapters.workspace.base import NotFound, _patch_members, scim_string
from databricks.teachinglab.core.model import GroupInfo, Person


class IdentityApi:
    def me(self) -> str:
        return self._retry("current user", lambda: self.client.current_user.me().user_name)

    def auth_description(self) -> tuple[str, str]:
        """(the SDK's auth type, e.g. pat or azure-client-secret; the cloud, AZURE or another): what
        a handoff record says of how the lab signs in, never a secret."""
        cfg = self.client.config
        host = (cfg.host or "").lower()
        # By the host, as the SDK's own is_azure does (its is_aws is true for any other host, a local one too)
        cloud = ("AZURE" if ".azuredatabricks.net" in host or ".databricks.azure." in host else
                 "GCP" if ".gcp.databricks.com" in host else "AWS" if ".cloud.databricks.com" in host else "unknown")
        return cfg.auth_type or "unknown", cloud

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

    def person(self, user_id: str) -> Person | None:
        if user_id not in self._people:
            try:
                u = self._retry(f"user {user_id}", lambda: self.client.users.get(user_id))
            except NotFound:
                return None
            email = next((e.value for e in (u.emails or []) if e.primary), None) or u.user_name
            self._people[user_id] = Person(u.user_name, email, u.display_name or u.user_name, u.id)
        return self._people[user_id]

    def groups(self) -> list[GroupInfo]:
        raw = self._retry("list groups", lambda: list(self.client.groups.list(
            attributes="id,displayName,members,entitlements,externalId,meta")))
        return [self._group(g) for g in raw]

    def group(self, name: str) -> GroupInfo | None:
        found = self._retry(f"group {name}", lambda: list(self.client.groups.list(
            filter=f'displayName eq {scim_string(name)}', attributes="id,displayName,members")))
        return self._group(found[0]) if found else None

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
