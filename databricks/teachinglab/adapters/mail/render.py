"""Rendering from Jinja2 templates: a pure function of the kind, the context and the template
folders. Delivery is somebody else's job (outbox + transports), as in c7n_mailer."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import jinja2

from databricks.teachinglab.core.messages import EVENTS, Rendered

PACKAGED_TEMPLATES = Path(__file__).parent / "templates"


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
