"""Who gets a message, and the failure alert every job sends when something did not finish."""
from __future__ import annotations

import hashlib
import logging
from datetime import datetime

from databricks.teachinglab.adapters.mail.outbox import enqueue
from databricks.teachinglab.adapters.mail.render import render
from databricks.teachinglab.core import accounting as acc
from databricks.teachinglab.core.errors import DeadlineReached, Failed
from databricks.teachinglab.core.messages import dedupe_key, show_local
from databricks.teachinglab.core.model import GroupInfo
from databricks.teachinglab.services.context import JobContext

logger = logging.getLogger(__name__)


def recipients_for(ctx: JobContext, group: GroupInfo | None) -> tuple[list[str], list[str]]:
    """The group's members, with the admin in copy; the admin alone when the group does not exist
    in the workspace (a lookup that failed never gets here: the poll retries it)."""
    admin_email = ctx.settings.mail.admin_email
    admin = [admin_email] if admin_email else []
    if group is None:
        return admin, []
    members = [p.email for p in group.members]
    return (members, admin) if members else (admin, [])


DEADLINE_SUMMARY = ("the run reached its deadline (POLL_DEADLINE_SECONDS) before it could finish: the "
                    "workspace was slow, unreachable or throttling requests (HTTP 429). What was measured "
                    "is recorded; the next run goes on from there.")


def _failed(item: Failed | BaseException) -> Failed:
    return item if isinstance(item, Failed) else Failed(item)


def one_deadline_entry(failures: list[tuple[str, Failed | BaseException]]) -> list[tuple[str, Failed]]:
    """Every call cut by the deadline is the same failure: one line, worded the same every time,
    so a throttled workspace gives one alert a day and not one per cluster per run."""
    failures = [(name, _failed(err)) for name, err in failures]
    cut = [name for name, f in failures if isinstance(f.error, DeadlineReached)]
    rest = [(name, f) for name, f in failures if not isinstance(f.error, DeadlineReached)]
    if cut:
        logger.error("deadline reached: %d item(s) not finished this run: %s", len(cut), ", ".join(cut[:10]))
        rest.append(("(run deadline)", Failed(DeadlineReached(DEADLINE_SUMMARY))))
    return rest


def queue_failure_alert(ctx: JobContext, job: str, failures: list[tuple[str, Failed | BaseException]],
                        now: datetime, *, once_a_day: bool = False) -> None:
    """One alert per job run with failures; the same failures on the same day are not re-sent.
    `once_a_day`: one alert a day for this job, whatever fails (undeliverable mail: a message
    about each one would only add to the pile)."""
    tz = ctx.settings.quota.timezone
    items = [{"cluster": name, "error": f"{f.kind}: {f.error}", "traceback": f.traceback}
             for name, f in one_deadline_entry(failures)]
    signature = hashlib.sha256("|".join(sorted(f"{i['cluster']}:{i['error']}" for i in items))
                               .encode()).hexdigest()[:12]
    admin_email = ctx.settings.mail.admin_email
    context = {"job": job, "at": show_local(now, tz), "tz_name": tz.key, "failures": items,
               "contact": admin_email or "the lab admin"}
    enqueue(kind="failure", key=dedupe_key("failure", job if once_a_day else f"{job}-{signature}", acc.local_day(now, tz)),
            to=[admin_email or ""], rendered=render(
                "failure", context, templates_dir=ctx.settings.mail.templates_dir), now=now)
