"""Cluster policies and who may use them: what the audit reads."""
from __future__ import annotations

from databricks.teachinglab.adapters.workspace.base import _principal
from databricks.teachinglab.core.model import AclEntry, PolicyInfo


class PoliciesApi:
    def policies(self) -> list[PolicyInfo]:
        raw = self._retry("list cluster policies", lambda: list(self.client.cluster_policies.list()))
        return [PolicyInfo(p.policy_id, p.name or p.policy_id, p.policy_family_id) for p in raw]

    def policy_acl(self, policy_id: str) -> list[AclEntry]:
        perms = self._retry(f"permissions of policy {policy_id}",
                            lambda: self.client.cluster_policies.get_permissions(policy_id))
        return [AclEntry(*_principal(entry), p.permission_level.value, bool(p.inherited))
                for entry in perms.access_control_list or [] for p in entry.all_permissions or []]
