"""Billed DBUs per cluster and local day from system.billing.usage, through the SQL Statement
Execution API on the warehouse DATABRICKS_WAREHOUSE_ID: the nightly close's reconciliation.

Optional, and never in the way: a warehouse that is stopped (and too slow to start), busy, or
refuses the query (no access to the system catalog, say) leaves the report without the column
and says why; the close finishes all the same.
"""
from __future__ import annotations

import logging
from datetime import date, datetime, timedelta, timezone

from databricks.teachinglab.core import accounting as acc
from databricks.teachinglab.core.model import StatementResult
from databricks.teachinglab.core.reconcile import Billing, by_local_day
from databricks.teachinglab.services.context import JobContext

logger = logging.getLogger(__name__)

# system.billing.usage (docs: "Billable usage system table reference"): hourly records, times in
# UTC, usage_quantity in DBU for compute, the cluster in usage_metadata.cluster_id, account-wide
# (hence the workspace filter). Times travel as epoch seconds both ways (unix_timestamp and
# timestamp_seconds do not depend on the warehouse session's time zone, as a cast to a date or a
# string would); the product books records to local days itself (core/reconcile.by_local_day).
STATEMENT = """
SELECT usage_metadata.cluster_id AS cluster_id,
       unix_timestamp(usage_start_time) AS start_s,
       unix_timestamp(usage_end_time) AS end_s,
       CAST(SUM(usage_quantity) AS DOUBLE) AS dbus
FROM system.billing.usage
WHERE usage_unit = 'DBU'
  AND usage_metadata.cluster_id IS NOT NULL
  AND workspace_id = :workspace_id
  AND usage_start_time >= timestamp_seconds(CAST(:start AS BIGINT))
  AND usage_start_time < timestamp_seconds(CAST(:end AS BIGINT))
GROUP BY 1, 2, 3
"""


def run_statement(ctx: JobContext, statement: str, params: dict[str, str], *, what: str,
                  budget_seconds: float | None = None) -> StatementResult | str:
    """One billing statement on DATABRICKS_WAREHOUSE_ID (the workspace id added to `params`): its
    result, or why there is none (a stopped warehouse left so, one too slow to start, a refusal).
    Never raises: what reads the bill is optional and never in the way."""
    warehouse = ctx.settings.workspace.warehouse_id
    source = f"warehouse {warehouse}"
    budget = ctx.settings.workspace.warehouse_wait_seconds if budget_seconds is None else budget_seconds
    try:
        state = ctx.workspace.warehouse_state(warehouse)
        if state in ("STOPPED", "STOPPING"):
            if ctx.settings.workspace.warehouse_start == "never":
                why = (f"billing not checked: {source} is stopped, and WAREHOUSE_START=never leaves it so (a "
                       "serverless warehouse starts in seconds and costs nothing while stopped)")
                logger.warning("%s", why)
                return why
            logger.warning("%s is %s: starting it to read the bill (it runs until its own auto-stop; a classic one "
                           "takes minutes to start, a serverless one seconds; WAREHOUSE_START=never leaves it "
                           "stopped)", source, state.lower())
        params = {"workspace_id": str(ctx.workspace.workspace_id()), **params}
        result = ctx.workspace.sql(warehouse, statement, params, budget_seconds=budget)
    except Exception as err:  # noqa: BLE001 - the report says why, the job goes on
        why = (f"the billing query could not be sent to {source} ({type(err).__name__}: {err}); check "
               "DATABRICKS_WAREHOUSE_ID and that the token may use the warehouse")
        logger.error("%s left out: %s", what, why)
        return why
    if result.state != "SUCCEEDED":
        why = (f"{source} did not answer within {budget:g} s (stopped and starting, or busy): {result.error}"
               if result.state == "TIMEOUT" else f"{source} could not run the billing query ({result.error})")
        logger.error("%s left out: %s", what, why)
        return why
    return result


def billed_dbus(ctx: JobContext, days: list[date]) -> Billing | None:
    """None when no warehouse is configured; otherwise the figures, or why there are none."""
    warehouse = ctx.settings.workspace.warehouse_id
    if not warehouse or not days:
        return None
    tz = ctx.settings.quota.timezone
    wanted = tuple(sorted(days))
    source = f"warehouse {warehouse}"
    # Each record's start, a little before the first day: a record that began before local
    # midnight in UTC may reach into it (half-hour zones); by_local_day books only what falls in.
    params = {"start": str(int((acc.day_start(wanted[0], tz) - timedelta(hours=1)).timestamp())),
              "end": str(int(acc.day_start(wanted[-1] + timedelta(days=1), tz).timestamp()))}
    result = run_statement(ctx, STATEMENT, params, what="billing reconciliation")
    if isinstance(result, str):
        return Billing(wanted, error=result, source=source)
    records = []
    for row in result.rows:
        try:
            start, end = (datetime.fromtimestamp(int(float(v)), tz=timezone.utc) for v in (row[1], row[2]))
            records.append((str(row[0]), start, max(start, end), float(row[3])))
        except (TypeError, ValueError, IndexError, OverflowError):
            logger.warning("billing row %r not understood; left out", row)
    dbus = {key: v for key, v in by_local_day(records, tz).items() if key[1] in wanted}
    logger.info("billing: %d cluster-day(s) billed for %s to %s (%s)", len(dbus), wanted[0], wanted[-1], source)
    return Billing(wanted, dbus, source=source)
