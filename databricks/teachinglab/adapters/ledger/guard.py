"""Whether a SQLite ledger may be opened, created or must be restored, and its daily backups.

A ledger holds the day's usage, the flags that stop a second email and the blocks to undo at
night. Silently starting a new one (a mistyped CLUSTER_UPTIMES_DB, a deleted file) would send
every mail of the day again and forget the blocks. So a new ledger is created only on the first
run of this account (no ledger registered yet) or with --init_ledger; a registered ledger that is
missing or empty, or a file that is not a database, stops the run (exit 4) with what to do.

The registry is a small JSON file in the account's data folder (~/.local/share/teachinglab).
"""
from __future__ import annotations

import json
import logging
import os
import sqlite3
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from databricks.teachinglab.core.errors import LedgerUnavailable

logger = logging.getLogger(__name__)
KEEP_BACKUPS = 7


def backups_dir(db_path: Path) -> Path:
    return db_path.parent / "backups"


def newest_backup(db_path: Path) -> Path | None:
    found = sorted(backups_dir(db_path).glob(f"{db_path.stem}-*.db"))
    return found[-1] if found else None


def restore_hint(db_path: Path) -> str:
    newest = newest_backup(db_path)
    restore = (f"restore the newest backup: python -m databricks.main --restore_ledger {newest}" if newest else
               f"restore it from your own backup with python -m databricks.main --restore_ledger FILE (no nightly "
               f"backup in {backups_dir(db_path)} yet)")
    return (f"{restore}; or, to start a new, empty ledger deliberately (every message of today may be "
            "sent again): python -m databricks.main --init_ledger")


@dataclass(frozen=True)
class LedgerGuard:
    registry: Path
    init: bool = False  # --init_ledger: creating a new ledger is what the admin asked for

    def _known(self) -> dict[str, dict]:
        try:
            return json.loads(self.registry.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as err:
            logger.warning("ledger registry %s unreadable (%s); treating it as empty", self.registry, err)
            return {}

    def check(self, db_path: Path) -> bool:
        """Raise LedgerUnavailable unless the ledger may be opened; True if it is to be created."""
        if db_path.is_dir():
            raise LedgerUnavailable(f"CLUSTER_UPTIMES_DB={db_path} is a folder: point it at a file, "
                                    f"e.g. {db_path / 'cluster_uptimes.db'}")
        present = db_path.exists() and db_path.stat().st_size > 0
        if present or self.init:
            return not present
        known = self._known()
        key = str(db_path.resolve())
        if key in known:
            state = "empty" if db_path.exists() else "missing"
            raise LedgerUnavailable(f"the ledger {db_path} is {state}, but it was in use since "
                                    f"{known[key].get('created_at', '?')}: {restore_hint(db_path)}")
        if known:
            others = ", ".join(sorted(known))
            raise LedgerUnavailable(f"CLUSTER_UPTIMES_DB={db_path} does not exist, but this account's ledger "
                                    f"is {others}: fix CLUSTER_UPTIMES_DB (or run as the right user), or "
                                    "start a new ledger there deliberately: python -m databricks.main --init_ledger")
        return True

    def register(self, db_path: Path, now: datetime) -> None:
        """Add the ledger to the registry. Several courses' runs may create their ledgers at the
        same moment (one process each): the read-modify-write holds a lock, so none is lost."""
        import fcntl
        self.registry.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.registry.with_suffix(".lock"), "a+") as guard:
            fcntl.flock(guard, fcntl.LOCK_EX)
            known = self._known()
            known[str(db_path.resolve())] = {"created_at": now.isoformat(timespec="seconds")}
            tmp = self.registry.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(known, indent=1), encoding="utf-8")
            tmp.replace(self.registry)


def prepare_new(db_path: Path) -> None:
    """The folder (0700) and an empty file (0600): the ledger holds student emails."""
    if not db_path.parent.exists():
        db_path.parent.mkdir(parents=True, mode=0o700)
        logger.warning("created the folder %s (mode 700) for the ledger", db_path.parent)
    fd = os.open(db_path, os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(fd)
    os.chmod(db_path, 0o600)


def describe_open_error(db_path: Path, err: Exception) -> str:
    text = str(err).lower()
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return f"the ledger {db_path} is not a readable SQLite database ({err}): {restore_hint(db_path)}"
    if "readonly" in text or "read-only" in text or "unable to open" in text or "permission" in text:
        return (f"the ledger {db_path} cannot be opened for writing ({err}): check that this account owns "
                f"{db_path.parent} and the file (ls -l {db_path.parent})")
    return f"the ledger {db_path} cannot be used ({type(err).__name__}: {err}): {restore_hint(db_path)}"


def backup(db_path: Path, day: date, *, keep: int = KEEP_BACKUPS) -> Path:
    """A consistent copy through SQLite's online backup API, named by date (0600), keeping the
    newest `keep`. Safe while other connections write (WAL)."""
    folder = backups_dir(db_path)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = folder / f"{db_path.stem}-{day.isoformat()}.db"
    tmp = target.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    source = sqlite3.connect(db_path)
    copy = sqlite3.connect(tmp)
    try:
        source.backup(copy)
    finally:
        copy.close()
        source.close()
    os.chmod(tmp, 0o600)
    tmp.replace(target)
    for old in sorted(folder.glob(f"{db_path.stem}-*.db"))[:-keep]:
        old.unlink()
    return target


class BadBackup(Exception):
    """The file given to --restore_ledger is not a ledger that can be restored."""


def check_backup(source: Path) -> int:
    """The backup's schema version, after SQLite's own integrity check; BadBackup says why not."""
    if not source.is_file():
        raise BadBackup(f"{source} is not a file")
    try:
        con = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        try:
            verdict = con.execute("PRAGMA integrity_check").fetchone()[0]
            version = con.execute("SELECT max(version) FROM schema_version").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error as err:
        raise BadBackup(f"{source} is not a readable ledger ({err})") from None
    if verdict != "ok":
        raise BadBackup(f"{source} fails SQLite's integrity check ({verdict})")
    if version is None:
        raise BadBackup(f"{source} holds no ledger (no schema_version)")
    return int(version)


def restore(db_path: Path, source: Path, now: datetime) -> Path | None:
    """Put a backup in the ledger's place, through SQLite's backup API (the copy is consistent and
    takes nothing from a -wal file a killed run left behind). The ledger it replaces is kept, with
    its -wal and -shm, as <ledger>.replaced-<time>; returns that path (None when there was none).
    The caller holds the run lock."""
    check_backup(source)
    tmp = db_path.with_name(f".{db_path.name}.restoring")
    for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        leftover.unlink(missing_ok=True)
    if not db_path.parent.exists():
        db_path.parent.mkdir(parents=True, mode=0o700)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    os.close(fd)
    src, dst = sqlite3.connect(f"file:{source}?mode=ro", uri=True), sqlite3.connect(tmp)
    try:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file until the ledger opens it
    finally:
        dst.close()
        src.close()
    kept = None
    if db_path.exists() or Path(f"{db_path}-wal").exists():
        kept = db_path.with_name(f"{db_path.name}.replaced-{now.strftime('%Y%m%dT%H%M%SZ')}")
        for suffix in ("", "-wal", "-shm"):  # moved together: SQLite finds a file's WAL by its name
            if Path(f"{db_path}{suffix}").exists():
                os.replace(f"{db_path}{suffix}", f"{kept}{suffix}")
    os.replace(tmp, db_path)
    return kept