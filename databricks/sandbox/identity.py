"""SCIM users and groups. Membership is stored once (on the group) and shown from both sides,
so a user's `groups` and a group's `members` can never disagree."""
from __future__ import annotations

import itertools
import json
import re

from .errors import ApiError

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"

# SCIM filter values are JSON strings (RFC 7644 3.4.2.2): a quote or a backslash inside is escaped.
_FILTER = re.compile(r'^\s*(\w+)(?:\.(\w+))?\s+(eq|co|sw)\s+"((?:[^"\\]|\\.)*)"\s*$', re.IGNORECASE)
_MEMBER_PATH = re.compile(r'^members\[value eq "?([^"\]]+)"?\]$', re.IGNORECASE)


class Directory:
    def __init__(self):
        self.users: dict[str, dict] = {}
        self.groups: dict[str, dict] = {}
        self.members: dict[str, set[str]] = {}  # group id -> member ids (users or groups)
        self._ids = itertools.count(1000001)
        self.assigned: dict[str, list[str]] = {}  # principal id -> USER | ADMIN (permission assignments)
        # Service principals (SCIM /ServicePrincipals): a principal named by its applicationId, which is
        # what creator_user_name and the ACLs' service_principal_name show for it.
        self.service_principals: dict[str, dict] = {}
        self.create_group({"displayName": "admins"})
        # A new workspace's `users` group: workspace access and SQL, not cluster creation.
        self.create_group({"displayName": "users", "entitlements": [
            {"value": "workspace-access"}, {"value": "databricks-sql-access"}]})

    # -- users ------------------------------------------------------------------------------
    def create_user(self, body: dict) -> dict:
        name = (body.get("userName") or "").strip()
        if not name:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", "userName is required")
        if self.find_user(name):
            raise ApiError(409, "RESOURCE_ALREADY_EXISTS", f"User with username {name} already exists.")
        uid = str(next(self._ids))
        emails = body.get("emails") or [{"value": name, "primary": True, "type": "work"}]
        self.users[uid] = {
            "id": uid, "userName": name, "displayName": body.get("displayName") or name,
            "emails": emails, "name": body.get("name") or {}, "active": body.get("active", True),
            "entitlements": body.get("entitlements") or [{"value": "workspace-access"}],
        }
        self.members[self.group_id("users")].add(uid)
        for ref in body.get("groups") or []:
            self._group(ref["value"])
            self.members[ref["value"]].add(uid)
        return self.user_json(uid)

    def create_service_principal(self, body: dict) -> dict:
        app_id = (body.get("applicationId") or "").strip()
        if not app_id:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", "applicationId is required")
        if self.find_principal(app_id):
            raise ApiError(409, "RESOURCE_ALREADY_EXISTS", f"Service principal {app_id} already exists.")
        sid = str(next(self._ids))
        self.service_principals[sid] = {"id": sid, "applicationId": app_id, "active": True,
                                        "displayName": body.get("displayName") or app_id,
                                        "entitlements": body.get("entitlements") or []}
        self.members[self.group_id("users")].add(sid)
        return self.service_principal_json(sid)

    def service_principal_json(self, sid: str) -> dict:
        if sid not in self.service_principals:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Service principal {sid} does not exist.")
        sp = dict(self.service_principals[sid])
        sp["groups"] = [{"value": gid, "display": self.groups[gid]["displayName"], "type": "direct"}
                        for gid, ids in self.members.items() if sid in ids]
        sp["schemas"] = ["urn:ietf:params:scim:schemas:core:2.0:ServicePrincipal"]
        return sp

    def find_principal(self, name: str) -> str | None:
        """The id of the user with this userName, or of the service principal with this applicationId."""
        uid = self.find_user(name)
        if uid is not None:
            return uid
        return next((sid for sid, sp in self.service_principals.items()
                     if sp["applicationId"].lower() == name.lower()), None)

    def entitled(self, name: str, entitlement: str) -> bool:
        """Whether the principal holds the entitlement, directly or through a group (nested)."""
        pid = self.find_principal(name)
        if pid is None:
            return False
        own = (self.users.get(pid) or self.service_principals.get(pid) or {}).get("entitlements") or []
        if any(e.get("value") == entitlement for e in own):
            return True
        return any(any(e.get("value") == entitlement for e in g.get("entitlements") or [])
                   for gid, g in self.groups.items() if pid in self.member_of(gid))

    def in_group(self, name: str, group: str) -> bool:
        """Whether the principal is in the group, through nested groups too."""
        pid, gid = self.find_principal(name), self.group_id(group)
        return pid is not None and gid is not None and pid in self.member_of(gid)

    def find_user(self, user_name: str) -> str | None:
        for uid, user in self.users.items():
            if user["userName"].lower() == user_name.lower():
                return uid
        return None

    def _user(self, uid: str) -> dict:
        if uid not in self.users:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"User {uid} does not exist.")
        return self.users[uid]

    def user_json(self, uid: str) -> dict:
        user = dict(self._user(uid))
        user["groups"] = [{"value": gid, "display": self.groups[gid]["displayName"], "type": "direct"}
                          for gid, ids in self.members.items() if uid in ids]
        user["schemas"] = [USER_SCHEMA]
        return user

    def delete_user(self, uid: str) -> None:
        self._user(uid)
        del self.users[uid]
        for ids in self.members.values():
            ids.discard(uid)

    # -- groups -----------------------------------------------------------------------------
    def create_group(self, body: dict, *, account: bool = False) -> dict:
        """A workspace-local group, or with `account` an account group (identity federation: it
        shows in the workspace once assigned to it; account SCIM, "Create a group")."""
        name = (body.get("displayName") or "").strip()
        if not name:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", "displayName is required")
        clash = [g for g in self.groups.values() if g["displayName"] == name
                 and (g.get("account", False) == account or (not account and self.visible(g["id"])))]
        if clash:
            raise ApiError(409, "RESOURCE_ALREADY_EXISTS", f"Group with name {name} already exists.")
        gid = str(next(self._ids))
        self.groups[gid] = {"id": gid, "displayName": name, "account": account,
                            "entitlements": body.get("entitlements") or []}
        if body.get("externalId"):
            self.groups[gid]["externalId"] = body["externalId"]
        self.members[gid] = set()
        for ref in body.get("members") or []:
            self._principal(ref["value"])
            self.members[gid].add(ref["value"])
        return self.group_json(gid)

    def group_id(self, name: str, *, account: bool | None = None) -> str | None:
        """The id of the group called `name` that the workspace sees (account=None), or of the
        account group (True) or the workspace-local one (False) of that name."""
        for gid, group in self.groups.items():
            if group["displayName"] != name:
                continue
            if account is None and self.visible(gid) or account is not None and group.get("account", False) == account:
                return gid
        return None

    def visible(self, gid: str) -> bool:
        """Workspace-local groups, and account groups assigned to the workspace."""
        group = self.groups.get(gid)
        return group is not None and (not group.get("account") or gid in self.assigned)

    def _group(self, gid: str) -> dict:
        if gid not in self.groups:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Group {gid} does not exist.")
        return self.groups[gid]

    def _principal(self, pid: str) -> dict:
        if pid in self.users:
            return self.users[pid]
        if pid in self.service_principals:
            return self.service_principals[pid]
        if pid in self.groups:
            return self.groups[pid]
        raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Principal {pid} does not exist.")

    def group_json(self, gid: str) -> dict:
        group = dict(self._group(gid))
        group["meta"] = {"resourceType": "Group" if group.pop("account", False) else "WorkspaceGroup"}
        members = []
        for pid in sorted(self.members[gid]):
            if pid in self.users:
                members.append({"value": pid, "display": self.users[pid]["displayName"],
                                "$ref": f"Users/{pid}"})
            elif pid in self.groups:
                members.append({"value": pid, "display": self.groups[pid]["displayName"],
                                "$ref": f"Groups/{pid}"})
            elif pid in self.service_principals:
                members.append({"value": pid, "display": self.service_principals[pid]["displayName"],
                                "$ref": f"ServicePrincipals/{pid}"})
        group["members"] = members
        group["schemas"] = [GROUP_SCHEMA]
        return group

    def delete_group(self, gid: str) -> None:
        name = self._group(gid)["displayName"]
        if name in ("admins", "users"):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Group {name} is a system group.")
        del self.groups[gid]
        del self.members[gid]
        for ids in self.members.values():
            ids.discard(gid)

    def patch_group(self, gid: str, body: dict, *, via_account: bool = False) -> None:
        group = self._group(gid)
        if group.get("account") and not via_account and any(
                (op.get("path") or "").startswith("members") for op in body.get("Operations") or []):
            # Identity federation: an account group's members are managed at the account level.
            raise ApiError(400, "INVALID_PARAMETER_VALUE",
                           f"Group {group['displayName']} is an account group: change its members in the account")
        for op in body.get("Operations") or []:
            kind = (op.get("op") or "").lower()
            path = op.get("path") or ""
            value = op.get("value")
            if kind == "add" and path in ("", "members"):
                refs = value.get("members", []) if isinstance(value, dict) else (value or [])
                for ref in refs:
                    self._principal(ref["value"])
                    self.members[gid].add(ref["value"])
            elif kind == "remove" and _MEMBER_PATH.match(path):
                self.members[gid].discard(_MEMBER_PATH.match(path).group(1))
            elif kind == "remove" and path == "members":
                for ref in value or []:
                    self.members[gid].discard(ref["value"])
            elif kind == "replace" and path == "displayName":
                self.groups[gid]["displayName"] = value
            elif path == "entitlements" and kind in ("add", "remove"):
                _change_entitlements(self.groups[gid], kind, value)
            else:
                raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Unsupported PATCH operation {op}")

    def patch_user(self, uid: str, body: dict) -> None:
        user = self._user(uid)
        for op in body.get("Operations") or []:
            kind, path = (op.get("op") or "").lower(), op.get("path") or ""
            if path == "entitlements" and kind in ("add", "remove"):
                _change_entitlements(user, kind, op.get("value"))
            else:
                raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Unsupported PATCH operation {op}")

    def member_of(self, gid: str) -> set[str]:
        """Every principal in the group, through nested groups too."""
        seen: set[str] = set()
        stack = [gid]
        while stack:
            for pid in self.members.get(stack.pop(), ()):
                if pid not in seen:
                    seen.add(pid)
                    if pid in self.groups:
                        stack.append(pid)
        return seen

    def is_admin(self, user_name: str) -> bool:
        """A user or service principal in `admins` (nested), or assigned ADMIN, or in a group that is."""
        uid = self.find_principal(user_name)
        if uid is None:
            return False
        admin_groups = [self.group_id("admins")] + [g for g, perms in self.assigned.items()
                                                    if g in self.groups and "ADMIN" in perms]
        return "ADMIN" in self.assigned.get(uid, []) or any(uid in self.member_of(g) for g in admin_groups)

    # -- permission assignments -------------------------------------------------------------
    def assign(self, pid: str, permissions: list[str]) -> None:
        self._principal(pid)
        self.assigned[pid] = sorted(set(permissions))

    def assignments(self) -> list[dict]:
        out = []
        for pid, perms in sorted(self.assigned.items()):
            if pid in self.users:
                principal = {"principal_id": int(pid), "user_name": self.users[pid]["userName"],
                             "display_name": self.users[pid]["displayName"]}
            elif pid in self.groups:
                principal = {"principal_id": int(pid), "group_name": self.groups[pid]["displayName"],
                             "display_name": self.groups[pid]["displayName"]}
            elif pid in self.service_principals:
                sp = self.service_principals[pid]
                principal = {"principal_id": int(pid), "service_principal_name": sp["applicationId"],
                             "display_name": sp["displayName"]}
            else:
                continue
            out.append({"principal": principal, "permissions": perms})
        return out

    # -- listing ----------------------------------------------------------------------------
    def list(self, kind: str, query: dict, *, account: bool = False) -> dict:
        if kind == "Users":
            items = [self.user_json(uid) for uid in self.users]
        elif kind == "ServicePrincipals":
            items = [self.service_principal_json(sid) for sid in self.service_principals]
        elif account:
            items = [self.group_json(gid) for gid, g in self.groups.items() if g.get("account")]
        else:
            items = [self.group_json(gid) for gid in self.groups if self.visible(gid)]
        flt = query.get("filter")
        if flt:
            items = [item for item in items if _matches(item, flt)]
        total = len(items)
        start = max(int(query.get("startIndex") or 1), 1)
        count = int(query.get("count") or 10000)
        page = items[start - 1:start - 1 + count]
        return {"schemas": [LIST_SCHEMA], "totalResults": total, "startIndex": start,
                "itemsPerPage": len(page), "Resources": page}


def _change_entitlements(obj: dict, kind: str, value) -> None:
    names = {e["value"] for e in obj.get("entitlements") or []}
    changed = {e["value"] for e in (value or [])}
    names = names | changed if kind == "add" else names - changed
    obj["entitlements"] = [{"value": n} for n in sorted(names)]


def _matches(item: dict, flt: str) -> bool:
    for clause in re.split(r"\s+and\s+", flt, flags=re.IGNORECASE):
        m = _FILTER.match(clause)
        if not m:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Unsupported filter: {flt}")
        attr, sub, op, want = m.groups()
        try:
            want = json.loads(f'"{want}"')  # a JSON string literal: \" and \\ (and \n) are escapes
        except ValueError:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Unsupported filter: {flt}") from None
        value = item.get(attr)
        if isinstance(value, list):  # emails.value
            values = [str(v.get(sub or "value", "")) for v in value]
        elif isinstance(value, dict):
            values = [str(value.get(sub or "", ""))]
        else:
            values = [str(value or "")]
        test = {"eq": lambda v: v.lower() == want.lower(),
                "co": lambda v: want.lower() in v.lower(),
                "sw": lambda v: v.lower().startswith(want.lower())}[op.lower()]
        if not any(test(v) for v in values):
            return False
    return True
