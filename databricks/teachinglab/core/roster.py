"""Moodle roster import. Pure: text in, a Roster and a list of problems out.

Reads the "group self-selection" export of mod_groupselect: an optional first line `sep=,`
(or `;`), an optional UTF-8 BOM, CRLF or LF, quoted fields, and the header

    Group ID,Group Name,Group Size,Group Description,Assigned teacher Username,…,
    Member 1 Username,Member 1 ID Number,Member 1 Firstname,Member 1 Lastname,Member 1 Email,
    Member 2 Username,…

with as many member blocks as the largest group has members. Also reads a long format with one
row per member (Moodle's groups overview download, or a hand-made sheet): a `Group` (or `Group
name`) column and an `Email address` (or `Email`) column, plus optional `First name`/`Last name`.

Group keys are stable ASCII: `g<Moodle group id>` when the export has ids (ids never change when
other groups are added, removed or reordered), else a slug of the name, with a short hash of the
name for names that have no ASCII letters (Hebrew, say) — never the row number.

The output of the converter (`users.csv`, long format, one row per membership) is read back by
the Terraform module and by --create_from_csv: group_key,group_name,email,first_name,last_name.
An empty group has one row with an empty email, so its group and cluster still exist.
"""
from __future__ import annotations

import csv
import hashlib
import io
import re
import unicodedata
from dataclasses import dataclass, field

from databricks.teachinglab.core.cells import FORMULA_START, safe_row

EMAIL_RE = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$")


USERS_CSV_HEADER = ["group_key", "group_name", "email", "first_name", "last_name"]
MEMBER_COL = re.compile(r"^member\s+(\d+)\s+(username|id number|firstname|lastname|email)$", re.IGNORECASE)


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


@dataclass(frozen=True)
class Student:
    email: str
    first_name: str = ""
    last_name: str = ""
    username: str = ""
    line: int = field(default=0, compare=False)  # the row it came from, for problems


@dataclass
class RosterGroup:
    key: str
    name: str
    line: int
    moodle_id: str = ""
    members: list[Student] = field(default_factory=list)


@dataclass
class Roster:
    groups: list[RosterGroup]
    problems: list[Problem]

    def memberships(self) -> list[tuple[RosterGroup, Student]]:
        return [(g, s) for g in self.groups for s in g.members]


class RosterError(Exception):
    """The file cannot be read as a roster at all (exit 2)."""

    def __init__(self, problems: list[Problem]):
        super().__init__("\n".join(map(str, problems)))
        self.problems = problems


def slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "_", ascii_text.lower()).strip("_")[:40]


def group_key(name: str, moodle_id: str = "") -> str:
    if moodle_id.strip().isdigit():
        return f"g{int(moodle_id)}"
    base = slug(name)
    if base and name.strip().isascii():
        return base
    digest = hashlib.sha256(name.strip().encode()).hexdigest()[:8]
    return f"{base}_{digest}" if base else f"grp_{digest}"


