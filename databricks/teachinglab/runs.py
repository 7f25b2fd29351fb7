"""The run log of the cron jobs: a run that started and never ended was killed (cron's
`timeout`, a reboot), and nothing inside it could say so. The next run of the same job does:
it queues one alert per killed run. The wrappers also leave a journald line at err priority."""
from __future__ import annotations

import logging
from datetime import datetime

from .ledger import JobRun
from .messages import show_local
from .notify import queue_failure_alert

logger = logging.getLogger(__name__)


class RunKilled(Exception):
    """A previous run of the job ended without finishing."""


def begin_run(lab, job: str, now: datetime, pid: int | None = None) -> int:
    tz = lab.settings.timezone
    with lab.db.atomic():
        killed = list(JobRun.select().where((JobRun.job == job) & JobRun.finished_at.is_null()
                                            & JobRun.reported_at.is_null()).order_by(JobRun.id))
        for run in killed:
            logger.error("the %s run that started at %s did not finish (killed?); telling the admin",
                         job, show_local(run.started_at, tz))
            queue_failure_alert(lab, job, [("(an earlier run)", RunKilled(
                f"the {job} run that started at {show_local(run.started_at, tz)} never finished: it was "
                "killed, most likely by the cron wrapper's timeout (the workspace or the mail service was "
                "too slow) or by a reboot. This run went on from where the ledger stood."))], now)
            JobRun.update(reported_at=now).where(JobRun.id == run.id).execute()
        return JobRun.create(job=job, started_at=now, pid=pid).id


def end_run(run_id: int, now: datetime, exit_code: int) -> None:
    JobRun.update(finished_at=now, exit_code=exit_code).where(JobRun.id == run_id).execute()
