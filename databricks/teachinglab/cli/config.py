"""Settings from the environment (or `.env` at the repository root; the environment wins).

Every problem is collected, so an admin fixes the whole file in one go instead of one variable
per run. Secrets (the token, a database password) never appear in a message or a repr.
"""
from __future__ import annotations

import os
import math
import re
from datetime import date
from pathlib import Path
from typing import Mapping
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from databricks.teachinglab.adapters.policy_file import PolicyFileError, load_policy
from databricks.teachinglab.adapters.prices import PACKAGED_PRICES, load_prices
from databricks.teachinglab.core.policy import Policy
from databricks.teachinglab.core.prices import PriceTable
from databricks.teachinglab.core.units import MINUTES, UNITS, QuotaUnit
from databricks.teachinglab.core.urls import shown_url
from databricks.teachinglab.core.roster import EMAIL_RE
from databricks.teachinglab.core.settings import (
    ACCESS_MODES, MIN_RUNTIME, ClusterSettings, ContentSettings, LedgerSettings, LoggingSettings, MailSettings, QuotaSettings,
    Settings, StatusPageSettings, WorkspaceSettings, runtime_of)

REPO_ROOT = Path(__file__).resolve().parents[3]
DOTENV = REPO_ROOT / ".env"
ENVIRONMENTS = ("dev", "prod")
# Any of these lets databricks-sdk authenticate without DATABRICKS_TOKEN (its unified auth).
OTHER_AUTH_VARS = ("DATABRICKS_CONFIG_PROFILE", "DATABRICKS_AUTH_TYPE", "DATABRICKS_CLIENT_ID",
                   "ARM_CLIENT_ID", "AZURE_CLIENT_ID", "DATABRICKS_AZURE_RESOURCE_ID")


# The account API (account groups, workspace assignments) has its own host and credentials.
ACCOUNT_HOST = "https://accounts.azuredatabricks.net"
ACCOUNT_AUTH_VARS = ("DATABRICKS_ACCOUNT_PROFILE", "DATABRICKS_ACCOUNT_TOKEN", "DATABRICKS_CLIENT_ID",
                     "ARM_CLIENT_ID", "AZURE_CLIENT_ID")


class ConfigError(Exception):
    """Raised with every problem found; entry points print them and exit 2."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def parse_connection_string(text: str) -> tuple[str, str]:
    """(endpoint, access key) of an ACS connection string; ValueError says the expected shape."""
    parts = dict(p.split("=", 1) for p in text.split(";") if "=" in p)
    parts = {k.strip().lower(): v.strip() for k, v in parts.items()}
    endpoint, key = parts.get("endpoint"), parts.get("accesskey")
    if not endpoint or not key:
        raise ValueError("AZURE_EMAIL_CONNECTION_STRING must look like "
                         "endpoint=https://<resource>.communication.azure.com/;accesskey=<key>")
    return endpoint.rstrip("/"), key


def _flag(value: str | None, default: bool) -> bool:
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def machine_timezone(env: Mapping[str, str]) -> str:
    """The machine's IANA zone: $TZ, else the /etc/localtime link, else /etc/timezone, else UTC."""
    tz = env.get("TZ", "").lstrip(":")
    if tz:
        return tz
    try:
        target = os.readlink("/etc/localtime")
        if "zoneinfo/" in target:
            return target.split("zoneinfo/", 1)[1]
    except OSError:
        pass
    try:
        return Path("/etc/timezone").read_text().strip() or "UTC"
    except OSError:
        return "UTC"


