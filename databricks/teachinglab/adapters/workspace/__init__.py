"""The one package that imports databricks.sdk: one module per API family (clusters and events,
identity, permissions, policies, billing, workspace files, Unity Catalog, the account), each turning SDK
objects into the project's dataclasses on a shared base that bounds every call by the run's
deadline and retries only what is safe to retry. Everything above it is plain Python."""
from __future__ import annotations

from databricks.teachinglab.adapters.workspace.accounts import AccountDirectory
from databricks.teachinglab.adapters.workspace.base import (HTTP_TIMEOUT_SECONDS, SDK_RETRY_SECONDS, TRANSIENT,
                                                            ApiFailure, GatewayBase, NotFound, failure_cause, failure_kind,
                                                            scim_string)
from databricks.teachinglab.adapters.workspace.billing import BillingApi
from databricks.teachinglab.adapters.workspace.catalog import CatalogApi, Securable
from databricks.teachinglab.adapters.workspace.clusters import ClustersApi
from databricks.teachinglab.adapters.workspace.files import FilesApi
from databricks.teachinglab.adapters.workspace.identity import IdentityApi
from databricks.teachinglab.adapters.workspace.permissions import PermissionsApi
from databricks.teachinglab.adapters.workspace.policies import PoliciesApi


class WorkspaceGateway(ClustersApi, IdentityApi, PermissionsApi, PoliciesApi, BillingApi, FilesApi, CatalogApi,
                       GatewayBase):
    """The workspace as the lab uses it: every API family on one deadline-bounded client."""


__all__ = ["AccountDirectory", "Securable", "ApiFailure", "GatewayBase", "HTTP_TIMEOUT_SECONDS", "NotFound", "SDK_RETRY_SECONDS", "failure_cause",
           "TRANSIENT", "WorkspaceGateway", "failure_kind", "scim_string"]
