"""Who gets a message, and the failure alert every job sends when something did not finish."""
from __future__ import annotations

import hashlib
import logging
from datetime import datetime

from databricks.teachinglab.adapters.mail.outbox import enqueue
from databricks.teachinglab.adapters.mail.render import render
from databricks.teachinglab.core import accounting as acc
from databricks.teachinglab.core.errors import DeadlineReached, Expected, Failed, LedgerUnavailable, MessageProblem
from databricks.teachinglab.core.messages import FailureItem, dedupe_key, failure_context, show_local
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


def diagnose(error: BaseException) -> tuple[str, bool]:
    """The cause and what to do, in one line, and whether the error was expected (a workspace,
    ledger or mail failure the product knows; else a bug, whose traceback the alert attaches)."""
    from databricks.teachinglab.adapters.workspace import failure_cause
    if isinstance(error, DeadlineReached):
        return DEADLINE_SUMMARY, True
    if isinstance(error, (MessageProblem, LedgerUnavailable, Expected)):
        return " ".join(str(error).split()), True
    text = " ".join(str(error).split())[:300]
    cause = failure_cause(error)
    lines = {
        "auth": "the workspace refused the token: create a new one (User settings > Developer > Access tokens) "
                "and set DATABRICKS_TOKEN in .env (or fix the auth profile)",
        "permission": f"the workspace refused this to the tool's identity ({text}): make the token's user or "
                      "service principal a workspace admin",
        "not_found": f"it no longer exists in the workspace ({text}): nothing to do if it was deleted on purpose",
        "network": "cannot reach the workspace: check DATABRICKS_HOST and the VM's network "
                   "(curl -sI the host); nothing to do if it passes",
        "hung": "the workspace accepted the connection but never answered: it is down or hung (see "
                "https://status.azuredatabricks.net); nothing to do unless it lasts",
        "throttled": "the workspace throttled requests (HTTP 429) until the run's deadline: nothing to do unless "
                     "it lasts; lower API_PARALLELISM if it does",
        "deadline": DEADLINE_SUMMARY,
        "api": f"the workspace answered with an error ({type(error).__name__}: {text}): tried again on the next run; "
               "if it lasts, check the object in the workspace",
    }
    if cause in lines:
        return lines[cause], True
    return f"unexpected error ({type(error).__name__}: {text}): a bug; please report it with the traceback below", False


def queue_failure_alert(ctx: JobContext, job: str, failures: list[tuple[str, Failed | BaseException]],
                        now: datetime, *, once_a_day: bool = False, handled: list[str] | None = None) -> None:
    """One alert per job run with failures; the same failures on the same day are not re-sent.
    `handled`: the clusters the run did handle (None: the job does not go cluster by cluster, or
    nothing was). `once_a_day`: one alert a day for this job, whatever fails (undeliverable mail:
    a message about each one would only add to the pile)."""
    tz = ctx.settings.quota.timezone
    items = []
    for name, f in one_deadline_entry(failures):
        line, expected = diagnose(f.error)
        items.append(FailureItem(name, line, "" if expected else (f.traceback or "(no traceback)")))
    # Keyed by the diagnosis, not the raw error text (which may carry a request id or a time), so
    # the same cause on the same day is one alert.
    signature = hashlib.sha256("|".join(sorted(f"{i.subject}:{i.line}" for i in items))
                               .encode()).hexdigest()[:12]
    admin_email = ctx.settings.mail.admin_email
    context = failure_context(job, show_local(now, tz), tz.key, items, handled=handled,
                              contact=admin_email or "the lab admin", log_hint=ctx.settings.logging.hint)
    enqueue(kind="failure", key=dedupe_key("failure", job if once_a_day else f"{job}-{signature}", acc.local_day(now, tz)),
            to=[admin_email or ""], rendered=render(
                "failure", context, templates_dir=ctx.settings.mail.templates_dir), now=now)
