"""The run log of the cron jobs: a run that started and never ended was killed (cron's
`timeout`, a reboot), and nothing inside it could say so. The next run of the same job does:
it queues one alert per killed run. The wrappers also leave a journald line at err priority."""
from __future__ import annotations

import logging
from datetime import datetime

from databricks.teachinglab.adapters.ledger import repository as ledger
from databricks.teachinglab.core.messages import show_local
from databricks.teachinglab.core.errors import Expected
from databricks.teachinglab.services.alerts import queue_failure_alert
from databricks.teachinglab.services.context import JobContext

logger = logging.getLogger(__name__)


class RunKilled(Expected):
    """A previous run of the job ended without finishing."""


def begin_run(ctx: JobContext, job: str, now: datetime, pid: int | None = None) -> int:
    tz = ctx.settings.quota.timezone
    with ledger.transaction():
        for run in ledger.unreported_unfinished_runs(job):
            logger.error("the %s run that started at %s did not finish (killed?); telling the admin",
                         job, show_local(run.started_at, tz))
            queue_failure_alert(ctx, job, [("(an earlier run)", RunKilled(
                f"the {job} run that started at {show_local(run.started_at, tz)} never finished: it was "
                "killed, most likely by the cron wrapper's timeout (the workspace or the mail service was "
                "too slow) or by a reboot. This run went on from where the ledger stood."))], now)
            ledger.mark_run_reported(run.id, now)
        return ledger.start_run(job, now, pid)


def end_run(run_id: int, now: datetime, exit_code: int) -> None:
    ledger.end_run(run_id, now, exit_code)
