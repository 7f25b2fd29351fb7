"""Cluster policies and their permissions, as the Cluster Policies and Permissions APIs show them.

A new Azure Databricks workspace has the *Personal Compute* policy (family `personal-vm`) usable
by every user (`users` holds CAN_USE): the account setting "Personal Compute" defaults to "Enable
for all" (Databricks docs, "Manage the Personal Compute policy"). That is how a student blocked
on the group cluster can make a cluster of their own.
"""
from __future__ import annotations

import itertools
import json

from .errors import ApiError
from .identity import Directory

POLICY_LEVELS = ("CAN_USE",)
PERSONAL_COMPUTE = {"spark_conf.spark.databricks.cluster.profile": {"type": "fixed", "value": "singleNode"},
                    "num_workers": {"type": "fixed", "value": 0}}


class Policies:
    def __init__(self, directory: Directory):
        self.directory = directory
        self._ids = itertools.count(1)
        self.policies: dict[str, dict] = {}
        self.acls: dict[str, dict[tuple[str, str], str]] = {}
        pid = self.create({"name": "Personal Compute", "definition": json.dumps(PERSONAL_COMPUTE),
                           "policy_family_id": "personal-vm"}, creator=None)
        self.acls[pid] = {("group_name", "users"): "CAN_USE"}

    def create(self, body: dict, creator: str | None) -> str:
        name = (body.get("name") or "").strip()
        if not name:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", "name is required")
        if any(p["name"] == name for p in self.policies.values()):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Policy with name {name} already exists")
        pid = f"{next(self._ids):016X}"
        self.policies[pid] = {"policy_id": pid, "name": name, "definition": body.get("definition") or "{}",
                              "is_default": creator is None, "creator_user_name": creator,
                              **({"policy_family_id": body["policy_family_id"]} if body.get("policy_family_id") else {})}
        self.acls[pid] = {}
        return pid

    def get(self, pid: str) -> dict:
        if pid not in self.policies:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Cluster policy {pid} does not exist")
        return self.policies[pid]

    def list(self) -> dict:
        return {"policies": sorted(self.policies.values(), key=lambda p: p["name"])}

    def delete(self, pid: str) -> None:
        self.get(pid)
        del self.policies[pid]
        del self.acls[pid]

    def can_use(self, pid: str, name: str) -> bool:
        """CAN_USE on the policy for this principal: directly, or through a group it is in."""
        for (key, who), level in self.acls.get(pid, {}).items():
            if level != "CAN_USE":
                continue
            if key == "group_name" and self.directory.in_group(name, who):
                return True
            if key != "group_name" and who.lower() == name.lower():
                return True
        return False

    def apply(self, body: dict) -> dict:
        """A create request under its policy: a "fixed" value is filled in when missing and refused
        when it differs (Cluster Policies: "fixed: the value is fixed; the user cannot change it")."""
        pid = body.get("policy_id")
        if not pid:
            return body
        out = json.loads(json.dumps(body))
        for path, rule in json.loads(self.get(pid)["definition"]).items():
            if rule.get("type") != "fixed":
                continue
            head, _, rest = path.partition(".")
            holder, key = (out.setdefault(head, {}), rest) if rest and head in ("spark_conf", "custom_tags") \
                else (out, path)
            if key in holder and holder[key] != rule["value"]:
                raise ApiError(400, "INVALID_PARAMETER_VALUE",
                               f"Validation failed for {path}, the value must be {rule['value']} (is {holder[key]})")
            holder[key] = rule["value"]
        return out

    def _parse(self, body: dict) -> dict[tuple[str, str], str]:
        out = {}
        for entry in body.get("access_control_list") or []:
            keys = [k for k in ("user_name", "group_name", "service_principal_name") if entry.get(k)]
            if len(keys) != 1 or entry.get("permission_level") not in POLICY_LEVELS:
                raise ApiError(400, "INVALID_PARAMETER_VALUE",
                               "Each entry needs one principal and permission_level CAN_USE")
            if keys[0] == "group_name" and entry[keys[0]] == "admins":
                raise ApiError(400, "INVALID_PARAMETER_VALUE",
                               "it is not possible to modify admin permissions for cluster-policy resources")
            out[(keys[0], entry[keys[0]])] = entry["permission_level"]
        return out

    def permissions(self, pid: str) -> dict:
        self.get(pid)
        acl = [{key: name, "all_permissions": [{"permission_level": level, "inherited": False}]}
               for (key, name), level in sorted(self.acls[pid].items())]
        acl.append({"group_name": "admins", "all_permissions": [
            {"permission_level": "CAN_USE", "inherited": True, "inherited_from_object": ["/cluster-policies/"]}]})
        return {"object_id": f"/cluster-policies/{pid}", "object_type": "cluster-policy",
                "access_control_list": acl}

    def put(self, pid: str, body: dict) -> dict:
        self.get(pid)
        self.acls[pid] = self._parse(body)
        return self.permissions(pid)

    def patch(self, pid: str, body: dict) -> dict:
        self.get(pid)
        self.acls[pid].update(self._parse(body))
        return self.permissions(pid)
