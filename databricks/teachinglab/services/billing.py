"""Billed DBUs per cluster and local day from system.billing.usage, through the SQL Statement
Execution API on the warehouse DATABRICKS_WAREHOUSE_ID: the nightly close's reconciliation.

Optional, and never in the way: a warehouse that is stopped (and too slow to start), busy, or
refuses the query (no access to the system catalog, say) leaves the report without the column
and says why; the close finishes all the same.
"""
from __future__ import annotations

import logging
from datetime import date, timedelta

from databricks.teachinglab.core import accounting as acc
from databricks.teachinglab.core.reconcile import Billing
from databricks.teachinglab.services.context import JobContext

logger = logging.getLogger(__name__)

# system.billing.usage (docs: "Billable usage system table reference"): hourly records, times in
# UTC, usage_quantity in DBU for compute, the cluster in usage_metadata.cluster_id, account-wide
# (hence the workspace filter). Local days: from_utc_timestamp with the quota's time zone.
STATEMENT = """
SELECT usage_metadata.cluster_id AS cluster_id,
       CAST(to_date(from_utc_timestamp(usage_start_time, :tz)) AS STRING) AS day,
       CAST(SUM(usage_quantity) AS DOUBLE) AS dbus
FROM system.billing.usage
WHERE usage_unit = 'DBU'
  AND usage_metadata.cluster_id IS NOT NULL
  AND workspace_id = :workspace_id
  AND usage_start_time >= CAST(:start AS TIMESTAMP)
  AND usage_start_time < CAST(:end AS TIMESTAMP)
GROUP BY 1, 2
"""


def billed_dbus(ctx: JobContext, days: list[date]) -> Billing | None:
    """None when no warehouse is configured; otherwise the figures, or why there are none."""
    warehouse = ctx.settings.workspace.warehouse_id
    if not warehouse or not days:
        return None
    tz = ctx.settings.quota.timezone
    wanted = tuple(sorted(days))
    source = f"warehouse {warehouse}"
    budget = ctx.settings.workspace.warehouse_wait_seconds
    try:
        params = {"tz": tz.key, "workspace_id": str(ctx.workspace.workspace_id()),
                  "start": acc.day_start(wanted[0], tz).isoformat(),
                  "end": acc.day_start(wanted[-1] + timedelta(days=1), tz).isoformat()}
        result = ctx.workspace.sql(warehouse, STATEMENT, params, budget_seconds=budget)
    except Exception as err:  # noqa: BLE001 - the report says why, the close goes on
        why = (f"the billing query could not be sent to {source} ({type(err).__name__}: {err}); check "
               "DATABRICKS_WAREHOUSE_ID and that the token may use the warehouse")
        logger.error("billing reconciliation left out: %s", why)
        return Billing(wanted, error=why, source=source)
    if result.state != "SUCCEEDED":
        why = (f"{source} did not answer within {budget:g} s (stopped and starting, or busy): {result.error}"
               if result.state == "TIMEOUT" else f"{source} could not run the billing query ({result.error})")
        logger.error("billing reconciliation left out: %s", why)
        return Billing(wanted, error=why, source=source)
    dbus: dict[tuple[str, date], float] = {}
    for row in result.rows:
        try:
            key = (str(row[0]), date.fromisoformat(str(row[1])))
            dbus[key] = dbus.get(key, 0.0) + float(row[2])
        except (TypeError, ValueError, IndexError):
            logger.warning("billing row %r not understood; left out", row)
    logger.info("billing: %d cluster-day(s) billed for %s to %s (%s)", len(dbus), wanted[0], wanted[-1], source)
    return Billing(wanted, dbus, source=source)
