"""The roster files: users.csv written by --convert_moodle and read by --create_from_csv."""
from __future__ import annotations

from pathlib import Path

from databricks.teachinglab.core.roster import Problem, Roster, RosterError, parse_users_csv, users_csv_text


def write_users_csv(roster: Roster, out: Path) -> int:
    """Write the long format; returns the number of rows."""
    out.parent.mkdir(parents=True, exist_ok=True)
    text, rows = users_csv_text(roster)
    out.write_text(text, encoding="utf-8", newline="")
    return rows


def read_users_csv(path: Path) -> Roster:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as err:
        raise RosterError([Problem(str(path), 0, f"cannot read it: {err.strerror}")]) from None
    return parse_users_csv(text, str(path))
