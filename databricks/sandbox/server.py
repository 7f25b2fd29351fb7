"""HTTP front of the emulated workspace: the REST paths the databricks-sdk calls, on 127.0.0.1."""
from __future__ import annotations

import json
import logging
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qs, urlsplit

from .clock import SandboxClock
from .errors import ApiError
from .workspace import Fault, LoggedRequest, Workspace

logger = logging.getLogger(__name__)

Handler = Callable[[Workspace, dict, dict, re.Match, str], object]
ROUTES: list[tuple[str, re.Pattern, Handler]] = []
API_PREFIX = re.compile(r"^/api/2\.[01]")


def route(method: str, pattern: str):
    def register(fn: Handler) -> Handler:
        ROUTES.append((method, re.compile(f"^{pattern}$"), fn))
        return fn
    return register


def _cluster_id(body: dict, query: dict) -> str:
    cid = body.get("cluster_id") or query.get("cluster_id")
    if not cid:
        raise ApiError(400, "INVALID_PARAMETER_VALUE", "Missing required field: cluster_id")
    return cid


# -- clusters ----------------------------------------------------------------------------------
@route("GET", "/clusters/list")
def clusters_list(ws, body, query, m, user):
    # filter_by arrives as repeated dotted query keys (filter_by.cluster_sources=UI&...=API), the
    # SDK's _fix_query_string form; Clusters API 2.1 "List clusters".
    sources = set(query.getall("filter_by.cluster_sources"))
    states = set(query.getall("filter_by.cluster_states"))
    # A boolean in the query is `true` or `false` (the REST API's JSON spelling); databricks-sdk
    # 0.156 lower-cases only top-level ones (_fix_query_string), so a nested filter_by.is_pinned
    # built from ListClustersFilterBy goes out as "True": refused here, so the product cannot rely on it.
    pinned = query.get("filter_by.is_pinned")
    if pinned is not None and pinned not in ("true", "false"):
        raise ApiError(400, "INVALID_PARAMETER_VALUE", f"filter_by.is_pinned={pinned!r} is not a boolean (true or false)")
    clusters = [c.as_json() for c in ws.clusters.clusters.values() if not c.deleted
                and (not sources or c.source in sources) and (not states or c.state in states)
                and (pinned is None or c.pinned == (pinned.lower() == "true"))]
    clusters.sort(key=lambda c: c["cluster_name"])
    size = int(query.get("page_size") or 0) or len(clusters) or 1
    start = int(query.get("page_token") or 0)
    out = {"clusters": clusters[start:start + size]}
    if start + size < len(clusters):
        out["next_page_token"] = str(start + size)
    return out


# Clusters API "spark-versions": the runtimes a workspace offers (key and name).
SPARK_VERSIONS = [("13.3.x-scala2.12", "13.3 LTS (includes Apache Spark 3.4.1, Scala 2.12)"),
                  ("14.3.x-scala2.12", "14.3 LTS (includes Apache Spark 3.5.0, Scala 2.12)"),
                  ("15.4.x-scala2.12", "15.4 LTS (includes Apache Spark 3.5.0, Scala 2.12)"),
                  ("15.4.x-cpu-ml-scala2.12", "15.4 LTS ML (includes Apache Spark 3.5.0, Scala 2.12)"),
                  ("16.4.x-scala2.12", "16.4 LTS (includes Apache Spark 3.5.2, Scala 2.12)"),
                  ("17.3.x-scala2.13", "17.3 LTS (includes Apache Spark 4.0.0, Scala 2.13)")]


# Clusters API list-node-types (docs "List node types"; databricks-sdk compute.NodeType): Azure VM
# types with their cores and memory; a deprecated one is listed with is_deprecated.
NODE_TYPES = [("Standard_DS3_v2", 4, 14336), ("Standard_DS4_v2", 8, 28672), ("Standard_DS5_v2", 16, 57344),
              ("Standard_D4ds_v5", 4, 16384), ("Standard_D8ds_v5", 8, 32768), ("Standard_E4ds_v4", 4, 32768),
              ("Standard_F4s", 4, 8192), ("Standard_NC6s_v3", 6, 114688)]


