"""The semester policy (QUOTA_POLICY_FILE): daily, weekly and semester caps, top-up banks and
per-group overrides. Pure: built from the parsed TOML (a dict). A problem names its key path, so
the file's reader (adapters/policy_file.py) can give file:line; nothing is half-applied.

Limits are given in QUOTA_UNIT: `max_minutes`, `max_dbu` or `max_usd` (a top-up's `minutes`,
`dbu` or `usd`). Without a file, the environment's daily limits are the whole policy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from databricks.teachinglab.core.serverless import ServerlessCaps
from databricks.teachinglab.core.units import QuotaUnit

CAPS = ("daily", "weekly", "semester")


@dataclass(frozen=True)
class Problem:
    path: tuple            # ("weekly", "max_minutes"), ("topup", 0, "from"), ("groups", "g1", "daily")
    message: str           # what is wrong and what is expected


class PolicyError(ValueError):
    def __init__(self, problems: list[Problem]):
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class TopUp:
    """A bank of extra quota for some groups, usable from `start` to `until` (both included)."""
    groups: tuple[str, ...]          # or ("*",)
    amount: float                    # in the unit
    start: date
    until: date
    reason: str = ""
    source: str = "policy"           # policy | grant

    def applies_to(self, group: str) -> bool:
        return "*" in self.groups or group in self.groups

    def valid_on(self, day: date) -> bool:
        return self.start <= day <= self.until


@dataclass(frozen=True)
class GroupCaps:
    """One group's caps, in the unit (None: no such cap)."""
    daily_warn: float
    daily_max: float
    weekly_max: float | None = None
    carry_over_max: float = 0
    semester_max: float | None = None
    semester_start: date | None = None
    semester_end: date | None = None

    def in_semester(self, day: date) -> bool:
        return (self.semester_start is None or day >= self.semester_start) and (
            self.semester_end is None or day <= self.semester_end)


@dataclass(frozen=True)
class Policy:
    unit: QuotaUnit
    caps: GroupCaps                                   # everyone's, before per-group overrides
    topups: tuple[TopUp, ...] = ()
    groups: dict[str, GroupCaps] = field(default_factory=dict)
    deadlines: tuple[date, ...] = ()                  # [semester] deadlines: the simulator's landmarks
    source: str = "the environment"                   # the file, for messages
    serverless: ServerlessCaps = ServerlessCaps()     # [serverless]: everyone's, in DBU
    serverless_groups: dict[str, ServerlessCaps] = field(default_factory=dict)  # [groups.NAME.serverless]

    def for_group(self, group: str) -> GroupCaps:
        return self.groups.get(group, self.caps)

    def serverless_for(self, group: str) -> ServerlessCaps:
        return self.serverless_groups.get(group, self.serverless)

    @property
    def serverless_capped(self) -> bool:
        """Whether any group has a serverless cap (then the serverless check enforces)."""
        return any(c.any_cap for c in (self.serverless, *self.serverless_groups.values()))

    @property
    def periodic(self) -> bool:
        """Whether anything beyond the daily cap applies (weeks, the semester, a bank)."""
        every = (self.caps, *self.groups.values())
        return bool(self.topups) or any(c.weekly_max is not None or c.semester_max is not None for c in every)

    def topups_for(self, group: str) -> list[TopUp]:
        return [t for t in self.topups if t.applies_to(group)]

    @classmethod
    def daily_only(cls, unit: QuotaUnit, warn: float, hard: float) -> "Policy":
        return cls(unit, GroupCaps(warn, hard))


# -- building one from the parsed file --------------------------------------------------------
SECTIONS = {"daily": ("warn", "max"), "weekly": ("max", "carry_over_max"), "semester": ("start", "end", "max", "deadlines")}