def _decode(raw: bytes, path: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise RosterError([Problem(path, 1, "the file is not UTF-8: in Moodle choose the UTF-8 encoding "
                                            "when downloading, or re-save it as 'CSV UTF-8'")]) from None


def parse_roster(raw: bytes | str, path: str = "moodle.csv") -> Roster:
    text = _decode(raw, path) if isinstance(raw, bytes) else raw.lstrip("\ufeff")
    lines = text.splitlines(keepends=True)
    offset = 0
    delimiter = ","
    if lines and lines[0].strip().lower().startswith("sep="):
        delimiter = lines[0].strip()[4:5] or ","
        offset = 1
    elif lines:
        # No sep= line: European Excel saves with ";", some tools with tabs. The header row tells.
        header_line = lines[0]
        delimiter = max((",", ";", "\t"), key=lambda c: (header_line.count(c), c == ","))
    body = "".join(lines[offset:])
    unbalanced = unbalanced_quote(body, delimiter)
    if unbalanced:
        raise RosterError([Problem(path, offset + unbalanced[0], unbalanced[1])])
    reader = csv.reader(io.StringIO(body, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise RosterError([Problem(path, 1 + offset, "the file is empty: download the group export again")]) from None
    header = [h.strip() for h in header]
    lower = [h.lower() for h in header]
    rows = [(offset + reader.line_num, _getter(row)) for row in reader if any(c.strip() for c in row)]
    if any(MEMBER_COL.match(h) for h in lower):
        return _parse_wide(path, header, lower, rows, offset)
    return _parse_long(path, header, lower, rows, offset)


def unbalanced_quote(text: str, delimiter: str = ",") -> tuple[int, str] | None:
    """(line, message) of a quoted field that never closes, or that runs on over whole rows: the
    csv module would silently read the rest of the file (or those rows) as one cell. A quoted
    field may hold a line break (a name written on two lines), but not a line that itself looks
    like a row of the file (the header's number of delimiters)."""
    header_delimiters = text.split("\n", 1)[0].count(delimiter)
    line, i, n = 1, 0, len(text)
    at_field_start = True
    while i < n:
        ch = text[i]
        if ch == '"' and at_field_start:
            opened, j = line, i + 1
            inner_lines: list[str] = []
            current = []
            while j < n:
                if text[j] == '"':
                    if j + 1 < n and text[j + 1] == '"':
                        j += 2
                        continue
                    break
                if text[j] == "\n":
                    line += 1
                    inner_lines.append("".join(current))
                    current = []
                else:
                    current.append(text[j])
                j += 1
            if j >= n:
                return opened, ("an unbalanced quote: a quoted field opens here (\") and is never closed, so every "
                                "row after it would be read as part of this one cell; add the missing quote, or "
                                "remove the stray one")
            if header_delimiters and inner_lines and any(
                    piece.count(delimiter) >= max(1, header_delimiters // 2) for piece in [*inner_lines[1:], "".join(current)]):
                return opened, (f"an unbalanced quote: a quoted field opens here (\") and closes only on line {line}, "
                                "taking in the rows between as one cell; add the missing quote, or remove the "
                                "stray one")
            i = j + 1
            at_field_start = False
            continue
        if ch == "\n":
            line += 1
            at_field_start = True
        else:
            at_field_start = ch == delimiter or (ch == "\r" and at_field_start)
        i += 1
    return None


def _getter(row: list[str]):
    """cell(i): the stripped cell i, or "" when the column is absent or the row is short."""
    return lambda i: row[i].strip() if i is not None and i < len(row) else ""


def _col(lower: list[str], *names: str) -> int | None:
    for name in names:
        if name in lower:
            return lower.index(name)
    return None


def _parse_wide(path, header, lower, rows, offset) -> Roster:
    problems: list[Problem] = []
    name_col = _col(lower, "group name")
    id_col = _col(lower, "group id")
    if name_col is None:
        raise RosterError([Problem(path, 1 + offset, "no 'Group Name' column: this does not look like a "
                                                     "group self-selection export")])
    blocks: dict[int, dict[str, int]] = {}
    for i, h in enumerate(lower):
        m = MEMBER_COL.match(h)
        if m:
            blocks.setdefault(int(m.group(1)), {})[m.group(2).lower()] = i
    if not any("email" in cols for cols in blocks.values()):
        raise RosterError([Problem(path, 1 + offset, "the export has no 'Member N Email' columns: in Moodle, "
                                                     "tick the email field when exporting the groups")])
    groups: list[RosterGroup] = []
    for line, cell in rows:
        name = cell(name_col)
        moodle_id = cell(id_col)
        if not name:
            problems.append(Problem(path, line, "a group without a name: fill in 'Group Name' or delete the row"))
            continue
        group = RosterGroup(group_key(name, moodle_id), name, line, moodle_id)
        for n in sorted(blocks):
            cols = blocks[n]
            email = cell(cols.get("email"))
            others = [cell(cols.get(k)) for k in ("username", "firstname", "lastname")]
            if not email and not any(others):
                continue  # an unused member block: this group is smaller than the largest
            group.members.append(Student(email, cell(cols.get("firstname")), cell(cols.get("lastname")),
                                         cell(cols.get("username")), line))
        groups.append(group)
    return _check(path, groups, problems)


def _parse_long(path, header, lower, rows, offset) -> Roster:
    group_col = _col(lower, "group", "group name", "groups")
    email_col = _col(lower, "email address", "email", "e-mail")
    if group_col is None:
        raise RosterError([Problem(path, 1 + offset, "no group column: expected the group self-selection "
                                                     "export (Group Name, Member 1 Email, …) or a sheet with "
                                                     "'Group' and 'Email address' columns")])
    if email_col is None:
        raise RosterError([Problem(path, 1 + offset, "no email column: add 'Email address' to the export")])
    first_col = _col(lower, "first name", "firstname")
    last_col = _col(lower, "last name", "surname", "lastname")
    id_col = _col(lower, "group id")
    by_name: dict[str, RosterGroup] = {}
    problems: list[Problem] = []
    for line, cell in rows:
        name = cell(group_col)
        if not name:
            problems.append(Problem(path, line, f"{cell(email_col) or 'a student'} is in no group and gets no "
                                                "cluster: add them to a group in Moodle if they need one"))
            continue
        group = by_name.get(name)
        if group is None:
            group = by_name[name] = RosterGroup(group_key(name, cell(id_col)), name, line, cell(id_col))
        email = cell(email_col)
        if email or cell(first_col) or cell(last_col):
            group.members.append(Student(email, cell(first_col), cell(last_col), line=line))
    return _check(path, list(by_name.values()), problems)


def _check(path: str, groups: list[RosterGroup], problems: list[Problem]) -> Roster:
    seen_ids: dict[str, int] = {}
    seen_keys: dict[str, RosterGroup] = {}
    owner: dict[str, tuple[RosterGroup, int]] = {}
    kept: list[RosterGroup] = []
    for g in groups:
        if g.moodle_id and g.moodle_id in seen_ids:
            problems.append(Problem(path, g.line, f"group id {g.moodle_id} ({g.name!r}) already appears on line "
                                                  f"{seen_ids[g.moodle_id]}: remove the duplicate row"))
            continue
        if g.moodle_id:
            seen_ids[g.moodle_id] = g.line
        if g.key in seen_keys:
            problems.append(Problem(path, g.line, f"group {g.name!r} has the same key {g.key!r} as "
                                                  f"{seen_keys[g.key].name!r} on line {seen_keys[g.key].line}: "
                                                  "rename one of them"))
            continue
        seen_keys[g.key] = g
        if g.name.startswith(FORMULA_START):
            problems.append(Problem(path, g.line, f"group {g.name!r} starts like a spreadsheet formula: users.csv "
                                                  f"names it {safe_row([g.name])[0]!r}, so no spreadsheet runs it, "
                                                  "and so will the workspace; rename it in Moodle to avoid that"))
        members = []
        for s in g.members:
            if not s.email:
                problems.append(Problem(path, g.line, f"{s.first_name} {s.last_name} in {g.name!r} has no email: "
                                                      "add it in Moodle and export again"))
                continue
            if not EMAIL_RE.match(s.email):
                problems.append(Problem(path, g.line, f"{s.email!r} in {g.name!r} is not an email address: "
                                                      "correct it in Moodle and export again"))
                continue
            email = s.email.lower()
            if email in owner:
                first, first_line = owner[email]
                problems.append(Problem(path, s.line or g.line, f"{email} is in {first.name!r} (line {first_line}) "
                                        f"and in {g.name!r} (line {s.line or g.line}): a student belongs to one "
                                        f"group; kept in {first.name!r}"))
                continue
            owner[email] = (g, s.line or g.line)
            members.append(Student(email, s.first_name, s.last_name, s.username, s.line))
        g.members = members
        if not members:
            problems.append(Problem(path, g.line, f"group {g.name!r} has no members: it still gets a "
                                                  "group and a cluster; delete it in Moodle if it is unused"))
        kept.append(g)
    return Roster(kept, problems)


def users_csv_text(roster: Roster) -> tuple[str, int]:
    """The long format read by Terraform and --create_from_csv, and its number of rows."""
    rows = []
    for g in sorted(roster.groups, key=lambda g: g.key):
        if not g.members:
            rows.append([g.key, g.name, "", "", ""])
        for s in sorted(g.members, key=lambda s: s.email):
            rows.append([g.key, g.name, s.email, s.first_name, s.last_name])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(USERS_CSV_HEADER)
    # Escaped as every CSV the product writes, and read back escaped (by Terraform and
    # --create_from_csv alike), so both paths name the group the same; _check reports such names.
    writer.writerows(safe_row(r) for r in rows)
    return out.getvalue(), len(rows)


def parse_users_csv(text: str, path: str) -> Roster:
    """The converter's output read back (for --create_from_csv)."""
    problems: list[Problem] = []
    unbalanced = unbalanced_quote(text)
    if unbalanced:
        raise RosterError([Problem(path, *unbalanced)])
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [c for c in USERS_CSV_HEADER[:3] if c not in (reader.fieldnames or [])]
    if missing:
        raise RosterError([Problem(path, 1, f"missing column(s) {', '.join(missing)}: produce this file "
                                            "with python -m databricks.main --convert_moodle")])
    groups: dict[str, RosterGroup] = {}
    owner: dict[str, tuple[str, int]] = {}
    for row in reader:
        line = reader.line_num
        key, name, email = (row.get("group_key") or "").strip(), (row.get("group_name") or "").strip(), \
            (row.get("email") or "").strip().lower()
        if not key or not re.fullmatch(r"[a-z0-9_]+", key):
            problems.append(Problem(path, line, f"group_key {key!r} must be lowercase ASCII letters, digits, _"))
            continue
        group = groups.setdefault(key, RosterGroup(key, name or key, line))
        if email:
            if not EMAIL_RE.match(email):
                problems.append(Problem(path, line, f"{email!r} is not an email address"))
                continue
            if email in owner and owner[email][0] != key:
                problems.append(Problem(path, line, f"{email} is in {owner[email][0]!r} (line {owner[email][1]}) and "
                                        f"in {key!r}: a student belongs to one group; remove one of the two rows "
                                        "(or fix the group in Moodle and run --convert_moodle again)"))
                continue
            owner.setdefault(email, (key, line))
            group.members.append(Student(email, (row.get("first_name") or "").strip(),
                                         (row.get("last_name") or "").strip()))
    return Roster(list(groups.values()), problems)
