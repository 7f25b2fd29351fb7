"""Cluster ACLs. PUT replaces the direct entries; PATCH changes only the principals it names.
The admins group always holds CAN_MANAGE, inherited from the clusters root object, and a request
that names it is refused, as the Terraform provider refuses it ("it is not possible to modify
admin permissions for cluster resources", resource_permissions.go validate)."""
from __future__ import annotations

from .errors import ApiError
from .identity import Directory

CLUSTER_LEVELS = ("CAN_ATTACH_TO", "CAN_RESTART", "CAN_MANAGE")
PRINCIPAL_KEYS = ("user_name", "group_name", "service_principal_name")


class ClusterAcls:
    def __init__(self, directory: Directory):
        self.directory = directory
        self.direct: dict[str, dict[tuple[str, str], str]] = {}

    def grant_creator(self, cluster_id: str, user_name: str) -> None:
        key = "user_name" if self.directory.find_user(user_name) else "service_principal_name"
        self.direct.setdefault(cluster_id, {})[(key, user_name)] = "CAN_MANAGE"

    def effective_level(self, cluster_id: str, name: str) -> str | None:
        """The highest level the principal holds: its own entry or any group's it is in, because
        cluster permissions add up (Permissions API: "the highest permission level applies")."""
        levels = [level for (key, who), level in self.direct.get(cluster_id, {}).items()
                  if (key == "group_name" and self.directory.in_group(name, who))
                  or (key != "group_name" and who.lower() == name.lower())]
        return max(levels, key=CLUSTER_LEVELS.index, default=None)

    def _parse(self, body: dict) -> dict[tuple[str, str], str]:
        return parse_acl(body, self.directory, CLUSTER_LEVELS, "clusters")

    def put(self, cluster_id: str, body: dict) -> dict:
        self.direct[cluster_id] = self._parse(body)
        return self.get(cluster_id)

    def patch(self, cluster_id: str, body: dict) -> dict:
        self.direct.setdefault(cluster_id, {}).update(self._parse(body))
        return self.get(cluster_id)

    def level_of(self, cluster_id: str, key: str, name: str) -> str | None:
        return self.direct.get(cluster_id, {}).get((key, name))

    def get(self, cluster_id: str) -> dict:
        acl = [{key: name, "all_permissions": [{"permission_level": level, "inherited": False}]}
               for (key, name), level in sorted(self.direct.get(cluster_id, {}).items())]
        acl.append({"group_name": "admins",
                    "all_permissions": [{"permission_level": "CAN_MANAGE", "inherited": True,
                                         "inherited_from_object": ["/clusters/"]}]})
        return {"object_id": f"/clusters/{cluster_id}", "object_type": "cluster",
                "access_control_list": acl}


def parse_acl(body: dict, directory: Directory, levels: tuple[str, ...], kind: str) -> dict[tuple[str, str], str]:
    """A Permissions API request's entries: one principal each, a level the object type knows, a
    principal that exists; admins are refused (their CAN_MANAGE is inherited)."""
    entries: dict[tuple[str, str], str] = {}
    for entry in body.get("access_control_list") or []:
        keys = [k for k in PRINCIPAL_KEYS if entry.get(k)]
        if len(keys) != 1:
            raise ApiError(400, "INVALID_PARAMETER_VALUE",
                           "Each ACL entry needs exactly one of user_name, group_name, service_principal_name")
        key = keys[0]
        name = entry[key]
        level = entry.get("permission_level")
        if level not in levels:
            raise ApiError(400, "INVALID_PARAMETER_VALUE",
                           f"Permission {level} is not a valid permission for {kind}; valid levels are {', '.join(levels)}")
        if key == "group_name" and name == "admins":
            raise ApiError(400, "INVALID_PARAMETER_VALUE",
                           f"it is not possible to modify admin permissions for {kind} resources")
        if key == "group_name" and name != "users" and not directory.group_id(name):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Group {name} does not exist")
        if key == "user_name" and not directory.find_user(name):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"User {name} does not exist")
        if key == "service_principal_name" and not directory.find_principal(name):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Service principal {name} does not exist")
        entries[(key, name)] = level
    return entries
