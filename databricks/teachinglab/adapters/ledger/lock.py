"""The run lock: at most one job at a time writes a ledger.

A SQLite ledger lives on one machine, so a file lock (flock) is enough. A PostgreSQL ledger may be
shared by two VMs with the same cron lines (a standby), so its lock is a PostgreSQL session-level
advisory lock, held on a connection of its own for the whole run: the server releases it when
that connection ends, so a holder that is killed, loses its VM or its network frees it without
anyone's help (PostgreSQL docs, "Advisory Locks": session-level locks are released at session end).
A session-level lock needs a real session: connect to the server itself (Azure: port 5432), not
through a transaction-mode pooler such as Azure's built-in PgBouncer (Azure docs, "PgBouncer in
Azure Database for PostgreSQL": port 6432), which may hand each statement a different session.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import time
from pathlib import Path
from typing import Iterator

from databricks.teachinglab.core.errors import LedgerUnavailable, LockBusy, LockLost

logger = logging.getLogger(__name__)


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for `name` (pg_try_advisory_lock takes a bigint)."""
    return int.from_bytes(hashlib.sha256(f"teachinglab:{name}".encode()).digest()[:8], "big", signed=True)


@contextlib.contextmanager
def file_lock(path: Path, *, wait_seconds: float = 0) -> Iterator[None]:
    """An flock that stops overlapping runs; the kernel drops it if the process is killed.
    `wait_seconds`: wait that long for a run in progress (the nightly close, which must not lose
    its night to the poll cron starts in the same minute), instead of giving up at once."""
    try:
        if not path.parent.exists():
            path.parent.mkdir(parents=True, mode=0o700)  # by default it is the ledger's folder too
            logger.warning("created the folder %s (mode 700) for the run lock", path.parent)
        handle = open(path, "a+")
    except OSError as err:
        raise LedgerUnavailable(f"the run lock {path} cannot be opened ({err.strerror or err}): check that this "
                                f"account can write {path.parent} (ls -ld {path.parent}), or set TEACHINGLAB_LOCK_FILE "
                                "to a file in a folder it can write") from None
    with handle:
        give_up = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= give_up:
                    raise LockBusy(f"lock {path}") from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def advisory_lock(database_url: str, name: str, *, wait_seconds: float = 0) -> Iterator[None]:
    """pg_try_advisory_lock on a dedicated connection, polled until `wait_seconds` have passed.
    A server that cannot be reached raises LedgerConfigError, as opening the ledger would."""
    import psycopg2
    from databricks.teachinglab.adapters.ledger import repository
    from databricks.teachinglab.adapters.ledger.models import (KEEPALIVES, LedgerConfigError, describe_connect_error,
                                                               unreachable)
    try:
        conn = psycopg2.connect(database_url.replace("postgresext://", "postgresql://", 1), connect_timeout=5,
                                application_name="teachinglab-run-lock", **KEEPALIVES)
    except (psycopg2.OperationalError, psycopg2.ProgrammingError) as err:
        line = describe_connect_error(database_url, err)
        if isinstance(err, psycopg2.OperationalError) and unreachable(err):
            raise LedgerUnavailable("the ledger cannot be used right now: " + line.removeprefix("DATABASE_URL: ")) \
                from None
        raise LedgerConfigError(line) from None
    conn.autocommit = True
    key = advisory_key(name)

    def still_held() -> None:
        """Before each write: the lock lives as long as its session. A session the network or a
        failover took has freed it, and a standby may be running now: stop before writing."""
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
        except psycopg2.Error as err:
            raise LockLost(f"the run lock's PostgreSQL session was lost ({' '.join(str(err).split())[:160]}); "
                           "a standby may run the job now, so this run stopped before its next write; the next "
                           "run goes on from what was committed") from None

    try:
        give_up = time.monotonic() + wait_seconds
        with conn.cursor() as cur:
            while True:
                cur.execute("SELECT pg_try_advisory_lock(%s)", (key,))
                if cur.fetchone()[0]:
                    break
                if time.monotonic() >= give_up:
                    raise LockBusy(f"PostgreSQL advisory lock {name!r} ({key})")
                time.sleep(0.2)
        repository.before_write.append(still_held)
        try:
            yield
        finally:
            repository.before_write.remove(still_held)
    finally:
        conn.close()  # ends the session, which releases the lock (an explicit unlock could fail the same way)
