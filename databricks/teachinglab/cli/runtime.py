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
from databricks.teachinglab.cli.config import ConfigError, read_env
from databricks.teachinglab.cli.courses import Course, read_courses, select
from databricks.teachinglab.cli.wiring import LEDGER_LOST, ledger_guard
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


def setup_logging(args: argparse.Namespace, secrets: list[str] = (), settings: Settings | None = None,
                  course: str | None = None) -> None:
    """`course`: a run of one course among several; each line then names it, e.g. [bigdata]."""
    journald = getattr(args, "journald", False) or (settings is not None and settings.logging.journald)
    tag = f"[{course}] " if course else ""
    fmt = f"<%(priority)d>%(name)s: {tag}%(message)s" if journald else \
        f"%(asctime)s %(levelname)s %(name)s: {tag}%(message)s"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(fmt))
    handler.addFilter(_Redact(list(secrets)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if getattr(args, "verbose", False) else logging.INFO)
    # The SDK logs its host-metadata probe and retries at WARNING/DEBUG; ours say what matters.
    logging.getLogger("databricks.sdk").setLevel(logging.ERROR)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    logging.getLogger("azure").setLevel(logging.WARNING)


def courses_or_exit(course: str | None, *, need_workspace: bool = True, need_mail: bool = False,
                    strict: bool = True) -> list[Course]:
    """The courses this run covers (TEACHINGLAB_COURSES_FILE, or the one implicit course), each
    checked; every problem printed at once and exit 2."""
    try:
        return select(read_courses(read_env(), need_workspace=need_workspace, need_mail=need_mail), course,
                      strict=strict)
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
        if lost_database(settings, err):
            log.error("%s: %s", job, lost_database_line(err))
            alert_without_ledger(settings, job, LedgerUnavailable(lost_database_line(err)))
            return EXIT_FAILED
        log.error("%s stopped: %s: %s", job, type(err).__name__, err)
        return explain(settings, err, job=job)


def lost_database(settings: Settings, err: BaseException) -> bool:
    """The PostgreSQL server went away mid-run (a failover, the network, a restart)."""
    return is_postgres(settings.ledger.database_url) and isinstance(err, LEDGER_LOST)


def lost_database_line(err: BaseException) -> str:
    first = " ".join(str(err).split())[:200]
    return (f"lost the ledger's PostgreSQL connection mid-run ({type(err).__name__}: {first}); the transaction "
            "in progress was rolled back, so nothing half-written was kept, and the next run starts over from "
            "what was committed")


def alert_without_ledger(settings: Settings, job: str, err: Exception) -> None:
    """Tell the admin straight through the transport, once per cause per day: the outbox lives in
    the ledger that just failed. What was sent is remembered in the account's data folder."""
    import hashlib
    now = utcnow()
    tz = settings.quota.timezone
    cause = hashlib.sha256(f"{job}:{type(err).__name__}:{err}".encode()).hexdigest()[:12]
    key = f"failure:{job}-ledger-{cause}:{now.astimezone(tz).date()}"
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


def _alert_once(settings: Settings, job: str, err: Exception, key: str, state: Path, now: datetime) -> None:
    import json
    from databricks.teachinglab.adapters.deadline import Deadline
    from databricks.teachinglab.adapters.mail.render import render
    from databricks.teachinglab.adapters.mail.transports import make_transport
    from databricks.teachinglab.core.messages import EVENTS, OutgoingMail, show_local
    log = logging.getLogger(job)
    tz = settings.quota.timezone
    try:
        sent = json.loads(state.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        sent = {}
    if key in sent:
        return
    if not settings.mail.admin_email:
        log.error("no ADMIN_EMAIL: nobody can be told that the ledger is unusable")
        return
    rendered = render("failure", {"job": job, "at": show_local(now, tz), "tz_name": tz.key,
                                  "failures": [{"cluster": "(the ledger)", "error": str(err), "traceback": ""}],
                                  "contact": settings.mail.admin_email}, templates_dir=settings.mail.templates_dir)
    message = OutgoingMail(dedupe_key=key, event=EVENTS["failure"], sender=settings.mail.sender,
                           to_addrs=settings.mail.admin_email, cc_addrs="", subject=rendered.subject,
                           text_body=rendered.text, html_body=rendered.html)
    try:
        make_transport(settings.mail.transport, settings.mail).send(
            message, deadline=Deadline(min(settings.mail.budget_seconds, 5)))
    except Exception as send_err:  # noqa: BLE001 - journald is the last resort
        log.error("could not email the admin about the ledger either (%s: %s)", type(send_err).__name__, send_err)
        return
    sent = {k: v for k, v in sent.items() if k.endswith(str(now.astimezone(tz).date()))}
    sent[key] = now.isoformat()
    try:
        state.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        state.write_text(json.dumps(sent), encoding="utf-8")
    except OSError as write_err:
        log.error("alert sent, but %s cannot be written (%s): the next run may send it again", state, write_err)


def secrets_of(settings: Settings) -> list[str]:
    from databricks.teachinglab.core.urls import userinfo
    out = [settings.workspace.token or "", settings.workspace.account_token or ""]
    out += userinfo(settings.ledger.database_url)
    out += [settings.mail.acs_key, settings.mail.smtp_password, settings.status.secret or "",
            settings.status.password or ""]
    return out
