"""SQL warehouses and the one statement the emulator answers: DBUs per cluster and local day from
system.billing.usage, computed from the workspace's own cluster events.

Modelled on the SQL Statement Execution API (databricks-sdk service/sql.py, StatementExecutionAPI;
docs "Statement Execution API"):
- POST /sql/statements answers 200 with status.state SUCCEEDED, PENDING, RUNNING, FAILED or
  CANCELED; a statement that fails to run is a 200 with FAILED and status.error, a request that
  is refused (unknown warehouse) a non-200;
- with wait_timeout and on_wait_timeout=CONTINUE a statement not done yet comes back PENDING and is
  polled with GET /sql/statements/{id}; POST /sql/statements/{id}/cancel cancels it;
- a stopped warehouse starts on a statement: PENDING until it runs (serverless in seconds, classic
  in minutes);
- results INLINE as JSON_ARRAY: every value a string.

Billing itself (docs "Billable usage system table reference"): hourly records with
usage_start_time in UTC, usage_quantity in DBU, usage_metadata.cluster_id. DBUs accrue while a
cluster is usable, per node actually present (a downsize's nodes until its decommission ends:
clusters.Cluster.node_log, not the events) at the node type's DBU rate, Photon's when the
cluster runs Photon ("Photon instance types consume DBUs at a different rate than the same
instance type running the non-Photon runtime", Photon docs); `skew` scales them, to model
billing that differs from what events show.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from .errors import ApiError
from .serverless import COLUMNS as SERVERLESS_COLUMNS

# Azure list DBU rates per node for all-purpose compute (the packaged price table's figures), and
# Photon's: twice as many here, as the packaged table assumes.
DBU_PER_HOUR = {"Standard_DS3_v2": 0.75, "Standard_DS4_v2": 1.5, "Standard_DS5_v2": 3.0,
                "Standard_D4ds_v5": 1.0, "Standard_D8ds_v5": 2.0, "Standard_E4ds_v4": 1.0, "Standard_F4s": 0.5}
PHOTON_FACTOR = 2.0
HOUR = timedelta(hours=1)
CLUSTER_COLUMNS = [("cluster_id", "STRING"), ("start_s", "BIGINT"), ("end_s", "BIGINT"), ("dbus", "DOUBLE")]


@dataclass
class Warehouse:
    warehouse_id: str
    state: str = "RUNNING"            # RUNNING | STOPPED
    start_seconds: float = 60.0       # how long a stopped one takes to start (simulated time)
    refuse: str | None = None         # a FAILED statement's message (e.g. no access to system.billing)
    started_at: datetime | None = None
    serverless: bool = False


@dataclass
class Statement:
    statement_id: str
    warehouse: Warehouse
    rows: list[list[str]]
    state: str = "PENDING"
    error: dict | None = None
    columns: list[tuple[str, str]] = field(default_factory=lambda: list(CLUSTER_COLUMNS))


@dataclass
class Warehouses:
    warehouses: dict[str, Warehouse] = field(default_factory=dict)
    statements: dict[str, Statement] = field(default_factory=dict)
    skew: float = 1.0
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def add(self, warehouse_id: str, **kwargs) -> Warehouse:
        self.warehouses[warehouse_id] = Warehouse(warehouse_id, **kwargs)
        return self.warehouses[warehouse_id]

    def execute(self, body: dict, clusters, now: datetime, serverless=None) -> dict:
        warehouse = self.warehouses.get(body.get("warehouse_id") or "")
        if warehouse is None:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Warehouse {body.get('warehouse_id')} does not exist.")
        params = {p["name"]: p.get("value") for p in body.get("parameters") or []}
        statement = Statement(f"01ef-{next(self._ids):06d}", warehouse, [])
        text = " ".join((body.get("statement") or "").split()).lower()
        serverless_query = "product_features.is_serverless" in text and "since" in params and serverless is not None
        cluster_query = "from system.billing.usage" in text and {"start", "end"} <= params.keys()
        if not (serverless_query or cluster_query):
            statement.state, statement.error = "FAILED", {
                "error_code": "BAD_REQUEST", "message": "the emulated workspace answers only the billing statements "
                                                        "(system.billing.usage with :start and :end, epoch seconds; "
                                                        "or serverless records with :since)"}
        elif warehouse.refuse:
            statement.state, statement.error = "FAILED", {"error_code": "BAD_REQUEST", "message": warehouse.refuse}
        else:
            # The serverless statement (services/serverless.py): its records as ingested by now;
            # the cluster one: DBUs per cluster and hour.
            if serverless_query:
                statement.rows, statement.columns = serverless.rows(params, now), list(SERVERLESS_COLUMNS)
            else:
                statement.rows = self._billing_rows(clusters, params, now)
            if warehouse.state == "STOPPED" and warehouse.started_at is None:
                warehouse.started_at = now + timedelta(seconds=warehouse.start_seconds)
        self.statements[statement.statement_id] = statement
        return self.status(statement.statement_id, now)

    def status(self, statement_id: str, now: datetime) -> dict:
        statement = self.statements.get(statement_id)
        if statement is None:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Statement {statement_id} does not exist.")
        warehouse = statement.warehouse
        if warehouse.state == "STOPPED" and warehouse.started_at is not None and now >= warehouse.started_at:
            warehouse.state = "RUNNING"
        if statement.state == "PENDING" and warehouse.state == "RUNNING":
            statement.state = "SUCCEEDED"
        out = {"statement_id": statement.statement_id, "status": {"state": statement.state}}
        if statement.error:
            out["status"]["error"] = statement.error
        if statement.state == "SUCCEEDED":
            columns = statement.columns
            out["manifest"] = {"format": "JSON_ARRAY", "total_chunk_count": 1, "total_row_count": len(statement.rows),
                               "schema": {"column_count": len(columns), "columns": [
                                   {"name": n, "type_name": t, "type_text": t, "position": i}
                                   for i, (n, t) in enumerate(columns)]}}
            out["result"] = {"chunk_index": 0, "row_offset": 0, "row_count": len(statement.rows),
                             "data_array": statement.rows}
        return out

    def cancel(self, statement_id: str) -> dict:
        statement = self.statements.get(statement_id)
        if statement is not None and statement.state in ("PENDING", "RUNNING"):
            statement.state = "CANCELED"
        return {}

    def _billing_rows(self, clusters, params: dict, now: datetime) -> list[list[str]]:
        """One record per cluster and UTC hour, as the table keeps them: usage_start_time and
        usage_end_time (epoch seconds here, as unix_timestamp gives them) and the DBUs."""
        start, end = (datetime.fromtimestamp(int(params[k]), tz=timezone.utc) for k in ("start", "end"))
        rows = []
        for cluster in clusters.clusters.values():
            for hour, dbus in sorted(_hourly_dbus(cluster, min(now, end)).items()):
                if start <= hour < end:
                    began = int(hour.timestamp())
                    rows.append([cluster.cluster_id, str(began), str(began + 3600), repr(round(dbus * self.skew, 6))])
        return rows

    def list(self) -> dict:
        """SQL Warehouses API "list"."""
        return {"warehouses": [self.get(w) for w in sorted(self.warehouses)]}

    def get(self, warehouse_id: str) -> dict:
        """SQL Warehouses API "get": its state (STOPPED until a statement starts it)."""
        warehouse = self.warehouses.get(warehouse_id)
        if warehouse is None:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Warehouse {warehouse_id} does not exist.")
        return {"id": warehouse.warehouse_id, "name": warehouse.warehouse_id, "state": warehouse.state,
                "enable_serverless_compute": warehouse.serverless}


def _hourly_dbus(cluster, until: datetime) -> dict[datetime, float]:
    """DBUs per UTC hour (usage_start_time), from the nodes the cluster really had."""
    factor = PHOTON_FACTOR if cluster.spec.get("runtime_engine") == "PHOTON" else 1.0
    rate = DBU_PER_HOUR.get(cluster.spec.get("node_type_id") or "", 1.0) * factor
    driver_rate = DBU_PER_HOUR.get(cluster.spec.get("driver_node_type_id") or "", rate / factor) * factor
    out: dict[datetime, float] = {}

    def book(a: datetime, b: datetime, nodes: int) -> None:
        per_hour = driver_rate + (nodes - 1) * rate
        while a < b:
            hour = a.replace(minute=0, second=0, microsecond=0)
            piece_end = min(b, hour + HOUR)
            out[hour] = out.get(hour, 0.0) + per_hour * (piece_end - a).total_seconds() / 3600
            a = piece_end

    log = [(at.astimezone(timezone.utc), nodes) for at, nodes in cluster.node_log]
    end = until.astimezone(timezone.utc)
    for (at, nodes), (following, _) in zip(log, [*log[1:], (end, None)]):
        if nodes is not None and at < end:
            book(at, min(following, end), nodes)
    return out