@route("GET", "/clusters/list-node-types")
def clusters_node_types(ws, body, query, m, user):
    return {"node_types": [
        {"node_type_id": t, "instance_type_id": t, "num_cores": cores, "memory_mb": mb, "category": "General Purpose",
         "description": t, "is_deprecated": t == "Standard_F4s"} for t, cores, mb in NODE_TYPES]}


@route("GET", "/clusters/spark-versions")
def clusters_spark_versions(ws, body, query, m, user):
    return {"versions": [{"key": k, "name": n} for k, n in SPARK_VERSIONS]}


@route("GET", "/clusters/get")
def clusters_get(ws, body, query, m, user):
    return ws.clusters.get(_cluster_id(body, query)).as_json()


@route("POST", "/clusters/create")
def clusters_create(ws, body, query, m, user):
    # Who may create: an admin, a principal with the allow-cluster-create entitlement, or anyone
    # through a policy they hold CAN_USE on, which fixes what it fixes (Clusters API "create";
    # Cluster Policies docs: "Users who don't have unrestricted cluster creation can only create
    # clusters using policies they have CAN_USE on"). The creator sets name, tags and, as the
    # cluster's owner (CAN_MANAGE), its ACL: nothing of that is vetted.
    body = ws.policies.apply(ws.authorize_create(user, body))
    ws.check_dedicated_to_group(body)
    body = {**body, "cluster_source": "API"}  # set by the service, never by the caller
    cluster = ws.clusters.create(body, user, ws.now())
    ws.acls.grant_creator(cluster.cluster_id, user)
    return {"cluster_id": cluster.cluster_id}


@route("POST", "/clusters/edit")
def clusters_edit(ws, body, query, m, user):
    cid = _cluster_id(body, query)
    ws.assert_can_manage(cid, user, ("CAN_MANAGE",))
    ws.clusters.edit(cid, body, ws.now())
    return {}


@route("POST", "/clusters/start")
def clusters_start(ws, body, query, m, user):
    cid = _cluster_id(body, query)
    ws.assert_can_manage(cid, user, ("CAN_RESTART", "CAN_MANAGE"))
    ws.clusters.start(cid, ws.now(), user)
    return {}


@route("POST", "/clusters/restart")
def clusters_restart(ws, body, query, m, user):
    cid = _cluster_id(body, query)
    ws.assert_can_manage(cid, user, ("CAN_RESTART", "CAN_MANAGE"))
    ws.clusters.restart(cid, ws.now(), user)
    return {}


@route("POST", "/clusters/resize")
def clusters_resize(ws, body, query, m, user):
    ws.clusters.resize(_cluster_id(body, query), int(body.get("num_workers") or 0), ws.now())
    return {}


@route("POST", "/clusters/delete")
def clusters_delete(ws, body, query, m, user):
    cid = _cluster_id(body, query)
    ws.assert_can_manage(cid, user, ("CAN_RESTART", "CAN_MANAGE"))
    ws.clusters.terminate(cid, ws.now(), user)
    return {}


@route("POST", "/clusters/permanent-delete")
def clusters_permanent_delete(ws, body, query, m, user):
    cid = _cluster_id(body, query)
    ws.assert_can_manage(cid, user, ("CAN_MANAGE",))
    ws.clusters.permanent_delete(cid, ws.now(), user)
    return {}


@route("POST", "/clusters/(pin|unpin)")
def clusters_pin(ws, body, query, m, user):
    cluster = ws.clusters.get(_cluster_id(body, query))
    if m.group(1) == "pin" and not cluster.pinned and \
            sum(c.pinned for c in ws.clusters.clusters.values() if not c.deleted) >= ws.clusters.max_pinned:
        # Clusters API "pin": "A maximum of 100 clusters can be pinned" per workspace.
        raise ApiError(400, "INVALID_STATE", f"Cannot pin more than {ws.clusters.max_pinned} clusters")
    cluster.pinned = m.group(1) == "pin"
    return {}


@route("POST", "/clusters/events")
def clusters_events(ws, body, query, m, user):
    return ws.clusters.events(body)


# -- SQL statements (billing.py) ----------------------------------------------------------------
@route("POST", "/sql/statements/?")
def statements_execute(ws, body, query, m, user):
    return ws.warehouses.execute(body, ws.clusters, ws.clock.now(), serverless=ws.serverless)


