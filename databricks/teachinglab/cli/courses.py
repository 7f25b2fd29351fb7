"""Many courses from one deployment: TEACHINGLAB_COURSES_FILE (TOML) lists them, each with its
own workspace and any settings that differ from the environment's.

    [courses.bigdata]
    host = "https://adb-1111.11.azuredatabricks.net"
    token_env = "BIGDATA_TOKEN"      # or profile = "bigdata" for unified auth
    timezone = "Asia/Jerusalem"
    warn_minutes = 100
    max_minutes = 150
    admin_email = "bigdata-staff@uni.example"

A course's settings are the environment's with its keys laid over them (each key is one
environment variable, COURSE_KEYS), checked by the same load_settings as a one-course lab. Its
ledger is its own: on PostgreSQL, the schema `course_<name>` of the shared DATABASE_URL; on
SQLite, the file `<CLUSTER_UPTIMES_DB stem>-<name>.db` beside CLUSTER_UPTIMES_DB (or its
`db_path`). Without the file there is one implicit course, exactly as before.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping

from databricks.teachinglab.cli.config import ConfigError, load_settings
from databricks.teachinglab.core.settings import Settings
from databricks.teachinglab.core.units import UNITS

COURSES_VAR = "TEACHINGLAB_COURSES_FILE"
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")  # also a PostgreSQL schema name and a file name part

# Each key of a course, and the environment variable it stands for.
COURSE_KEYS: dict[str, str] = {
    "host": "DATABRICKS_HOST", "profile": "DATABRICKS_CONFIG_PROFILE", "timezone": "QUOTA_TIMEZONE",
    "admin_email": "ADMIN_EMAIL", "report_recipient": "REPORT_RECIPIENT_EMAIL", "sender": "EMAIL_SENDER",
    "course_name": "COURSE_NAME", "quota_unit": "QUOTA_UNIT", "policy_file": "QUOTA_POLICY_FILE",
    "semester_start": "SEMESTER_START", "database_url": "DATABASE_URL", "db_path": "CLUSTER_UPTIMES_DB",
    "warehouse_id": "DATABRICKS_WAREHOUSE_ID", "status_page_url": "STATUS_PAGE_URL",
    "account_id": "DATABRICKS_ACCOUNT_ID", "price_table_file": "PRICE_TABLE_FILE",
    "access_mode": "CLUSTER_ACCESS_MODE", "spark_version": "CLUSTER_SPARK_VERSION",
    "node_type": "CLUSTER_NODE_TYPE", "api_parallelism": "API_PARALLELISM",
    **{f"warn_{u.name}": u.warn_var for u in UNITS.values()},
    **{f"max_{u.name}": u.max_var for u in UNITS.values()},
}
SPECIAL_KEYS = {"token_env"}  # the NAME of the variable holding the course's token


@dataclass(frozen=True)
class Course:
    name: str
    settings: Settings
    implicit: bool = False       # no courses file: the one course of the environment


def _line_of(text: str, name: str, key: str | None = None) -> int:
    """The line of [courses.NAME] (or of KEY inside it); 1 when not found."""
    header = re.compile(rf'^\s*\[\s*courses\s*\.\s*"?{re.escape(name)}"?\s*\]')
    start = None
    for number, line in enumerate(text.splitlines(), start=1):
        if start is None:
            if header.match(line):
                start = number
                if key is None:
                    return number
        elif re.match(r"^\s*\[", line):
            break
        elif re.match(rf'^\s*"?{re.escape(key)}"?\s*=', line):
            return number
    return start or 1


def _as_env(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def read_courses(env: Mapping[str, str], *, need_workspace: bool = True, need_mail: bool = False) -> list[Course]:
    """Every course, checked; ConfigError lists every problem as `file:line: courses.NAME.key: ...`."""
    path_text = (env.get(COURSES_VAR) or "").strip()
    if not path_text:
        settings = load_settings(env, need_workspace=need_workspace, need_mail=need_mail)
        return [Course(settings.cluster.course, settings, implicit=True)]
    path = Path(path_text).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError([f"{COURSES_VAR}={path}: cannot be read ({type(err).__name__}: {err}); give the path "
                           "of a TOML file with one [courses.NAME] table per course (README, 'Many courses')"])
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        m = re.search(r"\(at line (\d+), column \d+\)", str(err))
        reason = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(err))
        if "twice" in reason:
            reason += ": a course is listed twice; give each course one [courses.NAME] table"
        raise ConfigError([f"{path}:{m.group(1) if m else 1}: not valid TOML: {reason}"])
    problems: list[str] = []
    for key in data:
        if key != "courses":
            problems.append(f"{path}:1: {key}: unknown top-level key; the file holds [courses.NAME] tables only")
    table = data.get("courses")
    if not isinstance(table, dict) or not table:
        raise ConfigError(problems + [f"{path}:1: courses: no course; add a [courses.NAME] table per course"])
    courses, hosts, ledgers = [], {}, {}
    for name, keys in table.items():
        where = f"{path}:{_line_of(text, name)}: courses.{name}"
        if not NAME_RE.match(name):
            problems.append(f"{where}: a course name is lowercase letters, digits and _ (up to 40), starting "
                            "with a letter (it names the course's ledger schema and files)")
            continue
        if not isinstance(keys, dict):
            problems.append(f"{where}: must be a table of settings")
            continue
        overlay, bad = _overlay(path, text, name, keys, env)
        problems += bad
        if bad:
            continue
        try:
            settings = load_settings({**env, **overlay}, need_workspace=need_workspace, need_mail=need_mail)
        except ConfigError as err:
            problems += [_at_key(path, text, name, keys, p) for p in err.problems]
            continue
        workspace = settings.workspace.host or f"profile {settings.workspace.profile}"
        if workspace in hosts:
            # The poll enforces on every cluster of a workspace: two courses on one workspace would
            # each count, warn and stop the other's groups too, and mail them twice.
            key = "host" if "host" in keys else "profile" if "profile" in keys else None
            problems.append(f"{path}:{_line_of(text, name, key)}: courses.{name}{'.' + key if key else ''}: "
                            f"the same workspace as courses.{hosts[workspace]} ({workspace}); a workspace is one "
                            "course here: give each course its own workspace, or make them one course")
            continue
        hosts[workspace] = name
        course = Course(name, with_own_ledger(settings, name, env, keys))
        clash = next(((other, what) for other, mine in ledgers.items() for what, (a, b) in (
            ("ledger", (mine[0], ledger_identity(course.settings))), ("lock", (mine[1], lock_identity(course.settings))))
            if a == b), None)
        if clash:
            other, what = clash
            key = next((k for k in ("db_path", "database_url") if k in keys), None)
            problems.append(f"{path}:{_line_of(text, name, key)}: courses.{name}{'.' + key if key else ''}: the same "
                            f"{what} as courses.{other} ({ledger_identity(course.settings) if what == 'ledger' else lock_identity(course.settings)}): "
                            "two courses on one ledger share its lock and its clusters (one course is then mostly not "
                            "enforced, and each report shows the other's groups); give each course its own db_path, "
                            "or leave it out for the default <ledger>-NAME.db")
            continue
        ledgers[name] = (ledger_identity(course.settings), lock_identity(course.settings))
        courses.append(course)
    if problems:
        raise ConfigError(problems)
    return courses


def ledger_identity(settings: Settings) -> str:
    """Where a course's ledger is, so two courses' can be compared: a file's real path, or a
    PostgreSQL server, database and schema (never the password)."""
    ledger = settings.ledger
    if ledger.db_path is not None:
        return str(ledger.db_path.expanduser().resolve())
    from urllib.parse import urlsplit
    parts = urlsplit(ledger.database_url or "")
    return f"{parts.scheme}://{parts.hostname or ''}:{parts.port or ''}{parts.path}#{ledger.schema or 'public'}"


def lock_identity(settings: Settings) -> str:
    """Where a course's run lock is: its file, or (PostgreSQL) the ledger itself, whose schema names
    the advisory lock."""
    ledger = settings.ledger
    if ledger.lock_path is not None and ledger.db_path is not None:
        return "file:" + str(ledger.lock_path.expanduser().resolve())
    return "advisory:" + ledger_identity(settings)


def _at_key(path: Path, text: str, name: str, keys: dict, problem: str) -> str:
    """A problem load_settings found, at the line of the course key that set its variable (or at
    the course's header when the value came from the environment)."""
    for key in keys:
        var = COURSE_KEYS.get(key)
        if var and problem.startswith(var):
            return f"{path}:{_line_of(text, name, key)}: courses.{name}.{key}: {problem}"
    return f"{path}:{_line_of(text, name)}: courses.{name}: {problem}"


def _overlay(path: Path, text: str, name: str, keys: dict, env: Mapping[str, str]) -> tuple[dict, list[str]]:
    overlay: dict[str, str] = {"COURSE_NAME": name}
    problems = []
    for key, value in keys.items():
        where = f"{path}:{_line_of(text, name, key)}: courses.{name}.{key}"
        if key == "token_env":
            if not isinstance(value, str) or not value:
                problems.append(f"{where}: the name of the environment variable that holds the course's token")
            elif not re.fullmatch(r"[A-Z][A-Z0-9_]*_TOKEN", value):
                # The variable's value is sent to the course's host as a bearer token: a name like
                # SMTP_PASSWORD would send that secret there.
                problems.append(f"{where}: {value!r} must be a variable name ending in _TOKEN (e.g. BIGDATA_TOKEN): "
                                "its value is sent to the course's workspace as its token")
            elif not (env.get(value) or "").strip():
                problems.append(f"{where}: {value} is not set: put the course's token in it (the environment or "
                                ".env), or give profile = \"...\" instead")
            else:
                overlay["DATABRICKS_TOKEN"] = env[value].strip()
        elif key in COURSE_KEYS:
            if isinstance(value, (dict, list)):
                problems.append(f"{where}: must be a single value")
            else:
                overlay[COURSE_KEYS[key]] = _as_env(value)
        else:
            problems.append(f"{where}: unknown key; known: {', '.join(sorted([*COURSE_KEYS, *SPECIAL_KEYS]))}")
    if "host" in keys and "token_env" not in keys and "profile" not in keys:
        problems.append(f"{path}:{_line_of(text, name, 'host')}: courses.{name}: a course with its own host needs "
                        "token_env (or profile): the environment's token is for another workspace")
    if "profile" in keys and "token_env" not in keys:
        overlay["DATABRICKS_TOKEN"] = ""  # the profile authenticates, not the environment's token
    return overlay, problems


def with_own_ledger(settings: Settings, name: str, env: Mapping[str, str], keys: dict) -> Settings:
    """The course's own ledger and run lock: a schema of a shared PostgreSQL database, or a file."""
    ledger = settings.ledger
    if ledger.database_url and ledger.database_url.startswith("sqlite"):
        # A SQLite URL has no schemas: each course gets a file of its own, as CLUSTER_UPTIMES_DB does.
        file = Path(ledger.database_url.split(":///", 1)[-1])
        if "database_url" not in keys:
            file = file.with_name(f"{file.stem}-{name}{file.suffix or '.db'}")
        ledger = replace(ledger, database_url=None, db_path=file, lock_path=file.with_suffix(".lock"))
    elif ledger.database_url:
        ledger = replace(ledger, schema=f"course_{name}", lock_path=None)
    else:
        db_path = ledger.db_path
        if "db_path" not in keys:
            db_path = db_path.with_name(f"{db_path.stem}-{name}{db_path.suffix or '.db'}")
        lock_path = db_path.with_suffix(".lock")  # beside the course's ledger, as load_settings puts it
        if (env.get("TEACHINGLAB_LOCK_FILE") or "").strip():  # an explicit lock file: one per course beside it
            given = ledger.lock_path
            lock_path = given.with_name(f"{given.stem}-{name}{given.suffix}")
        ledger = replace(ledger, db_path=db_path, lock_path=lock_path)
    return replace(settings, ledger=ledger, course_id=name)


def select(courses: list[Course], name: str | None, *, strict: bool = True) -> list[Course]:
    """The courses a run covers: all, or the one --course names (ConfigError if none has it).
    Without a courses file, the admin CLI's --course keeps its older meaning (`strict=False`):
    the course tag that --purge_clusters/--terminate_clusters filter on."""
    if name is None:
        return courses
    if len(courses) == 1 and courses[0].implicit and (not strict or name == courses[0].name):
        return courses
    chosen = [c for c in courses if c.name == name]
    if not chosen:
        where = ", ".join(c.name for c in courses) if not courses[0].implicit else \
            f"{courses[0].name} (COURSE_NAME; no {COURSES_VAR} is set)"
        raise ConfigError([f"--course {name}: no such course; the courses are: {where}"])
    return chosen
