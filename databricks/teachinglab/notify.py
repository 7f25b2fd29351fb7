"""Who gets a message, and the failure alert every job sends when something did not finish."""
from __future__ import annotations

import hashlib
import logging
from datetime import datetime

from . import accounting as acc
from .errors import DeadlineReached
from .messages import dedupe_key, render, show_local
from .model import GroupInfo
from .outbox import enqueue

logger = logging.getLogger(__name__)


def recipients_for(lab, group: GroupInfo | None) -> tuple[list[str], list[str]]:
    """The group's members, with the admin in copy; the admin alone when the group does not exist
    in the workspace (a lookup that failed never gets here: the poll retries it)."""
    admin = [lab.settings.admin_email] if lab.settings.admin_email else []
    if group is None:
        return admin, []
    members = [p.email for p in group.members]
    return (members, admin) if members else (admin, [])


DEADLINE_SUMMARY = ("the run reached its deadline (POLL_DEADLINE_SECONDS) before it could finish: the "
                    "workspace was slow, unreachable or throttling requests (HTTP 429). What was measured "
                    "is recorded; the next run goes on from there.")


def one_deadline_entry(failures: list[tuple[str, Exception]]) -> list[tuple[str, Exception]]:
    """Every call cut by the deadline is the same failure: one line, worded the same every time,
    so a throttled workspace gives one alert a day and not one per cluster per run."""
    cut = [name for name, err in failures if isinstance(err, DeadlineReached)]
    rest = [(name, err) for name, err in failures if not isinstance(err, DeadlineReached)]
    if cut:
        logger.error("deadline reached: %d item(s) not finished this run: %s", len(cut), ", ".join(cut[:10]))
        rest.append(("(run deadline)", DeadlineReached(DEADLINE_SUMMARY)))
    return rest


def queue_failure_alert(lab, job: str, failures: list[tuple[str, Exception]], now: datetime) -> None:
    """One alert per job run with failures; the same failures on the same day are not re-sent."""
    failures = one_deadline_entry(failures)
    tz = lab.settings.timezone
    items = [{"cluster": name, "error": f"{type(err).__name__}: {err}",
              "traceback": getattr(err, "__traceback_text__", "")} for name, err in failures]
    signature = hashlib.sha256("|".join(sorted(f"{i['cluster']}:{i['error']}" for i in items))
                               .encode()).hexdigest()[:12]
    context = {"job": job, "at": show_local(now, tz), "tz_name": tz.key, "failures": items,
               "contact": lab.settings.admin_email or "the lab admin"}
    enqueue(kind="failure", key=dedupe_key("failure", f"{job}-{signature}", acc.local_day(now, tz)),
            to=[lab.settings.admin_email or ""], rendered=render(
                "failure", context, templates_dir=lab.settings.mail_templates_dir), now=now)
