"""Account groups and their assignment to a workspace (identity federation), through the account API."""
from __future__ import annotations

from databricks.sdk import AccountClient
from databricks.sdk.core import Config
from databricks.sdk.service import iam

from databricks.teachinglab.adapters.workspace.base import (HTTP_TIMEOUT_SECONDS, SDK_RETRY_SECONDS, GatewayBase,
                                                            _patch_members, _RunClock, scim_string)

class AccountDirectory:
    """Account groups and their assignment to a workspace (identity federation), through the
    account API. Shares the retry and create-once rules of the workspace gateway."""

    def __init__(self, client: AccountClient, gateway: GatewayBase):
        self.client = client
        self._gateway = gateway  # its _retry/_once and deadline

    @classmethod
    def connect(cls, *, host: str, account_id: str, token: str | None, profile: str | None,
                gateway: GatewayBase) -> "AccountDirectory":
        clock = _RunClock()
        clock.gateway = gateway
        config = Config(host=host, account_id=account_id, token=token, profile=profile, clock=clock,
                        retry_timeout_seconds=SDK_RETRY_SECONDS, http_timeout_seconds=HTTP_TIMEOUT_SECONDS)
        return cls(AccountClient(config=config), gateway)

    def group(self, name: str) -> tuple[str, str | None, set[str]] | None:
        """(id, externalId, member ids) of the account group called `name`, or None. The account
        SCIM list no longer returns members ("As of 08/22/2025, this endpoint will no longer return
        members. Instead, members should be retrieved by iterating through Get group details",
        databricks-sdk 0.156 AccountGroupsV2API.list): the list finds the group, a GET reads them."""
        g = self._gateway._retry(f"account group {name}", lambda: next(iter(self.client.groups.list(
            filter=f'displayName eq {scim_string(name)}', attributes="id,displayName,externalId")), None))
        if g is None:
            return None
        full = self._gateway._retry(f"members of account group {name}", lambda: self.client.groups.get(g.id))
        return g.id, (full.external_id or g.external_id) or None, {m.value for m in full.members or [] if m.value}

    def groups(self, names) -> dict[str, tuple[str, str | None, set[str]] | None]:
        """group() for each name, in parallel (8 at a time), each call within the run's deadline."""
        from concurrent.futures import ThreadPoolExecutor
        names = sorted(set(names))
        if not names:
            return {}
        with ThreadPoolExecutor(max_workers=min(8, len(names))) as pool:
            return dict(zip(names, pool.map(self.group, names)))

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
