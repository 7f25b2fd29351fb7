"""Messages: kinds, their event header, and rendering from Jinja2 templates.

Rendering is a pure function of the kind, the context and the template folders; delivery is
somebody else's job (outbox + transports), as in c7n_mailer.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2

from .accounting import day_start, local_day

PACKAGED_TEMPLATES = Path(__file__).parent / "templates"

# kind -> X-Teachinglab-Event header value, so admins can write mail rules
EVENTS = {
    "warning": "quota-warning",
    "termination": "quota-termination",
    "retermination": "quota-retermination",
    "block_undone": "quota-block-undone",
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


@lru_cache(maxsize=8)
def _environment(override: str | None) -> jinja2.Environment:
    folders = ([override] if override else []) + [str(PACKAGED_TEMPLATES)]
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(folders),  # an override folder wins file by file
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default=False),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
    )


def render(kind: str, context: dict, *, templates_dir: Path | None = None) -> Rendered:
    if kind not in EVENTS:
        raise ValueError(f"unknown message kind {kind!r}")
    env = _environment(str(templates_dir) if templates_dir else None)
    subject = " ".join(env.get_template(f"{kind}.subject.j2").render(context).split())
    ctx = {**context, "subject": subject}
    return Rendered(subject=subject,
                    text=env.get_template(f"{kind}.txt.j2").render(ctx).strip() + "\n",
                    html=env.get_template(f"{kind}.html.j2").render(ctx))


def minutes(ms: int) -> int:
    """Whole minutes used, rounded down, so a message never claims more than was used."""
    return ms // 60_000


def show_local(at: datetime, tz: ZoneInfo) -> str:
    return at.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")


def quota_resets_at(now: datetime, tz: ZoneInfo) -> str:
    """Local midnight that starts the next quota day."""
    return show_local(day_start(local_day(now, tz) + timedelta(days=1), tz), tz)


def dedupe_key(kind: str, subject_id: str, day: date | str) -> str:
    return f"{kind}:{subject_id}:{day}"