@route("GET", "/sql/statements/([^/]+)")
def statements_get(ws, body, query, m, user):
    return ws.warehouses.status(m.group(1), ws.clock.now())


@route("GET", "/sql/warehouses")
def warehouses_list(ws, body, query, m, user):
    return ws.warehouses.list()


@route("GET", "/sql/warehouses/([^/]+)")
def warehouses_get(ws, body, query, m, user):
    return ws.warehouses.get(m.group(1))


@route("POST", "/sql/statements/([^/]+)/cancel")
def statements_cancel(ws, body, query, m, user):
    return ws.warehouses.cancel(m.group(1))


# -- permissions -------------------------------------------------------------------------------
@route("GET", "/permissions/clusters/([^/]+)")
def permissions_get(ws, body, query, m, user):
    ws.clusters.get(m.group(1))
    return ws.acls.get(m.group(1))


@route("PUT", "/permissions/clusters/([^/]+)")
def permissions_put(ws, body, query, m, user):
    ws.clusters.get(m.group(1))
    ws.assert_can_manage(m.group(1), user, ("CAN_MANAGE",))
    return ws.acls.put(m.group(1), body)


@route("PATCH", "/permissions/clusters/([^/]+)")
def permissions_patch(ws, body, query, m, user):
    ws.clusters.get(m.group(1))
    ws.assert_can_manage(m.group(1), user, ("CAN_MANAGE",))
    return ws.acls.patch(m.group(1), body)


@route("GET", "/permissions/serverless-compute/([^/]+)")
def serverless_permissions_get(ws, body, query, m, user):
    return ws.serverless.get(m.group(1))


@route("PUT", "/permissions/serverless-compute/([^/]+)")
def serverless_permissions_put(ws, body, query, m, user):
    ws.assert_admin(user)
    return ws.serverless.put(m.group(1), body)


@route("PATCH", "/permissions/serverless-compute/([^/]+)")
def serverless_permissions_patch(ws, body, query, m, user):
    ws.assert_admin(user)
    return ws.serverless.patch(m.group(1), body)


@route("GET", "/permissions/clusters/([^/]+)/permissionLevels")
def permission_levels(ws, body, query, m, user):
    return {"permission_levels": [{"permission_level": lvl} for lvl in
                                  ("CAN_ATTACH_TO", "CAN_RESTART", "CAN_MANAGE")]}


# -- cluster policies --------------------------------------------------------------------------
@route("GET", "/policies/clusters/list")
def policies_list(ws, body, query, m, user):
    return ws.policies.list()


@route("GET", "/policies/clusters/get")
def policies_get(ws, body, query, m, user):
    return ws.policies.get(query.get("policy_id", ""))


@route("POST", "/policies/clusters/create")
def policies_create(ws, body, query, m, user):
    return {"policy_id": ws.policies.create(body, user)}


@route("POST", "/policies/clusters/delete")
def policies_delete(ws, body, query, m, user):
    ws.policies.delete(body.get("policy_id", ""))
    return {}


@route("GET", "/permissions/cluster-policies/([^/]+)")
def policy_permissions_get(ws, body, query, m, user):
    return ws.policies.permissions(m.group(1))


@route("PUT", "/permissions/cluster-policies/([^/]+)")
def policy_permissions_put(ws, body, query, m, user):
    return ws.policies.put(m.group(1), body)


@route("PATCH", "/permissions/cluster-policies/([^/]+)")
def policy_permissions_patch(ws, body, query, m, user):
    return ws.policies.patch(m.group(1), body)


# -- workspace permission assignments ----------------------------------------------------------
# GET /api/2.0/preview/permissionassignments: who is assigned to the workspace, as USER or ADMIN
# (the workspace-scoped route the Terraform provider's databricks_permission_assignment uses).
@route("GET", "/preview/permissionassignments")
def permission_assignments(ws, body, query, m, user):
    return {"permission_assignments": ws.directory.assignments()}


@route("PUT", "/preview/permissionassignments/principals/([^/]+)")
def permission_assignment_put(ws, body, query, m, user):
    ws.directory.assign(m.group(1), body.get("permissions") or ["USER"])
    return {}