def data_home(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_DATA_HOME") or str(Path(env.get("HOME") or Path.home()) / ".local" / "share")
    return Path(base) / "teachinglab"


def normalize_host(raw: str) -> str:
    """Accept `adb-1.azuredatabricks.net`, `https://…/` and `http://127.0.0.1:PORT` alike."""
    host = raw.strip().rstrip("/")
    if "://" not in host:
        host = "https://" + host
    return host


def loose_permissions(path: Path) -> bool:
    """True when a secrets file can be read by other accounts on the VM (it should be 600)."""
    try:
        return bool(path.stat().st_mode & 0o077)
    except OSError:
        return False


def read_dotenv(path: Path) -> dict[str, str]:
    """`.env`'s values; also exported (the environment wins) so the SDK's own auth sees them."""
    from dotenv import dotenv_values, load_dotenv

    if not path.exists():
        return {}
    if loose_permissions(path):
        import sys
        print(f"warning: {path} holds secrets but others can read it: chmod 600 {path}", file=sys.stderr)
    values = {k: v for k, v in dotenv_values(path).items() if v is not None}
    load_dotenv(path, override=False)
    return values


def read_env(dotenv_path: Path | None = None) -> dict[str, str]:
    """The process environment over `.env`."""
    return {**read_dotenv(dotenv_path or DOTENV), **os.environ}


def env_files(environment: Mapping[str, str]) -> list[Path]:
    """The dotenv files a run reads, the one that wins first: with TEACHINGLAB_ENV=dev (in the
    environment, or in `.env`), `.env.dev` and then `.env`; otherwise `.env` alone. An unknown
    environment name reads `.env` only (load_settings then says what is wrong)."""
    name = (environment.get("TEACHINGLAB_ENV") or "").strip().lower()
    if not name and DOTENV.exists():
        from dotenv import dotenv_values
        name = (dotenv_values(DOTENV).get("TEACHINGLAB_ENV") or "").strip().lower()
    return ([DOTENV.with_name(f".env.{name}")] if name in ENVIRONMENTS else []) + [DOTENV]


def read_dotenvs(environment: Mapping[str, str]) -> tuple[dict[str, str], str]:
    """The values of env_files (the environment still wins over all of them), and their names."""
    files = env_files(environment)
    values: dict[str, str] = {}
    for path in files:  # the winner first: each also exports its values without overriding any
        values = {**read_dotenv(path), **values}
    return values, " or ".join(str(p) for p in files)


def is_loopback(host: str | None) -> bool:
    """The emulated workspace (make demo, tests, a sandbox started by hand) runs on loopback."""
    parts = _split(host) if host else None
    return parts is not None and parts.hostname in ("127.0.0.1", "localhost", "::1")


def _split(url: str):
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        return parts
    except ValueError:
        return None


def plain_http(name: str, url: str, what: str) -> list[str]:
    """http:// sends `what` in clear text: only to this machine itself (the emulator, a local relay)."""
    parts = _split(url)
    if parts is not None and parts.scheme == "http" and not is_loopback(url):
        return [f"{name}={shown_url(url)!r} uses http://, which would send {what} in clear text: use https:// "
                "(http:// is for a service on this machine itself, 127.0.0.1 or localhost)."]
    return []


def load_settings(env: Mapping[str, str], *, need_workspace: bool = True, need_mail: bool = False) -> Settings:
    """`need_mail`: a cron job; with a real workspace, mail must really go out (acs or smtp)."""
    problems: list[str] = []

    def text(name: str) -> str | None:
        value = env.get(name)
        return value.strip() if value and value.strip() else None

    def minutes(name: str, default: int) -> int:
        raw = text(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            problems.append(f"{name}={raw!r} is not a whole number of minutes (e.g. {name}={default}).")
            return default
        if not 1 <= value <= 24 * 60:
            problems.append(f"{name}={value} must be between 1 and 1440 minutes (one day).")
        return value

    def seconds(name: str, default: float, top: float, advice: str) -> float:
        """A number of seconds from 1 to `top`; `advice` follows the problem's first clause."""
        raw = text(name) or f"{default:g}"
        try:
            value = float(raw)
            if not 1 <= value <= top:
                raise ValueError
        except ValueError:
            problems.append(f"{name}={raw!r} must be a number of seconds from 1 to {top:g}{advice}")
            return float(default)
        return value

    def email(name: str) -> str | None:
        raw = text(name)
        if raw is not None and not EMAIL_RE.match(raw):
            problems.append(f"{name}={raw!r} is not an email address (e.g. {name}=admin@university.edu).")
        return raw

    host = text("DATABRICKS_HOST")
    token = text("DATABRICKS_TOKEN")
    profile = text("DATABRICKS_CONFIG_PROFILE")
    if host is not None:
        host = normalize_host(host)
        parts = _split(host)
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or parts.username:
            problems.append(f"DATABRICKS_HOST={shown_url(host)!r} is not a workspace URL "
                            "(e.g. https://adb-123.azuredatabricks.net).")
        else:
            problems += plain_http("DATABRICKS_HOST", host, "the token")
    if need_workspace:
        if host is None and profile is None:
            problems.append("DATABRICKS_HOST is not set: set it to the workspace URL, or set "
                            "DATABRICKS_CONFIG_PROFILE to a profile in ~/.databrickscfg.")
        elif token is None and not any(text(v) for v in OTHER_AUTH_VARS):
            problems.append("DATABRICKS_TOKEN is not set: set a personal access token, or another "
                            "databricks-sdk auth setting such as DATABRICKS_CONFIG_PROFILE.")

    unit_raw = (text("QUOTA_UNIT") or "minutes").lower()
    unit = UNITS.get(unit_raw)
    if unit is None:
        problems.append(f"QUOTA_UNIT={unit_raw!r} is not a quota unit: use minutes (uptime, the default), "
                        "dbu (DBUs from node-time) or usd (the cost: DBUs and VMs, from the price table).")
        unit = MINUTES
    policy_path = text("QUOTA_POLICY_FILE")
    if unit is MINUTES:
        warn, hard = minutes(unit.warn_var, 400), minutes(unit.max_var, 480)
    elif policy_path and not (text(unit.warn_var) or text(unit.max_var)):
        warn = hard = None  # the policy file's [daily] gives them
    else:
        warn, hard = _unit_limit(text, unit, unit.warn_var, problems), _unit_limit(text, unit, unit.max_var, problems)
    if warn is not None and hard is not None and warn >= hard:
        problems.append(f"{unit.warn_var} ({warn:g}) must be less than {unit.max_var} "
                        f"({hard:g}), or no warning would ever be sent before a termination.")

    defaults = (warn, hard) if warn is not None and hard is not None else None
    policy = Policy.daily_only(unit, *defaults) if defaults else None
    if policy_path:
        try:
            policy = load_policy(Path(policy_path).expanduser(), unit, defaults=defaults)
            warn, hard = policy.caps.daily_warn, policy.caps.daily_max
        except PolicyFileError as err:
            problems.extend(err.messages)

    admin = email("ADMIN_EMAIL")
    sender = email("EMAIL_SENDER")
    report_to = email("REPORT_RECIPIENT_EMAIL")

    tz_name = text("QUOTA_TIMEZONE") or machine_timezone(env)
    try:
        tz = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(f"QUOTA_TIMEZONE={tz_name!r} is not an IANA time zone (e.g. Asia/Jerusalem).")
        tz = ZoneInfo("UTC")

    database_url = text("DATABASE_URL")
    if database_url and not re.match(r"^(sqlite|postgres|postgresql|postgresext)://", database_url):
        problems.append("DATABASE_URL must be a peewee db_url such as sqlite:////var/lib/lab.db "
                        "or postgresql://user@host/db.")
    if database_url and database_url.startswith("postgres"):
        info = database_url.partition("://")[2].rsplit("@", 1)[0] if "@" in database_url else ""
        if any(ch in info for ch in "@#?/") or _split(database_url) is None:
            problems.append(f"DATABASE_URL={shown_url(database_url)!r} cannot be read as a URL: a user or password "
                            "holding @ # ? / or : must be percent-encoded there (@ as %40, # as %23, ? as %3F, "
                            "/ as %2F), and the port must be a number.")
        import importlib.util
        if importlib.util.find_spec("psycopg2") is None:
            problems.append("DATABASE_URL points at PostgreSQL, but psycopg2 is not installed: "
                            ".venv/bin/pip install psycopg2-binary")
    db_raw = text("CLUSTER_UPTIMES_DB")
    db_path = Path(db_raw).expanduser() if db_raw else data_home(env) / "cluster_uptimes.db"

    from databricks.teachinglab.adapters.mail.transports import TRANSPORTS
    transport = (text("EMAIL_TRANSPORT") or "console").lower()
    if need_mail and not text("EMAIL_TRANSPORT") and host and not is_loopback(host):
        problems.append("EMAIL_TRANSPORT is not set, so warnings and reports would only be printed (console): "
                        "set EMAIL_TRANSPORT to acs or smtp (console and file are for the demo and tests).")
    if transport not in TRANSPORTS:
        problems.append(f"EMAIL_TRANSPORT={transport!r} is not one of: {', '.join(sorted(TRANSPORTS))}.")

    if transport == "acs":
        if not text("AZURE_EMAIL_CONNECTION_STRING") and not (
                text("AZURE_EMAIL_ENDPOINT") and text("AZURE_EMAIL_ACCESS_KEY")):
            problems.append("EMAIL_TRANSPORT=acs needs AZURE_EMAIL_CONNECTION_STRING, or "
                            "AZURE_EMAIL_ENDPOINT and AZURE_EMAIL_ACCESS_KEY.")
        if not sender:
            problems.append("EMAIL_TRANSPORT=acs needs EMAIL_SENDER, a sender address verified in ACS "
                            "(e.g. DoNotReply@<domain>.azurecomm.net).")
    if transport == "smtp":
        if not text("SMTP_HOST"):
            problems.append("EMAIL_TRANSPORT=smtp needs SMTP_HOST (and SMTP_PORT, SMTP_USERNAME, SMTP_PASSWORD).")
        port = text("SMTP_PORT")
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            problems.append(f"SMTP_PORT={port!r} is not a port number (e.g. 587).")
    acs_endpoint, acs_key = None, ""
    if text("AZURE_EMAIL_CONNECTION_STRING"):
        try:
            acs_endpoint, acs_key = parse_connection_string(text("AZURE_EMAIL_CONNECTION_STRING"))
        except ValueError as err:
            problems.append(str(err) + ".")
    elif text("AZURE_EMAIL_ENDPOINT") and text("AZURE_EMAIL_ACCESS_KEY"):
        acs_endpoint, acs_key = text("AZURE_EMAIL_ENDPOINT").rstrip("/"), text("AZURE_EMAIL_ACCESS_KEY")
    if acs_endpoint:
        problems += plain_http("the ACS endpoint (AZURE_EMAIL_CONNECTION_STRING or AZURE_EMAIL_ENDPOINT)", acs_endpoint,
                               "the access key's signatures")
    pace = {}
    for name, default in (("ACS_SEND_PER_MINUTE", 5), ("ACS_SEND_PER_HOUR", 10)):
        raw = text(name) or str(default)
        if not raw.isdigit() or not 1 <= int(raw) <= 100_000:
            problems.append(f"{name}={raw!r} must be a whole number of sends from 1 to 100000 (default {default}: an "
                            "Azure-managed domain's limit; a custom domain allows 30 a minute and 100 an hour).")
            raw = str(default)
        pace[name] = int(raw)
    if pace["ACS_SEND_PER_HOUR"] < pace["ACS_SEND_PER_MINUTE"]:
        problems.append(f"ACS_SEND_PER_HOUR ({pace['ACS_SEND_PER_HOUR']}) must be at least ACS_SEND_PER_MINUTE "
                        f"({pace['ACS_SEND_PER_MINUTE']}).")
    smtp_port = text("SMTP_PORT") or "587"

    semester_start = None
    if text("SEMESTER_START"):
        try:
            semester_start = date.fromisoformat(text("SEMESTER_START"))
        except ValueError:
            problems.append(f"SEMESTER_START={text('SEMESTER_START')!r} is not a date like 2026-10-18.")
    budget_usd = None
    if text("COURSE_BUDGET_USD"):
        try:
            budget_usd = float(text("COURSE_BUDGET_USD"))
        except ValueError:
            budget_usd = math.nan
        if not (math.isfinite(budget_usd) and 0 < budget_usd <= 100_000_000):
            problems.append(f"COURSE_BUDGET_USD={text('COURSE_BUDGET_USD')!r} must be the semester's budget in USD, "
                            "a number above 0 like 2500: --create_from_csv refuses a plan whose worst case exceeds it.")
            budget_usd = None
    price_file = text("PRICE_TABLE_FILE")
    prices = None
    try:
        prices = load_prices(Path(price_file) if price_file else None)
    except (OSError, ValueError, KeyError, TypeError) as err:
        problems.append(f"PRICE_TABLE_FILE={price_file!r} cannot be read as a price table "
                        f"({type(err).__name__}: {err}); see databricks/teachinglab/adapters/prices.json.")

    if unit.priced and prices is not None:
        problems.extend(_unpriced_lab_types(env, prices, price_file, unit))

    templates = text("MAIL_TEMPLATES_DIR")
    if templates and not Path(templates).is_dir():
        problems.append(f"MAIL_TEMPLATES_DIR={templates!r} is not a folder.")

    parallel_raw = text("API_PARALLELISM") or "8"
    if not parallel_raw.isdigit() or not 1 <= int(parallel_raw) <= 64:
        problems.append(f"API_PARALLELISM={parallel_raw!r} must be a whole number from 1 to 64.")
        parallel_raw = "8"

    budget_raw = text("MAIL_BUDGET_SECONDS") or "8"
    try:
        budget = float(budget_raw)
        if not 0 <= budget <= 600:  # NaN and inf fail this too
            raise ValueError
    except ValueError:
        problems.append(f"MAIL_BUDGET_SECONDS={budget_raw!r} must be a number of seconds from 0 to 600 (default 8): "
                        "the time a run may spend sending mail.")
        budget = 8.0

    deadline = seconds("POLL_DEADLINE_SECONDS", 25, 3600,
                       "; keep it under the cron wrapper's `timeout 30` (default 25).")

    interval_raw = text("POLL_INTERVAL_MINUTES") or "1"
    if not interval_raw.isdigit() or not 1 <= int(interval_raw) <= 60:
        problems.append(f"POLL_INTERVAL_MINUTES={interval_raw!r} must be a whole number of minutes from 1 to 60: "
                        "how often cron runs the poll (1, the default, stops a group within a minute of its "
                        "quota; 15 is the light alternative).")
        interval_raw = "1"

    try:
        cluster = cluster_settings(env)
    except ValueError as err:
        problems.extend(str(err).splitlines())
        cluster = ClusterSettings()

    account_id = text("DATABRICKS_ACCOUNT_ID")
    account_host = normalize_host(text("DATABRICKS_ACCOUNT_HOST") or ACCOUNT_HOST) if account_id else None
    if account_host:
        problems += plain_http("DATABRICKS_ACCOUNT_HOST", account_host, "the account token")
    if account_id and not re.match(r"^[0-9a-fA-F-]{36}$", account_id):
        problems.append(f"DATABRICKS_ACCOUNT_ID={account_id!r} is not an account id (a UUID, shown in the "
                        "account console under your user menu).")
    if account_id and not any(text(v) for v in ACCOUNT_AUTH_VARS):
        problems.append("DATABRICKS_ACCOUNT_ID is set, but nothing authenticates to the account "
                        f"({account_host}): set DATABRICKS_ACCOUNT_PROFILE to an account profile in "
                        "~/.databrickscfg, or a service principal (DATABRICKS_CLIENT_ID and "
                        "DATABRICKS_CLIENT_SECRET, or ARM_CLIENT_ID, ARM_CLIENT_SECRET and ARM_TENANT_ID), or "
                        "DATABRICKS_ACCOUNT_TOKEN. Unset DATABRICKS_ACCOUNT_ID for workspace-local groups.")

    serverless = (text("SERVERLESS_NOTEBOOKS") or "unknown").lower()
    if serverless not in ("on", "off", "unknown"):
        problems.append(f"SERVERLESS_NOTEBOOKS={serverless!r} must be on, off or unknown: what the account "
                        "console shows for serverless compute for notebooks (no API reveals it).")

    managers = tuple(m.strip() for m in (text("LAB_MANAGERS") or "").split(",") if m.strip())
    for m in managers:
        if not (EMAIL_RE.match(m) or re.match(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                                              r"[0-9a-fA-F]{12}$", m)):
            problems.append(f"LAB_MANAGERS: {m!r} is neither a user's email nor a service principal's application "
                            "id (a UUID); list them comma-separated, e.g. LAB_MANAGERS=ta@uni.edu,"
                            "0f4e1a2b-3c4d-5e6f-7a8b-9c0d1e2f3a4b")
    warehouse_start = (text("WAREHOUSE_START") or "auto").lower()
    if warehouse_start not in ("auto", "never"):
        problems.append(f"WAREHOUSE_START={warehouse_start!r} must be auto (the close starts a stopped warehouse "
                        "to read the bill) or never (a stopped warehouse is left alone: billing not checked).")
        warehouse_start = "auto"
    serverless_ids = {}
    for var in ("SERVERLESS_INTERACTIVE_COMPUTE_ID", "SERVERLESS_AUTOMATED_COMPUTE_ID"):
        value = text(var)
        if value and not re.fullmatch(r"[A-Za-z0-9._-]{1,128}", value):
            problems.append(f"{var}={value!r} is not a serverless compute object's id: copy it from Settings > "
                            "Compute > Serverless compute > Permissions (see README, 'Serverless').")
            value = None
        serverless_ids[var] = value
    check_raw = text("SERVERLESS_CHECK_MINUTES")
    check_minutes = None
    if check_raw:
        if not check_raw.isdigit() or not 15 <= int(check_raw) <= 1440:
            problems.append(f"SERVERLESS_CHECK_MINUTES={check_raw!r} must be a whole number of minutes from 15 to "
                            "1440 (e.g. 60): how often the poll reads serverless use from billing, which lags by "
                            "hours anyway. Unset, the nightly close reads it once a day.")
        elif not text("DATABRICKS_WAREHOUSE_ID"):
            problems.append("SERVERLESS_CHECK_MINUTES is set, but DATABRICKS_WAREHOUSE_ID is not: serverless use is "
                            "read from system.billing.usage through a SQL warehouse; set its id.")
        else:
            check_minutes = int(check_raw)
    warehouse_wait = seconds("WAREHOUSE_WAIT_SECONDS", 45, 600, ": how long the nightly close waits for "
                             "DATABRICKS_WAREHOUSE_ID to answer (default 45).")
    content = content_settings(text, problems)
    environment = (text("TEACHINGLAB_ENV") or "prod").lower()
    if environment not in ENVIRONMENTS:
        problems.append(f"TEACHINGLAB_ENV={environment!r} must be dev or prod: it picks .env.dev or .env.prod (read "
                        "before .env) and, when not prod, names the environment in every log line, mail and report.")
        environment = "prod"

    if problems:
        raise ConfigError(problems)
    lock = text("TEACHINGLAB_LOCK_FILE")
    templates_dir = Path(templates) if templates else None
    return Settings(
        workspace=WorkspaceSettings(
            host=host, token=token, profile=profile, api_parallelism=int(parallel_raw),
            poll_deadline_seconds=deadline, poll_interval_seconds=int(interval_raw) * 60,
            serverless_notebooks=serverless, account_id=account_id,
            account_host=account_host, account_token=text("DATABRICKS_ACCOUNT_TOKEN"),
            account_profile=text("DATABRICKS_ACCOUNT_PROFILE"), warehouse_id=text("DATABRICKS_WAREHOUSE_ID"),
            serverless_interactive_id=serverless_ids["SERVERLESS_INTERACTIVE_COMPUTE_ID"],
            serverless_automated_id=serverless_ids["SERVERLESS_AUTOMATED_COMPUTE_ID"],
            serverless_check_minutes=check_minutes,
            warehouse_wait_seconds=warehouse_wait, lab_managers=managers, warehouse_start=warehouse_start),
        quota=QuotaSettings(unit=unit, warn_limit=warn, max_limit=hard, timezone=tz,
                            semester_start=semester_start, prices=prices,
                            price_file=price_file or str(PACKAGED_PRICES), policy=policy,
                            budget_usd=budget_usd),
        status=StatusPageSettings(url=(text("STATUS_PAGE_URL") or "").rstrip("/") or None,
                                  secret=env.get("STATUS_PAGE_SECRET") or None,
                                  password=env.get("STATUS_PAGE_PASSWORD") or None),
        mail=MailSettings(
            transport=transport, sender=sender or admin or "teachinglab@localhost", admin_email=admin,
            report_recipient=report_to or admin, templates_dir=templates_dir, budget_seconds=budget,
            file_dir=Path(text("EMAIL_FILE_DIR") or data_home(env) / "mail").expanduser(),
            smtp_host=text("SMTP_HOST"), smtp_port=int(smtp_port) if smtp_port.isdigit() else 587,
            smtp_username=text("SMTP_USERNAME"), smtp_password=env.get("SMTP_PASSWORD") or "",
            smtp_starttls=_flag(env.get("SMTP_STARTTLS"), True),
            smtp_ca_file=text("SMTP_CA_FILE") or text("REQUESTS_CA_BUNDLE"),
            acs_endpoint=acs_endpoint, acs_key=acs_key, ca_bundle=text("REQUESTS_CA_BUNDLE"),
            acs_send_per_minute=pace["ACS_SEND_PER_MINUTE"], acs_send_per_hour=pace["ACS_SEND_PER_HOUR"]),
        ledger=LedgerSettings(
            db_path=None if database_url else db_path, database_url=database_url,
            lock_path=Path(lock).expanduser() if lock else (
                db_path.with_suffix(".lock") if not database_url else data_home(env) / "teachinglab.lock"),
            state_dir=data_home(env)),
        cluster=cluster,
        logging=LoggingSettings(journald=env.get("LOG_JOURNALD") == "1", log_file=Path(
            text("TEACHINGLAB_LOG_DIR") or (db_path.parent if not database_url else data_home(env))).expanduser()
            / "teachinglab.log"),
        course_given=bool(text("COURSE_NAME")),
        content=content, environment=environment,
    )


def content_settings(text, problems: list[str]) -> ContentSettings:
    """UC_CATALOG, UC_CATALOG_STORAGE_ROOT, COURSE_NOTEBOOKS_DIR, COURSE_NOTEBOOKS_SHARED."""
    catalog = text("UC_CATALOG")
    if catalog is not None:
        catalog = catalog.lower()
        if not re.fullmatch(r"[a-z0-9_]{1,255}", catalog) or catalog in ("hive_metastore", "system", "samples"):
            problems.append(f"UC_CATALOG={catalog!r} must be a catalog name of letters, digits and underscores, and "
                            "not hive_metastore, system or samples (e.g. UC_CATALOG=bigdata_2026): the course's "
                            "catalog, created if missing, with one schema per group and a shared one.")
            catalog = None
    root = text("UC_CATALOG_STORAGE_ROOT")
    if root is not None and not re.match(r"^abfss://[^@/\s]+@[^/\s]+\.dfs\.core\.windows\.net(/\S*)?$", root):
        problems.append(f"UC_CATALOG_STORAGE_ROOT={root!r} is not an ADLS Gen2 location (abfss://container@account"
                        ".dfs.core.windows.net/path, covered by an external location): the catalog's managed "
                        "storage, needed when the metastore has none.")
        root = None
    folder = text("COURSE_NOTEBOOKS_DIR")   # checked where it is deployed: a moved folder never stops the poll
    notebooks = Path(folder).expanduser() if folder else None
    shared = (text("COURSE_NOTEBOOKS_SHARED") or "0").lower()
    if shared not in ("0", "1", "true", "false", "yes", "no"):
        problems.append(f"COURSE_NOTEBOOKS_SHARED={shared!r} must be 1 (one copy in a folder every group may read) "
                        "or 0 (a copy in each group's folder, the default).")
    return ContentSettings(catalog=catalog, storage_root=root, notebooks_dir=notebooks,
                           notebooks_shared=shared in ("1", "true", "yes"))


def _unit_limit(text, unit: QuotaUnit, name: str, problems: list[str]) -> float | None:
    """A limit of a DBU or USD quota: required, a positive number."""
    raw = text(name)
    example = f"{name}={6 if 'WARN' in name else 8}"
    if raw is None:
        problems.append(f"{name} is not set, and QUOTA_UNIT={unit.name} needs it: the daily limit in "
                        f"{unit.symbol} per group (e.g. {example}).")
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= unit.max_limit:
        problems.append(f"{name}={raw!r} must be a number of {unit.symbol} above 0 and at most "
                        f"{unit.max_limit:g} (e.g. {example}).")
        return None
    return value


def _unpriced_lab_types(env: Mapping[str, str], prices: PriceTable, price_file: str | None,
                        unit: QuotaUnit) -> list[str]:
    """A DBU or USD quota prices every node: the lab's own node types must be in the table."""
    wanted = {(env.get(v) or "").strip() for v in ("CLUSTER_NODE_TYPE", "CLUSTER_DRIVER_NODE_TYPE")}
    wanted = {t for t in wanted if t} or {ClusterSettings().node_type_id}
    where = price_file or str(PACKAGED_PRICES)
    return [f"QUOTA_UNIT={unit.name} needs the price of node type {t}, which the price table {where} lacks: "
            f"add it there (DBU per hour and the VM's $ per hour), or point PRICE_TABLE_FILE at a table "
            "that has it." for t in sorted(wanted - set(prices.node_types))]


def cluster_settings(env: Mapping[str, str]) -> ClusterSettings:
    """Raises ValueError with every problem, one per line, each naming its variable."""
    problems: list[str] = []

    def listed(name: str) -> tuple[str, ...]:
        return tuple(x.strip() for x in (env.get(name) or "").split(",") if x.strip())

    def number(name: str, default: int, lo: int, hi: int) -> int:
        raw = (env.get(name) or "").strip()
        if not raw:
            return default
        if not raw.isdigit() or not lo <= int(raw) <= hi:
            problems.append(f"{name}={raw!r} must be a whole number from {lo} to {hi} (e.g. {name}={default}).")
            return default
        return int(raw)

    d = ClusterSettings()
    given = (env.get("CLUSTER_ACCESS_MODE") or "").strip().lower()
    # Dedicated group clusters run as the group, and only an account group can be granted Unity
    # Catalog data ("Workspace-local groups cannot be granted access to data in a Unity Catalog
    # metastore"): without DATABRICKS_ACCOUNT_ID the groups are workspace-local, so standard.
    mode = given or ("dedicated" if (env.get("DATABRICKS_ACCOUNT_ID") or "").strip() else "standard")
    if mode not in ACCESS_MODES:
        problems.append(f"CLUSTER_ACCESS_MODE={mode!r} must be dedicated (each cluster dedicated to its "
                        "group, Unity Catalog), standard (shared, Unity Catalog) or none (legacy, no "
                        "Unity Catalog).")
        mode = d.access_mode
    version = (env.get("CLUSTER_SPARK_VERSION") or d.spark_version).strip()
    runtime = runtime_of(version)
    if runtime is None:
        problems.append(f"CLUSTER_SPARK_VERSION={version!r} is not a runtime key like 15.4.x-scala2.12.")
    elif runtime < MIN_RUNTIME[mode]:
        need = ".".join(map(str, MIN_RUNTIME[mode]))
        problems.append(f"CLUSTER_SPARK_VERSION={version!r} is too old for CLUSTER_ACCESS_MODE={mode}: it "
                        f"needs Databricks Runtime {need} or later (e.g. 15.4.x-scala2.12).")
    lo = number("CLUSTER_MIN_WORKERS", d.min_workers, 0, 1000)
    hi = number("CLUSTER_MAX_WORKERS", d.max_workers, 1, 1000)
    if hi < lo:
        problems.append(f"CLUSTER_MAX_WORKERS ({hi}) must be at least CLUSTER_MIN_WORKERS ({lo}).")
    course = (env.get("COURSE_NAME") or d.course).strip()
    if not re.match(r"^[a-z0-9][a-z0-9-]{1,30}$", course):
        problems.append(f"COURSE_NAME={course!r} must be 2-31 lowercase letters, digits or dashes (e.g. bigdata).")
    settings = ClusterSettings(course=course, spark_version=version,
                   node_type_id=(env.get("CLUSTER_NODE_TYPE") or d.node_type_id).strip(),
                   driver_node_type_id=(env.get("CLUSTER_DRIVER_NODE_TYPE") or "").strip() or None,
                   min_workers=lo, max_workers=hi,
                   autotermination_minutes=number("CLUSTER_AUTOTERMINATION_MINUTES", d.autotermination_minutes,
                                                  10, 10000),
                   pypi=listed("CLUSTER_PYPI_PACKAGES"), maven=listed("CLUSTER_MAVEN_PACKAGES"),
                   access_mode=mode, access_mode_given=bool(given))
    if problems:
        raise ValueError("\n".join(problems))
    return settings
