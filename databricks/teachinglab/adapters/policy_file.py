"""Reads QUOTA_POLICY_FILE (TOML, the standard library's tomllib) into a Policy, or says what is
wrong as `file:line: key: what is expected`, every problem at once. Nothing is half-applied:
a file with one problem gives no policy at all."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

from databricks.teachinglab.core.policy import Policy, PolicyError, build_policy
from databricks.teachinglab.core.units import QuotaUnit

_ARRAY = re.compile(r"^\s*\[\[\s*([^\]]+?)\s*\]\]")
_TABLE = re.compile(r"^\s*\[\s*([^\]]+?)\s*\]")
_KEY = re.compile(r'^\s*("?)([A-Za-z0-9_\-]+)\1\s*=')
_AT_LINE = re.compile(r"\(at line (\d+), column \d+\)")


class PolicyFileError(ValueError):
    def __init__(self, messages: list[str]):
        super().__init__("\n".join(messages))
        self.messages = messages


def load_policy(path: Path, unit: QuotaUnit, *, defaults: tuple[float, float] | None) -> Policy:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise PolicyFileError([f"QUOTA_POLICY_FILE={path}: cannot be read ({type(err).__name__}: {err}); "
                               "give the path of a TOML policy file (see README, 'Semester policy')"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        m = _AT_LINE.search(str(err))
        line = m.group(1) if m else "1"
        reason = _AT_LINE.sub("", str(err)).strip()
        raise PolicyFileError([f"{path}:{line}: not valid TOML: {reason}; see README, 'Semester policy', "
                               "for an example"]) from None
    try:
        return build_policy(data, unit, defaults=defaults, source=str(path))
    except PolicyError as err:
        lines = _Lines(text)
        raise PolicyFileError([f"{path}:{lines.find(p.path)}: {_key(p.path)}: {p.message}"
                               for p in err.problems]) from None


def _key(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class _Lines:
    """Where each table header and key is in the file: (table, key) -> line number."""

    def __init__(self, text: str):
        self.headers: dict[str, int] = {}
        self.keys: dict[tuple[str, str], int] = {}
        arrays: dict[str, int] = {}
        table = ""
        for number, line in enumerate(text.splitlines(), start=1):
            if m := _ARRAY.match(line):
                name = _clean(m.group(1))
                arrays[name] = arrays.get(name, -1) + 1
                table = f"{name}.{arrays[name]}"
                self.headers.setdefault(table, number)
            elif m := _TABLE.match(line):
                table = _clean(m.group(1))
                self.headers.setdefault(table, number)
            elif m := _KEY.match(line):
                self.keys.setdefault((table, m.group(2)), number)

    def find(self, path: tuple) -> int:
        tokens = [str(p) for p in path]
        for k in range(len(tokens), 0, -1):
            at = (".".join(tokens[:k - 1]), tokens[k - 1])
            if at in self.keys:
                return self.keys[at]
            if ".".join(tokens[:k]) in self.headers:
                return self.headers[".".join(tokens[:k])]
        return 1


def _clean(name: str) -> str:
    return ".".join(part.strip().strip('"') for part in name.split("."))