# -- account: SCIM groups and workspace assignments (identity federation) ---------------------
# Account SCIM (/api/2.0/accounts/{account_id}/scim/v2/Groups) and WorkspaceAssignmentAPI
# (/api/2.0/accounts/{account_id}/workspaces/{workspace_id}/permissionassignments...), as
# databricks-sdk 0.156's AccountClient calls them. This emulator is also its own account host.
ACCOUNT = "/accounts/([^/]+)"


def _account(ws, m, *, workspace: bool = False):
    """The account in the path must be this one; with `workspace`, the workspace id too."""
    if m.group(1) != ws.account_id:
        raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Account {m.group(1)} does not exist")
    if workspace and m.group(2) != str(ws.workspace_id):
        raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Workspace {m.group(2)} does not exist")


@route("GET", ACCOUNT + "/scim/v2/Groups")
def account_groups_list(ws, body, query, m, user):
    # "As of 08/22/2025, this endpoint will no longer return members. Instead, members should be
    # retrieved by iterating through Get group details" (databricks-sdk 0.156, AccountGroupsV2API.list).
    _account(ws, m)
    listed = ws.directory.list("Groups", query, account=True)
    for group in listed["Resources"]:
        group.pop("members", None)
    return listed


@route("POST", ACCOUNT + "/scim/v2/Groups")
def account_groups_create(ws, body, query, m, user):
    _account(ws, m)
    return ws.directory.create_group(body, account=True)


@route("GET", ACCOUNT + "/scim/v2/Groups/([^/]+)")
def account_groups_get(ws, body, query, m, user):
    _account(ws, m)
    return ws.directory.group_json(m.group(2))


@route("PATCH", ACCOUNT + "/scim/v2/Groups/([^/]+)")
def account_groups_patch(ws, body, query, m, user):
    _account(ws, m)
    ws.directory.patch_group(m.group(2), body, via_account=True)
    return None


@route("GET", ACCOUNT + "/workspaces/([^/]+)/permissionassignments")
def account_assignments(ws, body, query, m, user):
    _account(ws, m, workspace=True)
    return {"permission_assignments": ws.directory.assignments()}


@route("PUT", ACCOUNT + "/workspaces/([^/]+)/permissionassignments/principals/([^/]+)")
def account_assign(ws, body, query, m, user):
    _account(ws, m, workspace=True)
    ws.directory.assign(m.group(3), body.get("permissions") or ["USER"])
    return {"permissions": ws.directory.assigned[m.group(3)]}


# -- SCIM --------------------------------------------------------------------------------------
SCIM = "/preview/scim/v2"


