"""What every entry point shares: logging setup, the run lock, exit codes, and one clear line
(never a traceback) for bad configuration, an unreachable workspace or an unusable ledger."""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterator

from databricks.teachinglab.cli.clock import utcnow
from databricks.teachinglab.cli.config import ConfigError
from databricks.teachinglab.cli.courses import Course, read_courses, select
from databricks.teachinglab.cli.wiring import LEDGER_LOST, ledger_guard, unwritable_ledger
from databricks.teachinglab.adapters.ledger.lock import advisory_lock, file_lock
from databricks.teachinglab.adapters.ledger.models import LedgerConfigError, is_postgres
from databricks.teachinglab.core.errors import AdminError, LedgerUnavailable, LockBusy, LockLost, WorkspaceUnavailable
from databricks.teachinglab.core.settings import Settings

EXIT_FAILED = 1     # some clusters (or messages) failed, or the run's deadline was reached
EXIT_CONFIG = 2
EXIT_WORKSPACE = 3  # the workspace cannot be used at all: credentials, network
EXIT_LEDGER = 4     # the ledger cannot be used: corrupt, unreadable, missing after it existed
EXIT_LOCKED = 75    # EX_TEMPFAIL: another run is still going; cron tries again next time

# journald priorities for `systemd-cat --level-prefix`
PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


class _Redact(logging.Filter):
    def __init__(self, secrets: list[str]):
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            text = record.getMessage()
            for secret in self.secrets:
                text = text.replace(secret, "***")
            record.msg, record.args = text, None
        record.priority = PRIORITY.get(record.levelno, 6)
        return True


def add_logging_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="store_true", help="also log no-op decisions (DEBUG)")
    parser.add_argument("--journald", action="store_true",
                        help="prefix lines with <N> priorities for `systemd-cat --level-prefix` "
                             "(also on when LOG_JOURNALD=1)")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error instead of the one-line explanation")
    parser.add_argument("--strict-config", action="store_true",
                        help="a variable that looks like a misspelt setting (e.g. DATABRICKS_MAX_UPTIM) is an "
                             "error (exit 2), not a warning")
    parser.add_argument("--log-to", choices=("journald", "syslog", "file", "stderr"), default="stderr",
                        help="where the log goes (the cron wrappers set it): alert mails say where to read it; "
                             "file: a rotated teachinglab.log in TEACHINGLAB_LOG_DIR or the ledger's folder")
    parser.add_argument("--at", metavar="ISO_TIME",
                        help="run as of this time (the emulated workspace only: its /_sandbox/now)")


def explain(settings: Settings | None, err: BaseException, *, job: str) -> int:
    """One line on stderr saying what went wrong and what to do; returns the exit code. Pipe,
    workspace and ledger errors are expected; anything else is a bug, reported as such."""
    from databricks.teachinglab.core.errors import LedgerUnavailable
    if isinstance(err, BrokenPipeError):
        # `... --json | head`: the reader has what it wanted. Silence the flush at exit too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        print(f"{job}: output stopped early: the reading side of the pipe closed", file=sys.stderr)
        return 0
    if isinstance(err, LedgerUnavailable):
        print(f"{job}: {err}", file=sys.stderr)
        return EXIT_LEDGER
    if isinstance(err, LedgerConfigError):
        print(f"{job}: configuration error: {err}", file=sys.stderr)
        return EXIT_CONFIG
    if settings is not None and lost_database(settings, err):
        print(f"{job}: {lost_database_line(err)}", file=sys.stderr)
        return EXIT_FAILED
    from databricks.teachinglab.adapters.workspace import failure_kind
    if settings is not None and failure_kind(err) != "other":
        line, code = workspace_advice(settings, err)
        print(f"{job}: {line}", file=sys.stderr)
        return code
    logging.getLogger(job).debug("unexpected error", exc_info=err)
    print(f"{job}: unexpected error: {type(err).__name__}: {err} (run again with --debug for the traceback, "
          "and report it)", file=sys.stderr)
    return EXIT_FAILED