def build_policy(data: dict[str, Any], unit: QuotaUnit, *, defaults: tuple[float, float] | None,
                 source: str) -> Policy:
    """The policy in `data`, or PolicyError with every problem. `defaults`: the environment's daily
    (warn, max), used when the file has no [daily]."""
    problems: list[Problem] = []
    suffix = unit.name
    known = {"daily", "weekly", "semester", "topup", "groups", "serverless"}
    for key in data:
        if key not in known:
            problems.append(Problem((key,), f"unknown section [{key}]: expected one of {', '.join(sorted(known))}"))
    base = _sections(data, (), unit, problems)
    daily = base.get("daily")
    if daily is None and defaults is None:
        problems.append(Problem(("daily",), f"no [daily] section, and no daily limits in the environment: add "
                                            f"[daily] with warn_{suffix} and max_{suffix}"))
    if daily is None:
        daily = {"warn": defaults[0], "max": defaults[1]} if defaults else {}
    group_sections: dict[str, dict] = {}
    raw_groups = data.get("groups", {})
    if not isinstance(raw_groups, dict):
        problems.append(Problem(("groups",), "[groups] must be a table of [groups.NAME] sections"))
        raw_groups = {}
    for name, over in raw_groups.items():
        if not isinstance(over, dict):
            problems.append(Problem(("groups", name), f"[groups.{name}] must be a table like daily = {{ max_{suffix} = 250 }}"))
            continue
        for key in over:
            if key not in ("daily", "weekly", "semester", "serverless"):
                problems.append(Problem(("groups", name, key), f"[groups.{name}]: unknown key {key!r}: expected daily, "
                                                                "weekly, semester or serverless"))
        mine = _sections(over, ("groups", name), unit, problems, inherit={**base, "daily": daily})
        group_sections[name] = {**base, "daily": daily, **mine}
    topups = _topups(data.get("topup", []), unit, problems)
    sem = base.get("semester") or {}
    everyone = _serverless(data.get("serverless"), ("serverless",), {}, unit, problems)
    serverless_groups = {}
    for name, over in raw_groups.items():
        if isinstance(over, dict) and "serverless" in over:
            serverless_groups[name] = _serverless(over["serverless"], ("groups", name, "serverless"),
                                                  everyone, unit, problems)
    for at, caps in ((("serverless",), everyone), *((("groups", n, "serverless"), c)
                                                     for n, c in serverless_groups.items())):
        if caps.get("semester_max") is not None and not sem.get("start"):
            problems.append(Problem((*at, "semester_max_dbu"), f"[{'.'.join(at)}]: semester_max_dbu needs the "
                                                               "semester's dates: add [semester] with start and end"))
    if problems:
        raise PolicyError(problems)
    return Policy(unit, _caps({**base, "daily": daily}), tuple(topups),
                  {name: _caps(s) for name, s in group_sections.items()}, tuple(sem.get("deadlines", ())), source,
                  ServerlessCaps(**everyone), {n: ServerlessCaps(**c) for n, c in serverless_groups.items()})


SERVERLESS_KEYS = {"daily_max_dbu": "daily_max", "weekly_max_dbu": "weekly_max", "semester_max_dbu": "semester_max",
                   "counts_toward_quota": "counts_toward_quota"}
SERVERLESS_SPAN = {"daily_max": 1, "weekly_max": 7, "semester_max": 366}
SERVERLESS_DAILY_TOP = 10_000.0  # DBU a group may be allowed in a day: far above any course, far below overflow