@route("GET", SCIM + "/Me")
def scim_me(ws, body, query, m, user):
    uid = ws.directory.find_user(user)
    if uid is None:  # a service principal's token: /Me answers with its applicationId as userName
        sp = ws.directory.service_principal_json(ws.directory.find_principal(user))
        return {"id": sp["id"], "userName": sp["applicationId"], "displayName": sp["displayName"],
                "active": True, "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]}
    return ws.directory.user_json(uid)


@route("GET", SCIM + "/ServicePrincipals")
def scim_service_principals(ws, body, query, m, user):
    return ws.directory.list("ServicePrincipals", query)


@route("GET", SCIM + "/ServicePrincipals/([^/]+)")
def scim_service_principal(ws, body, query, m, user):
    return ws.directory.service_principal_json(m.group(1))


@route("POST", SCIM + "/ServicePrincipals")
def scim_create_service_principal(ws, body, query, m, user):
    return ws.directory.create_service_principal(body)


@route("GET", SCIM + "/(Users|Groups)")
def scim_list(ws, body, query, m, user):
    return ws.directory.list(m.group(1), query)


@route("POST", SCIM + "/Users")
def scim_create_user(ws, body, query, m, user):
    created = ws.directory.create_user(body)
    ws.tree.mkdirs(f"/Users/{created['userName']}")
    return created


@route("POST", SCIM + "/Groups")
def scim_create_group(ws, body, query, m, user):
    return ws.directory.create_group(body)


@route("GET", SCIM + "/Users/([^/]+)")
def scim_get_user(ws, body, query, m, user):
    return ws.directory.user_json(m.group(1))


@route("GET", SCIM + "/Groups/([^/]+)")
def scim_get_group(ws, body, query, m, user):
    return ws.directory.group_json(m.group(1))


@route("DELETE", SCIM + "/Users/([^/]+)")
def scim_delete_user(ws, body, query, m, user):
    ws.directory.delete_user(m.group(1))
    return None


@route("DELETE", SCIM + "/Groups/([^/]+)")
def scim_delete_group(ws, body, query, m, user):
    ws.directory.delete_group(m.group(1))
    return None


@route("PATCH", SCIM + "/Users/([^/]+)")
def scim_patch_user(ws, body, query, m, user):
    ws.directory.patch_user(m.group(1), body)
    return None


@route("PATCH", SCIM + "/Groups/([^/]+)")
def scim_patch_group(ws, body, query, m, user):
    ws.directory.patch_group(m.group(1), body)
    return None


# -- Unity Catalog (catalog.py) ---------------------------------------------------------------
def _ms(ws) -> int:
    return int(ws.clock.now().timestamp() * 1000)


@route("POST", "/unity-catalog/catalogs")
def uc_catalog_create(ws, body, query, m, user):
    return ws.catalog.create_catalog(body, user, _ms(ws))


@route("GET", "/unity-catalog/catalogs/([^/]+)")
def uc_catalog_get(ws, body, query, m, user):
    return ws.catalog.catalog(m.group(1))


@route("POST", "/unity-catalog/schemas")
def uc_schema_create(ws, body, query, m, user):
    return ws.catalog.create_schema(body, user, _ms(ws))


@route("GET", "/unity-catalog/schemas")
def uc_schema_list(ws, body, query, m, user):
    return ws.catalog.list_schemas(query.get("catalog_name", ""))


@route("GET", "/unity-catalog/schemas/([^/]+)")
def uc_schema_get(ws, body, query, m, user):
    return ws.catalog.schema(m.group(1))


@route("DELETE", "/unity-catalog/schemas/([^/]+)")
def uc_schema_delete(ws, body, query, m, user):
    ws.catalog.delete_schema(m.group(1), user, str(query.get("force", "")).lower() == "true")
    return {}


@route("GET", "/unity-catalog/permissions/([^/]+)/([^/]+)")
def uc_grants_get(ws, body, query, m, user):
    return ws.catalog.get_grants(m.group(1), m.group(2))


@route("PATCH", "/unity-catalog/permissions/([^/]+)/([^/]+)")
def uc_grants_update(ws, body, query, m, user):
    return ws.catalog.update_grants(m.group(1), m.group(2), body, user)


# -- workspace files and libraries -------------------------------------------------------------
@route("GET", "/workspace/list")
def workspace_list(ws, body, query, m, user):
    return ws.tree.list(query.get("path", ""))


@route("GET", "/workspace/get-status")
def workspace_status(ws, body, query, m, user):
    return ws.tree.get_status(query.get("path", ""))


@route("POST", "/workspace/mkdirs")
def workspace_mkdirs(ws, body, query, m, user):
    ws.tree.mkdirs(body.get("path", ""))
    return {}


@route("POST", "/workspace/import")
def workspace_import(ws, body, query, m, user):
    ws.tree.import_(body)
    return {}


@route("GET", "/workspace/export")
def workspace_export(ws, body, query, m, user):
    return ws.tree.export(query.get("path", ""), query.get("format", "SOURCE"))


@route("POST", "/workspace/delete")
def workspace_delete(ws, body, query, m, user):
    ws.tree.delete(body.get("path", ""), bool(body.get("recursive")))
    return {}


@route("GET", "/permissions/(directories|notebooks)/([^/]+)")
def workspace_permissions_get(ws, body, query, m, user):
    return ws.tree.permissions(m.group(2), m.group(1))


@route("PATCH", "/permissions/(directories|notebooks)/([^/]+)")
def workspace_permissions_patch(ws, body, query, m, user):
    return ws.tree.patch_permissions(m.group(2), m.group(1), body)


@route("POST", "/libraries/install")
def libraries_install(ws, body, query, m, user):
    cluster = ws.clusters.get(_cluster_id(body, query))
    ws.libraries.install(cluster.cluster_id, body.get("libraries") or [], cluster.state == "RUNNING")
    return {}


@route("GET", "/libraries/cluster-status")
def libraries_status(ws, body, query, m, user):
    return ws.libraries.status(ws.clusters.get(_cluster_id(body, query)).cluster_id)


# -- HTTP plumbing -----------------------------------------------------------------------------
class Query(dict):
    """Query parameters: the last value of each key, and every value through getall()."""

    def __init__(self, parsed: dict[str, list[str]]):
        super().__init__({k: v[-1] for k, v in parsed.items()})
        self._all = parsed

    def getall(self, key: str) -> list[str]:
        return list(self._all.get(key, []))


class _Done(Exception):
    """A control request answered outside the API routes."""


class _Handler(BaseHTTPRequestHandler):
    server_version = "teachinglab-sandbox/1"
    protocol_version = "HTTP/1.1"
    # Headers and body leave in one write: split writes on a keep-alive connection meet the
    # peer's delayed ACK and cost 40 ms per request.
    wbufsize = 1 << 16
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):  # keep test output quiet; the request log records calls
        logger.debug("sandbox: " + fmt, *args)

    def _dispatch(self, method: str) -> None:
        ws: Workspace = self.server.workspace  # type: ignore[attr-defined]
        parts = urlsplit(self.path)
        query = Query(parse_qs(parts.query))
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        status, payload, headers = 200, None, {}
        body: dict = {}
        if ws.latency:
            time.sleep(ws.latency)  # outside the lock: requests wait in parallel, as on a real server
        try:
            if parts.path == "/.well-known/databricks-config":
                raise ApiError(404, "NOT_FOUND", "No host metadata here")
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                raise ApiError(400, "MALFORMED_REQUEST", "Request body is not valid JSON") from None
            if parts.path == "/_sandbox/now" and method == "GET":
                ws.check_token(self.headers.get("Authorization"))
                payload = ws.now().isoformat()
                raise _Done()
            if parts.path == "/_sandbox/advance" and method == "POST":
                ws.check_token(self.headers.get("Authorization"))
                payload = {"now": ws.advance(float(body.get("seconds") or 0)).isoformat()}
                raise _Done()
            if not API_PREFIX.match(parts.path):
                raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{method} {parts.path}'")
            path = API_PREFIX.sub("", parts.path)
            user = ws.check_token(self.headers.get("Authorization"))
            fault = ws.take_fault(method, path)
            if fault is not None:
                raise ApiError(fault.status, fault.error_code, f"Injected fault ({fault.status})",
                               retry_after=fault.retry_after)
            for verb, pattern, fn in ROUTES:
                match = pattern.match(path)
                if verb == method and match:
                    with ws.lock:
                        ws.now()  # let scheduled transitions that are due happen first
                        payload = fn(ws, body, query, match, user)
                    break
            else:
                raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{method} {parts.path}'")
        except _Done:
            pass
        except ApiError as err:
            status, payload = err.status, err.body()
            if err.retry_after is not None:
                headers["Retry-After"] = str(err.retry_after)
        except Exception as err:  # noqa: BLE001 - the emulator answers like a server, not a crash
            logger.exception("sandbox handler failed")
            status, payload = 500, {"error_code": "INTERNAL_ERROR", "message": str(err)}
        with ws.lock:
            ws.requests.append(LoggedRequest(method, parts.path, status, body or None))
        data = json.dumps(payload if payload is not None else {}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        # Real workspaces name themselves on every response (WorkspaceClient.get_workspace_id
        # reads it from /preview/scim/v2/Me).
        self.send_header("X-Databricks-Org-Id", str(ws.workspace_id))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def do_DELETE(self):
        self._dispatch("DELETE")


class SandboxServer:
    """Runs a Workspace behind HTTP on 127.0.0.1 in a background thread.

    with SandboxServer(clock) as sandbox:
        WorkspaceClient(host=sandbox.url, token=sandbox.token)
    """

    def __init__(self, clock: SandboxClock | None = None, *, workspace: Workspace | None = None,
                 port: int = 0, token: str = "sandbox-token", admin: str = "admin@example.edu"):
        if workspace is None:
            from datetime import datetime, timezone
            workspace = Workspace(clock or SandboxClock(datetime.now(timezone.utc)),
                                  tokens={token: admin})
        self.workspace = workspace
        self.token = next(iter(workspace.tokens))
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.workspace = workspace  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "SandboxServer":
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="sandbox", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> "SandboxServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def inject(self, **kwargs) -> Fault:
        return self.workspace.inject(Fault(**kwargs))
