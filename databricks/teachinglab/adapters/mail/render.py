"""Rendering from Jinja2 templates: a pure function of the kind, the context and the template
folders. Delivery is somebody else's job (outbox + transports), as in c7n_mailer."""
from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # a type only: jinja2 is imported where it is used
    import jinja2

from databricks.teachinglab.core.messages import EVENTS, Rendered

logger = logging.getLogger(__name__)
PACKAGED_TEMPLATES = Path(__file__).parent / "templates"


@lru_cache(maxsize=8)
def _environment(override: str | None) -> "jinja2.Environment":
    import jinja2  # here, not at import: a command that renders nothing never loads it
    folders = ([override] if override else []) + [str(PACKAGED_TEMPLATES)]
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(folders),  # an override folder wins file by file
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default=False),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
    )


def render(kind: str, context: dict, *, templates_dir: Path | None = None) -> Rendered:
    """The message from the templates (MAIL_TEMPLATES_DIR over the packaged ones). A template that
    fails is that message's problem, never the run's: the packaged templates are tried next,
    then a plain fallback, and `problem` says what went wrong (the admin is told)."""
    if kind not in EVENTS:
        raise ValueError(f"unknown message kind {kind!r}")
    tried = []
    for folder in ([templates_dir, None] if templates_dir else [None]):
        try:
            rendered = _render(kind, context, folder)
        except Exception as err:  # noqa: BLE001 - a broken template must not stop enforcement
            tried.append(f"{'templates in ' + str(folder) if folder else 'the packaged templates'}: "
                         f"{type(err).__name__}: {err}")
            logger.error("message %s: %s", kind, tried[-1])
            continue
        return Rendered(rendered.subject, rendered.text, rendered.html, "; ".join(tried) or None)
    return _plain(kind, context, "; ".join(tried))


def _render(kind: str, context: dict, folder: Path | None) -> Rendered:
    env = _environment(str(folder) if folder else None)
    subject = " ".join(env.get_template(f"{kind}.subject.j2").render(context).split())
    ctx = {**context, "subject": subject}
    return Rendered(subject=subject,
                    text=env.get_template(f"{kind}.txt.j2").render(ctx).strip() + "\n",
                    html=env.get_template(f"{kind}.html.j2").render(ctx))


def _plain(kind: str, context: dict, problem: str) -> Rendered:
    """Every template failed: the facts as plain lines, so the message still says what happened."""
    import html
    lines = [f"{key}: {value}" for key, value in sorted(context.items())
             if isinstance(value, (str, int, float)) and not key.startswith("_")]
    subject = " ".join(f"[teaching lab] {kind.replace('_', ' ')}" .split())
    text = "\n".join([subject, "", *lines, "", f"(the message templates failed: {problem})"]) + "\n"
    return Rendered(subject, text, "<pre>" + html.escape(text) + "</pre>", problem)