def _serverless(raw, at: tuple, inherit: dict, unit: QuotaUnit, problems: list[Problem]) -> dict:
    """[serverless] (or [groups.NAME.serverless], over it): caps in DBU, whatever QUOTA_UNIT is,
    because serverless is billed in DBU; `counts_toward_quota` adds it to the main allowance."""
    out = dict(inherit)
    if raw is None:
        return out
    where = "[" + ".".join(str(p) for p in at) + "]"
    if not isinstance(raw, dict):
        problems.append(Problem(at, f"{where} must be a table like daily_max_dbu = 2"))
        return out
    for key, value in raw.items():
        name = SERVERLESS_KEYS.get(key)
        if name is None:
            problems.append(Problem((*at, key), f"{where}: unknown key {key!r}; expected "
                                                + ", ".join(SERVERLESS_KEYS) + " (serverless caps are in DBU)"))
        elif name == "counts_toward_quota":
            if not isinstance(value, bool):
                problems.append(Problem((*at, key), f"{where}: counts_toward_quota must be true or false"))
            elif value and unit.name == "minutes":
                problems.append(Problem((*at, key), f"{where}: counts_toward_quota = true needs QUOTA_UNIT=dbu or usd "
                                                    "(serverless use has no cluster minutes to count)"))
            else:
                out[name] = value
        else:
            top = SERVERLESS_DAILY_TOP * SERVERLESS_SPAN[name]
            if (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
                    and 0 < value <= top):
                out[name] = float(value)
            else:
                problems.append(Problem((*at, key), f"{where}: {key} = {value!r}: expected a number of DBU above 0, "
                                                    f"at most {top:g}"))
    return out


def _caps(s: dict) -> GroupCaps:
    weekly, sem = s.get("weekly") or {}, s.get("semester") or {}
    return GroupCaps(s["daily"]["warn"], s["daily"]["max"], weekly.get("max"), weekly.get("carry_over_max", 0),
                     sem.get("max"), sem.get("start"), sem.get("end"))


def _sections(table: dict, at: tuple, unit: QuotaUnit, problems: list[Problem],
              inherit: dict | None = None) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for name in ("daily", "weekly", "semester"):
        if name not in table:
            continue
        raw = table[name]
        where = "[" + ".".join(str(p) for p in (*at, name)) + "]"
        if not isinstance(raw, dict):
            problems.append(Problem((*at, name), f"{where} must be a table"))
            continue
        merged = dict((inherit or {}).get(name) or {})
        merged.update(_section(name, raw, (*at, name), where, unit, problems))
        out[name] = merged
    for name, s in out.items():
        where = "[" + ".".join(str(p) for p in (*at, name)) + "]"
        if name == "daily" and ("warn" not in s or "max" not in s):
            missing = [k for k in ("warn", "max") if k not in s]
            problems.append(Problem((*at, name), f"{where} needs {' and '.join(f'{k}_{unit.name}' for k in missing)}"))
        elif name == "daily" and not s["warn"] < s["max"]:
            problems.append(Problem((*at, name, f"warn_{unit.name}"), f"{where}: warn_{unit.name} must be below "
                                                                      f"max_{unit.name}"))
        if name == "weekly" and "max" not in s:
            problems.append(Problem((*at, name), f"{where} needs max_{unit.name}"))
        if name == "semester":
            missing = [k for k in ("start", "end", "max") if k not in s]
            if missing:
                problems.append(Problem((*at, name), f"{where} needs " + ", ".join(
                    f"max_{unit.name}" if k == "max" else k for k in missing)))
            elif s["start"] > s["end"]:
                problems.append(Problem((*at, name, "end"), f"{where}: end {s['end']} is before start {s['start']}"))
    return out


def _section(name: str, raw: dict, at: tuple, where: str, unit: QuotaUnit, problems: list[Problem]) -> dict:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        field_name = _field(key, unit)
        if field_name not in SECTIONS[name]:
            expected = ", ".join(f if f in ("start", "end", "deadlines") else f"{f}_{unit.name}" for f in SECTIONS[name])
            other = _other_unit(key, unit)
            problems.append(Problem((*at, key), f"{where}: {other or f'unknown key {key!r}'}; expected {expected}"))
            continue
        if field_name in ("start", "end"):
            if not isinstance(value, date):
                problems.append(Problem((*at, key), f"{where}: {key} must be a date like 2026-03-01 (no quotes)"))
                continue
        elif field_name == "deadlines":
            if not isinstance(value, list) or not all(isinstance(d, date) for d in value):
                problems.append(Problem((*at, key), f"{where}: deadlines must be a list of dates like [2026-05-12]"))
                continue
        else:
            number = _amount(value, key, where, unit, at, problems, allow_zero=field_name == "carry_over_max",
                             days=SPAN_DAYS["carry_over_max" if field_name == "carry_over_max" else
                                            "max" if name == "daily" else name])
            if number is None:
                continue
            value = number
        out[field_name] = value
    return out


