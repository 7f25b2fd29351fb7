"""Messages as data: kinds and their event header, the rendered text, the finished message a
transport receives, and the small formatting helpers the templates share. Pure."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from databricks.teachinglab.core.accounting import day_start, local_day
from databricks.teachinglab.core.quota import Limits

# kind -> X-Teachinglab-Event header value, so admins can write mail rules
EVENTS = {
    "warning": "quota-warning",
    "termination": "quota-termination",
    "retermination": "quota-retermination",
    "block_undone": "quota-block-undone",
    "tag_drift": "lab-cluster-tags-changed",
    "serverless_blocked": "serverless-blocked",
    "failure": "failure",
    "daily_report": "daily-report",
    "test": "test",
}
EVENT_HEADER = "X-Teachinglab-Event"


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str
    problem: str | None = None   # the templates failed and this is a fallback: why, for the admin


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes
    content_id: str | None = None   # set for an image shown inline in the HTML part


@dataclass(frozen=True)
class OutgoingMail:
    """A finished message, as a transport receives it: nothing to look up, nothing to change.
    `attempts` counts this one; `accepted` says a service took it before and may still be on it."""
    dedupe_key: str
    event: str
    sender: str
    to_addrs: str                   # comma-separated
    cc_addrs: str
    subject: str
    text_body: str
    html_body: str
    attachments: tuple[Attachment, ...] = ()
    attempts: int = 1
    accepted: bool = False
    outbox_id: int | None = None


def minutes(ms: int) -> int:
    """Whole minutes used, rounded down, so a message never claims more than was used."""
    return ms // 60_000


def quota_figures(limits: Limits, used: int, used_ms: int, granted: float = 0) -> dict:
    """The quota numbers every quota message shows: in the quota unit, with minutes beside it.
    `used` and the limits are integer amounts of the unit; `granted` is in the unit."""
    unit = limits.unit
    return {"quota_unit": unit.name, "used_minutes": minutes(used_ms),
            "limit_minutes": limits.hard // unit.scale if unit.name == "minutes" else None,
            "used_amount": unit.show(used), "limit_amount": unit.show(limits.hard),
            "warn_amount": unit.show(limits.warn),
            "granted_minutes": int(granted) if unit.name == "minutes" else 0,
            "granted_amount": (None if not granted else f"{granted:g} extra minutes" if unit.name == "minutes"
                               else f"an extra {unit.show(unit.of(granted))}"),
            "usage_line": _usage_line(limits, used, used_ms, " of its "),
            "usage_short": _usage_line(limits, used, used_ms, " of ", beside=False),
            "cap": limits.cap, "warn_cap": limits.warn_cap, "refills": limits.refills,
            "bank_amount": unit.show(limits.bank) if limits.bank else None,
            "period_lines": [f"this {'week' if cap == 'weekly' else 'semester'}: {unit.number(before + used)} of "
                             f"{unit.show(total)}" for cap, before, total in limits.spans]}


def _usage_line(limits: Limits, used: int, used_ms: int, of: str, beside: bool = True) -> str:
    """"405 of its 480 minutes"; "4.25 of its 6.00 DBU (405 minutes of uptime)"."""
    unit = limits.unit
    if unit.name == "minutes":
        return f"{minutes(used_ms)}{of}{limits.hard // unit.scale} {'cluster ' if not beside else ''}minutes"
    tail = f" ({minutes(used_ms)} minutes of uptime)" if beside else ""
    return f"{unit.number(used)}{of}{unit.show(limits.hard)}{tail}"


def show_local(at: datetime, tz: ZoneInfo) -> str:
    return at.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")


def quota_resets_at(now: datetime, tz: ZoneInfo) -> str:
    """Local midnight that starts the next quota day."""
    return show_local(day_start(local_day(now, tz) + timedelta(days=1), tz), tz)


def dedupe_key(kind: str, subject_id: str, day: date | str) -> str:
    return f"{kind}:{subject_id}:{day}"


@dataclass(frozen=True)
class FailureItem:
    """One thing a job could not do: what (a cluster, "(the cluster list)", "(the ledger)"), the
    cause and the fix in one line, and a traceback only when nobody expected the error."""
    subject: str
    line: str
    traceback: str = ""


SHOWN_NAMES = 20  # a handled list longer than this is cut, with a count of the rest


def failure_context(job: str, at: str, tz_name: str, items: list[FailureItem], *, handled: list[str] | None,
                    contact: str, log_hint: str) -> dict:
    """What the failure templates show. `handled`: the clusters this run did handle (None when the
    job does not work cluster by cluster, or nothing could be measured at all: then the mail says
    that instead of claiming the others were handled)."""
    shown = sorted(handled or [])
    return {"job": job, "at": at, "tz_name": tz_name, "contact": contact, "log_hint": log_hint,
            "causes": [{"subject": i.subject, "line": i.line} for i in items],
            "unexpected": [{"subject": i.subject, "traceback": i.traceback} for i in items if i.traceback],
            "not_handled": [i.subject for i in items],
            "handled_known": handled is not None, "handled_count": len(shown),
            "handled_names": shown[:SHOWN_NAMES], "handled_more": max(0, len(shown) - SHOWN_NAMES)}
