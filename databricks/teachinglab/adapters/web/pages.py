"""HTML pages (the students' page, the simulator's report) from packaged Jinja2 templates: a pure
function of the page's name and its context, autoescaped. Serving them is the CLI's job."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # a type only: jinja2 is imported where it is used
    import jinja2

TEMPLATES = Path(__file__).parent / "templates"


@lru_cache(maxsize=1)
def _environment() -> "jinja2.Environment":
    import jinja2  # here, not at import: a command that renders nothing never loads it
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined,
                              autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default=True))


def render_page(name: str, **context) -> str:
    return _environment().get_template(f"{name}.html.j2").render(context)
