"""The composition root: a run's ledger, workspace client, transport and deadline, built once
from the settings. Only the CLI layer (and tests, which stand where it stands) call this."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import peewee as pw

from databricks.teachinglab.adapters.deadline import UNBOUNDED, Deadline
from databricks.teachinglab.adapters.ledger.guard import LedgerGuard
from databricks.teachinglab.adapters.ledger.models import db_proxy, open_ledger
from databricks.teachinglab.adapters.mail.transports import Transport, make_transport
from databricks.teachinglab.cli.config import data_home
from databricks.teachinglab.core.settings import Settings
from databricks.teachinglab.services.context import JobContext, no_workspace

if TYPE_CHECKING:  # databricks.sdk is imported only when a client is made: it takes most of a second
    from databricks.teachinglab.adapters.workspace import AccountDirectory, WorkspaceGateway


def ledger_guard(settings: Settings, *, init: bool = False) -> LedgerGuard:
    return LedgerGuard((settings.ledger.state_dir or data_home({})) / "ledgers.json", init=init)


def open_ledger_for(settings: Settings, now: datetime, *, init: bool = False) -> pw.Database:
    return open_ledger(db_path=settings.ledger.db_path, database_url=settings.ledger.database_url, now=now,
                       guard=ledger_guard(settings, init=init), schema=settings.ledger.schema)


def open_existing_ledger(settings: Settings, now: datetime) -> bool:
    """Open the ledger for reading what it knows, only when one exists (a command that merely looks
    never creates one); False when there is none yet."""
    if not (settings.ledger.database_url or (settings.ledger.db_path and settings.ledger.db_path.exists())):
        return False
    open_ledger_for(settings, now)
    return True


# What a query raises when the ledger's server connection is gone (a PostgreSQL failover or restart).
LEDGER_LOST = (pw.OperationalError, pw.InterfaceError)


# What SQLite says when the ledger's file or folder cannot be written mid-run (permissions, a full
# or failing disk): the ledger is unusable, as it is when it cannot be opened.
SQLITE_UNWRITABLE = ("readonly database", "unable to open database", "disk i/o error", "database or disk is full",
                     "read-only file system")


def unwritable_ledger(settings: Settings, err: BaseException) -> str | None:
    """The one line for a SQLite ledger that cannot be written, or None for any other error."""
    if settings.ledger.db_path is None or not isinstance(err, (pw.OperationalError, pw.DatabaseError)):
        return None
    text = str(err).lower()
    if not any(s in text for s in SQLITE_UNWRITABLE):
        return None
    from databricks.teachinglab.adapters.ledger.guard import describe_open_error
    return describe_open_error(settings.ledger.db_path, err)


def reconnect_ledger() -> None:
    """Drop a dead connection and open a new one (a long-running process: the status page)."""
    db = db_proxy.obj
    try:
        db.close()
    except pw.PeeweeException:
        pass  # already broken: closing it is all that was wanted
    db.connect(reuse_if_open=True)


def request_connection():
    """The ledger's connection for one request of a threaded server: opened in the request's
    thread (peewee keeps one per thread), closed when it ends, so threads leave none behind."""
    return db_proxy.obj.connection_context()


def close_ledger() -> None:
    if db_proxy.obj is not None:
        db_proxy.close()


def connect_workspace(settings: Settings, *, deadline: Deadline = UNBOUNDED,
                      retry_timeout_seconds: int | None = None) -> WorkspaceGateway:
    from databricks.teachinglab.adapters.workspace import SDK_RETRY_SECONDS, WorkspaceGateway
    ws = settings.workspace
    return WorkspaceGateway.connect(host=ws.host, token=ws.token, profile=ws.profile, deadline=deadline,
                                    retry_timeout_seconds=retry_timeout_seconds or SDK_RETRY_SECONDS)


def connect_account(settings: Settings, gateway: WorkspaceGateway) -> AccountDirectory | None:
    from databricks.teachinglab.adapters.workspace import AccountDirectory
    ws = settings.workspace
    if not ws.account_id:
        return None
    return AccountDirectory.connect(host=ws.account_host, account_id=ws.account_id, token=ws.account_token,
                                    profile=ws.account_profile, gateway=gateway)


def open_context(settings: Settings, now: datetime, *, gateway: WorkspaceGateway | None = None,
                 transport: Transport | None = None, deadline: Deadline = UNBOUNDED,
                 workspace: bool = True, ledger: bool = True) -> JobContext:
    """The ledger opens now; the workspace client only when first used. `workspace=False`: a
    ledger-and-mail command, which must not need workspace credentials."""
    if ledger:
        open_ledger_for(settings, now)
    if gateway is not None and deadline is not UNBOUNDED:
        gateway.deadline = deadline
    if gateway is not None:
        connect = lambda: gateway  # noqa: E731
    elif workspace:
        connect = lambda: connect_workspace(settings, deadline=deadline)  # noqa: E731
    else:
        connect = no_workspace
    return JobContext(settings, transport or make_transport(settings.mail.transport, settings.mail), connect, deadline)