def _field(key: str, unit: QuotaUnit) -> str:
    suffix = f"_{unit.name}"
    return key[:-len(suffix)] if key.endswith(suffix) else key if key in ("start", "end", "deadlines") else "?" + key


def _other_unit(key: str, unit: QuotaUnit) -> str | None:
    for other in ("minutes", "dbu", "usd"):
        if other != unit.name and key.endswith("_" + other) or key == other != unit.name:
            return (f"{key!r} is in {other}, but QUOTA_UNIT is {unit.name}: write the limit in {unit.name} "
                    f"({key.replace(other, unit.name)})")
    return None


# The largest amount each key may hold, in days' worth of the unit's largest daily limit: a typo
# (1e17, inf) must be refused here, not overflow in the poll and switch enforcement off.
SPAN_DAYS = {"warn": 1, "max": 1, "carry_over_max": 7, "weekly": 7, "semester": 366, "topup": 366}


def _amount(value, key: str, where: str, unit: QuotaUnit, at: tuple, problems: list[Problem],
            allow_zero: bool = False, days: int = 1) -> float | None:
    whole = unit.name == "minutes"
    top = unit.max_limit * days
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
          and (value >= 0 if allow_zero else value > 0) and value <= top)
    if ok and whole and value != int(value):
        ok = False
    if not ok:
        kind = "a whole number of minutes" if whole else f"a number of {unit.symbol}"
        problems.append(Problem((*at, key), f"{where}: {key} = {value!r}: expected {kind} "
                                            f"{'of 0 or more' if allow_zero else 'above 0'}, at most {top:g}"))
        return None
    return float(value)


def _topups(raw, unit: QuotaUnit, problems: list[Problem]) -> list[TopUp]:
    if not isinstance(raw, list):
        problems.append(Problem(("topup",), "top-ups are [[topup]] sections (an array of tables)"))
        return []
    out = []
    for i, t in enumerate(raw):
        where = f"[[topup]] #{i + 1}"
        allowed = {"groups", unit.name, "from", "until", "reason"}
        for key in t:
            if key not in allowed:
                problems.append(Problem(("topup", i, key), f"{where}: {_other_unit(key, unit) or f'unknown key {key!r}'}; "
                                                           f"expected groups, {unit.name}, from, until, reason"))
        groups = t.get("groups")
        if not (isinstance(groups, list) and groups and all(isinstance(g, str) and g for g in groups)):
            problems.append(Problem(("topup", i, "groups"), f'{where}: groups must be a list of group names, '
                                                            f'like ["group_03"] or ["*"]'))
            continue
        if unit.name not in t:
            problems.append(Problem(("topup", i), f"{where} needs {unit.name} = the amount"))
            continue
        amount = _amount(t[unit.name], unit.name, where, unit, ("topup", i), problems, days=SPAN_DAYS["topup"])
        start, until = t.get("from"), t.get("until")
        bad = [k for k, v in (("from", start), ("until", until)) if not isinstance(v, date)]
        for k in bad:
            problems.append(Problem(("topup", i, k), f"{where}: {k} must be a date like 2026-05-11 (no quotes)"))
        if bad or amount is None:
            continue
        if until < start:
            problems.append(Problem(("topup", i, "until"), f"{where}: until {until} is before from {start}"))
            continue
        out.append(TopUp(tuple(groups), amount, start, until, str(t.get("reason", ""))))
    return out
