"""Moving a ledger between databases: --migrate_ledger FROM_URL TO_URL."""
from __future__ import annotations

import logging
from pathlib import Path

from databricks.teachinglab.adapters.ledger.copy import CopyMismatch, CopyRefused, CopyReport, copy_ledger
from databricks.teachinglab.adapters.ledger.models import LedgerConfigError
from databricks.teachinglab.cli.commands import table
from databricks.teachinglab.cli.courses import NAME_RE
from databricks.teachinglab.cli.registry import Invocation, command
from databricks.teachinglab.core.errors import AdminError, LockBusy

logger = logging.getLogger(__name__)


def as_url(text: str) -> str:
    """A database URL; a bare path is taken as a SQLite file."""
    if "://" in text:
        return text
    return f"sqlite:///{Path(text).expanduser().resolve()}"


@command("migrate_ledger", "copy a ledger to another database (e.g. the SQLite file to PostgreSQL), then check row "
         "counts and usage sums on both sides; a non-empty target needs --force (--course: that course's schema)",
         flag={"nargs": 2, "metavar": ("FROM_URL", "TO_URL")}, changes=True, settings=False)
def migrate_ledger(inv: Invocation) -> int:
    args = inv.args
    source, target = (as_url(u) for u in args.migrate_ledger)
    if source == target:
        raise AdminError("FROM_URL and TO_URL are the same database")
    if args.course is not None and not NAME_RE.match(args.course):
        raise AdminError(f"--course {args.course!r}: a course name is lowercase letters, digits and _ (up to 40), "
                         "starting with a letter, as in TEACHINGLAB_COURSES_FILE")
    schema = f"course_{args.course}" if args.course else None
    try:
        report = copy_ledger(source, target, inv.now, schema=schema, force=args.force, dry_run=args.dry_run)
    except (CopyRefused, LedgerConfigError) as err:
        raise AdminError(str(err)) from None
    except CopyMismatch as err:
        _show(err.report)
        logger.error("%s", err)
        return 1
    _show(report)
    return 0


def _show(report: CopyReport) -> None:
    print(f"from {report.source}\nto   {report.target}")
    held = f"{report.replaced} row(s)" if report.replaced else ""
    if report.dry_run:
        table(["table", "rows to copy"], [[t, n] for t, (n, _) in report.counts.items()])
        print("nothing changed (--dry-run)" + (f"; the target holds {held} that --force would replace" if held else ""))
        return
    checks = [*report.counts.items(), *report.sums.items()]
    table(["table or sum", "source", "target", "check"],
          [[name, a, b, "ok" if a == b else "DIFFERS"] for name, (a, b) in checks])
    if not report.matches:
        print("the copy differs from the source: rolled back, the target is as it was")
        return
    print("copied and checked" + (f"; replaced {held} the target held" if held else ""))


@command("restore_ledger", "put a nightly backup (backups/ next to the ledger) in the SQLite ledger's place, under "
         "the run lock, with SQLite's backup API; the ledger it replaces is kept as <ledger>.replaced-<time>",
         flag={"metavar": "BACKUP"}, changes=True)
def restore_ledger(inv: Invocation) -> int:
    from databricks.teachinglab.adapters.ledger.guard import BadBackup, check_backup, restore
    from databricks.teachinglab.cli.runtime import run_lock
    from databricks.teachinglab.cli.wiring import ledger_guard
    settings = inv.settings
    if settings.ledger.db_path is None:
        raise AdminError("--restore_ledger restores a SQLite ledger (CLUSTER_UPTIMES_DB); DATABASE_URL is set: "
                         "restore a PostgreSQL ledger with pg_restore, from the server's own backups")
    target, source = settings.ledger.db_path, Path(inv.args.restore_ledger).expanduser()
    if source.resolve() == target.resolve():
        raise AdminError(f"{source} is the ledger itself: give a backup (ls {target.parent / 'backups'})")
    try:
        version = check_backup(source)
    except BadBackup as err:
        raise AdminError(f"--restore_ledger: {err}; nothing changed") from None
    if inv.args.dry_run:
        print(f"would restore {source} (schema version {version}) to {target}"
              + (f", keeping the current ledger as {target.name}.replaced-<time>" if target.exists() else "")
              + "; nothing changed (--dry-run)")
        return 0
    # Cron must not run a job on a ledger that is being replaced: the same lock the jobs take.
    try:
        with run_lock(settings, wait_seconds=45):
            kept = restore(target, source, inv.now)
            ledger_guard(settings).register(target, inv.now)
    except LockBusy:
        raise AdminError("--restore_ledger: a poll or the close still holds the run lock after 45 s; nothing "
                         "changed: try again in a minute (or stop cron first)") from None
    except BadBackup as err:
        raise AdminError(f"--restore_ledger: {err}; nothing changed") from None
    print(f"restored {source} to {target}" + (f"; the ledger it replaced is kept as {kept}" if kept else ""))
    print("the next poll goes on from the backup's state: usage since the backup is read again from cluster events")
    return 0