LOG_FILE_BYTES = 5_000_000   # the wrappers' log file (no journald, no syslog) is rotated at this size
LOG_FILE_KEEP = 5            # and this many old files are kept (teachinglab.log.1 … .5)


class _LastError(logging.Handler):
    """Remembers the last error line, for the one line cron mails when a run logging to a file failed."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.line: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        self.line = record.getMessage()


LAST_ERROR = _LastError()


def with_log_target(settings: Settings, args: argparse.Namespace) -> Settings:
    """The settings with where this run logs (the wrappers' --log-to), so alert mails point there."""
    from dataclasses import replace
    target = getattr(args, "log_to", None) or "stderr"
    return replace(settings, logging=replace(settings.logging, target=target))


def setup_logging(args: argparse.Namespace, secrets: list[str] = (), settings: Settings | None = None,
                  course: str | None = None) -> None:
    """`course`: a run of one course among several; each line then names it, e.g. [bigdata].
    --log-to file (the wrappers, where neither journald nor syslog runs): the lines go to the
    settings' log file, rotated, and nothing to stderr, so cron mails only a failed run's last
    line (see failed_run_line)."""
    journald = getattr(args, "journald", False) or (settings is not None and settings.logging.journald)
    tag = (settings.environment_tag if settings is not None else "") + (f"[{course}] " if course else "")
    fmt = f"<%(priority)d>%(name)s: {tag}%(message)s" if journald else \
        f"%(asctime)s %(levelname)s %(name)s: {tag}%(message)s"
    handler = _file_handler(settings) if getattr(args, "log_to", None) == "file" and settings is not None else None
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
    else:
        fmt = f"%(asctime)s %(levelname)s %(name)s: {tag}%(message)s"
    handler.setFormatter(logging.Formatter(fmt))
    redact = _Redact(list(secrets))
    handler.addFilter(redact)
    LAST_ERROR.filters[:] = [redact]
    root = logging.getLogger()
    root.handlers[:] = [handler, LAST_ERROR]
    root.setLevel(logging.DEBUG if getattr(args, "verbose", False) else logging.INFO)
    # The SDK logs its host-metadata probe and retries at WARNING/DEBUG; ours say what matters.
    logging.getLogger("databricks.sdk").setLevel(logging.ERROR)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    logging.getLogger("azure").setLevel(logging.WARNING)


def _file_handler(settings: Settings) -> logging.Handler | None:
    from logging.handlers import RotatingFileHandler
    path = settings.logging.log_file
    if path is None:
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        handler = RotatingFileHandler(path, maxBytes=LOG_FILE_BYTES, backupCount=LOG_FILE_KEEP, encoding="utf-8")
        os.chmod(path, 0o600)  # the log names students and clusters
        return handler
    except OSError as err:
        print(f"warning: cannot write the log file {path} ({err.strerror or err}); logging to stderr instead "
              "(set TEACHINGLAB_LOG_DIR to a folder this account can write)", file=sys.stderr)
        return None


def failed_run_line(job: str, code: int, args: argparse.Namespace, settings: Settings | None) -> None:
    """With --log-to file, a failed run (not 0, not 75: another run held the lock) prints one line
    on stderr, which cron mails: what failed last and where the whole log is."""
    if getattr(args, "log_to", None) != "file" or code in (0, EXIT_LOCKED) or settings is None:
        return
    last = f": {LAST_ERROR.line}" if LAST_ERROR.line else ""
    print(f"{job} failed (exit {code}){last[:500]}; the whole log: {settings.logging.log_file}", file=sys.stderr)


def courses_or_exit(course: str | None, *, need_workspace: bool = True, need_mail: bool = False,
                    strict: bool = True, args: argparse.Namespace | None = None) -> list[Course]:
    """The courses this run covers (TEACHINGLAB_COURSES_FILE, or the one implicit course), each
    checked; every problem printed at once and exit 2. A variable that looks like a misspelt
    setting is a warning, and with --strict-config one of those problems."""
    from databricks.teachinglab.cli.config import read_dotenvs
    from databricks.teachinglab.cli.variables import misspelt_lines
    dotenv, where = read_dotenvs(os.environ)
    misspelt = misspelt_lines(os.environ, dotenv, where)
    strict_config = bool(getattr(args, "strict_config", False))
    if not strict_config:
        prefix = "<4>" if getattr(args, "journald", False) else ""
        for line in misspelt:
            print(f"{prefix}warning: {line}", file=sys.stderr)
    try:
        if strict_config and misspelt:
            raise ConfigError(misspelt + ["(--strict-config: fix or remove these, then run again)"])
        return select(read_courses({**dotenv, **os.environ}, need_workspace=need_workspace, need_mail=need_mail),
                      course, strict=strict)
    except ConfigError as err:
        _config_problems(err)


def _config_problems(err: ConfigError):
    print("Configuration problems (set them in the environment or in .env):", file=sys.stderr)
    for problem in err.problems:
        print(f"  - {problem}", file=sys.stderr)
    sys.exit(EXIT_CONFIG)


@contextlib.contextmanager
def run_lock(settings: Settings, *, wait_seconds: float = 0) -> Iterator[None]:
    """The run lock of this ledger: PostgreSQL's advisory lock when the ledger is there (so a
    standby VM with the same cron lines waits its turn), else a file lock beside the ledger."""
    ledger = settings.ledger
    if is_postgres(ledger.database_url):
        with advisory_lock(ledger.database_url, ledger.schema or "public", wait_seconds=wait_seconds):
            yield
    else:
        with file_lock(ledger.lock_path, wait_seconds=wait_seconds):
            yield


def workspace_advice(settings: Settings, err: BaseException) -> tuple[str, int]:
    """One line saying what is wrong with the workspace and what to do, and the exit code."""
    from databricks.teachinglab.adapters.workspace import failure_kind
    kind = failure_kind(err)
    host = settings.workspace.host or f"profile {settings.workspace.profile}"
    if kind == "auth":
        return (f"the workspace {host} refused the credentials ({type(err).__name__}): set a valid "
                "DATABRICKS_TOKEN (User settings > Developer > Access tokens) or auth profile in .env; every run "
                "fails the same way until then", EXIT_WORKSPACE)
    if kind == "network":
        return (f"cannot reach the workspace {host} ({type(err).__name__}): check DATABRICKS_HOST and the "
                f"VM's network (curl -sI {settings.workspace.host or '<host>'}); the next run tries again", EXIT_WORKSPACE)
    if kind == "hung":
        return (f"the workspace {host} accepted the connection but never answered within the run's "
                f"{settings.workspace.poll_deadline_seconds:g} s deadline: it is down or hung (check "
                "https://status.azuredatabricks.net and curl -sI the host); the next run tries again", EXIT_WORKSPACE)
    if kind == "throttled":
        return (f"the workspace {host} was throttling requests (HTTP 429) until the run's "
                f"{settings.workspace.poll_deadline_seconds:g} s deadline passed; the next run tries again", EXIT_FAILED)
    if kind == "deadline":
        return (f"the workspace {host} was too slow, and the run's {settings.workspace.poll_deadline_seconds:g} s "
                "deadline passed; the next run tries again", EXIT_FAILED)
    return f"the workspace {host} answered with an error: {type(err).__name__}: {err}", EXIT_WORKSPACE


def run_locked(settings: Settings, job: str, body: Callable[[], int], *, debug: bool = False,
               wait_seconds: float = 0) -> int:
    """Run a job's body under the run lock. Every way it can end is one log line (at err priority
    in journald when it failed, never a bare print that journald would file as info) and an exit
    code; the admin hears of it through the outbox, or straight through the transport when the
    ledger itself failed."""
    log = logging.getLogger(f"databricks.{job}" if "." not in job else job)
    try:
        if settings.ledger.db_path is not None:
            ledger_guard(settings).check(settings.ledger.db_path)  # before the lock makes any folder
        with run_lock(settings, wait_seconds=wait_seconds):
            return body()
    except WorkspaceUnavailable as err:
        line, code = workspace_advice(settings, err.__cause__ or err)
        log.error("%s: %s (the admin was alerted)", job, line)
        return code
    except LockBusy as busy:
        log.warning("%s: another run is in progress (%s); this run stops without doing anything", job, busy)
        return EXIT_LOCKED
    except LockLost as lost:
        log.error("%s: %s", job, lost)
        return EXIT_FAILED
    except LedgerConfigError as err:
        log.error("%s: configuration error: %s", job, err)
        alert_without_ledger(settings, job, err)  # a standby pair that lost its server must not be silent
        return EXIT_CONFIG
    except AdminError:
        raise  # the admin CLI says it and exits 2
    except LedgerUnavailable as err:
        log.error("%s stopped: %s", job, err)
        alert_without_ledger(settings, job, err)
        return EXIT_LEDGER
    except Exception as err:  # noqa: BLE001 - one line and an exit code; --debug for the traceback
        if debug:
            raise
        unusable = ledger_unusable(settings, err)
        if unusable is not None:
            log.error("%s stopped: %s", job, unusable)
            alert_without_ledger(settings, job, unusable)
            return EXIT_LEDGER
        if lost_database(settings, err):
            log.error("%s: %s", job, lost_database_line(err))
            alert_without_ledger(settings, job, LedgerUnavailable(lost_database_line(err)))
            return EXIT_FAILED
        log.error("%s stopped: %s: %s", job, type(err).__name__, err)
        return explain(settings, err, job=job)


def ledger_unusable(settings: Settings | None, err: BaseException) -> LedgerUnavailable | None:
    """`err` as LedgerUnavailable when it says the ledger cannot be used (opened, written, its
    lock taken); None for any other error."""
    if settings is None:
        return None
    if isinstance(err, LedgerUnavailable):
        return err
    line = unwritable_ledger(settings, err)
    return LedgerUnavailable(line) if line else None


def lost_database(settings: Settings, err: BaseException) -> bool:
    """The PostgreSQL server went away mid-run (a failover, the network, a restart)."""
    return is_postgres(settings.ledger.database_url) and isinstance(err, LEDGER_LOST)


def lost_database_line(err: BaseException) -> str:
    first = " ".join(str(err).split())[:200]
    return (f"lost the ledger's PostgreSQL connection mid-run ({type(err).__name__}: {first}); the transaction "
            "in progress was rolled back, so nothing half-written was kept, and the next run starts over from "
            "what was committed")


ALERT_TRIES_PER_DAY = 3          # a direct alert that cannot be sent is tried again, at most this often a day
ALERT_RETRY_SECONDS = 3600       # and no sooner than this after the last try


def alert_without_ledger(settings: Settings, job: str, err: Exception) -> None:
    """Tell the admin straight through the transport, once per cause per day whatever the cadence:
    the outbox lives in the ledger that just failed. What was sent (or tried) is remembered in the
    account's data folder, which outlives the ledger."""
    import hashlib
    import re
    now = utcnow()
    tz = settings.quota.timezone
    # The cause, without what changes from run to run (a time, a pid, a port in a driver's text).
    # Not the job either: the poll, the close and a command that meet the same broken ledger are one cause.
    cause = re.sub(r"\d+", "#", f"{type(err).__name__}:{err}")
    key = f"failure:ledger-{hashlib.sha256(cause.encode()).hexdigest()[:12]}:{now.astimezone(tz).date()}"
    key = f"{settings.course_id}/{key}" if settings.course_id else key  # as outbox.finished scopes it
    state = (settings.ledger.state_dir or Path.home()) / "alerts-sent.json"
    with _state_lock(state):  # several courses' runs may fail at once (one process each)
        _alert_once(settings, job, err, key, state, now)


@contextlib.contextmanager
def _state_lock(state: Path) -> Iterator[None]:
    import fcntl
    state.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(state.with_suffix(".lock"), "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _due(entry: dict | None, now: datetime) -> bool:
    """Whether this cause's alert is to be (re)tried now: never sent today, or tried and failed
    fewer than ALERT_TRIES_PER_DAY times, the last at least ALERT_RETRY_SECONDS ago."""
    if not entry:
        return True
    if entry.get("status") == "sent" or entry.get("tries", 1) >= ALERT_TRIES_PER_DAY:
        return False
    try:
        last = datetime.fromisoformat(entry["at"])
    except (KeyError, TypeError, ValueError):
        return True
    return (now - last).total_seconds() >= ALERT_RETRY_SECONDS


def _alert_once(settings: Settings, job: str, err: Exception, key: str, state: Path, now: datetime) -> None:
    import json
    from databricks.teachinglab.adapters.deadline import Deadline
    from databricks.teachinglab.adapters.mail.render import render
    from databricks.teachinglab.adapters.mail.transports import make_transport
    from databricks.teachinglab.core.messages import EVENTS, FailureItem, OutgoingMail, failure_context, show_local
    log = logging.getLogger(job)
    tz = settings.quota.timezone
    try:
        sent = json.loads(state.read_text(encoding="utf-8"))
        sent = sent if isinstance(sent, dict) else {}
    except (OSError, ValueError):
        sent = {}
    entry = sent.get(key) if isinstance(sent.get(key), dict) else ({"status": "sent"} if key in sent else None)
    if not _due(entry, now):
        return
    if not settings.mail.admin_email:
        log.error("no ADMIN_EMAIL: nobody can be told that the ledger is unusable")
        return
    today = str(now.astimezone(tz).date())
    sent = {k: v for k, v in sent.items() if k.endswith(today)}
    tries = (entry or {}).get("tries", 0) + 1

    def remember(status: str) -> bool:
        sent[key] = {"status": status, "tries": tries, "at": now.isoformat()}
        try:
            state.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = state.with_suffix(".tmp")
            tmp.write_text(json.dumps(sent), encoding="utf-8")
            tmp.replace(state)
            return True
        except OSError as write_err:
            log.error("%s cannot be written (%s): the admin may get this alert again at the next run", state,
                      write_err)
            return False

    # Remembered before the send: a run killed mid-send, or a send that fails after the service
    # took the message, is retried only an hour later and at most ALERT_TRIES_PER_DAY times a day.
    remember("trying")
    line = " ".join(str(err).split())
    context = failure_context(job, show_local(now, tz), tz.key, [FailureItem("(the ledger)", line)], handled=[],
                              contact=settings.mail.admin_email, log_hint=settings.logging.hint)
    rendered = render("failure", context, templates_dir=settings.mail.templates_dir)
    message = OutgoingMail(dedupe_key=key, event=EVENTS["failure"], sender=settings.mail.sender,
                           to_addrs=settings.mail.admin_email, cc_addrs="", subject=rendered.subject,
                           text_body=rendered.text, html_body=rendered.html)
    try:
        make_transport(settings.mail.transport, settings.mail).send(
            message, deadline=Deadline(min(settings.mail.budget_seconds, 5)))
    except Exception as send_err:  # noqa: BLE001 - the log is the last resort
        log.error("could not email the admin about the ledger either (%s: %s); try %d of %d today, the next in "
                  "an hour at the earliest", type(send_err).__name__, send_err, tries, ALERT_TRIES_PER_DAY)
        remember("failed")
        return
    remember("sent")


def secrets_of(settings: Settings) -> list[str]:
    from databricks.teachinglab.core.urls import userinfo
    out = [settings.workspace.token or "", settings.workspace.account_token or ""]
    out += userinfo(settings.ledger.database_url)
    out += [settings.mail.acs_key, settings.mail.smtp_password, settings.status.secret or "",
            settings.status.password or ""]
    return out
