"""Moving a ledger between databases: --migrate_ledger FROM_URL TO_URL."""
from __future__ import annotations

import logging
from pathlib import Path

from databricks.teachinglab.adapters.ledger.copy import CopyMismatch, CopyRefused, CopyReport, copy_ledger
from databricks.teachinglab.adapters.ledger.models import LedgerConfigError
from databricks.teachinglab.cli.commands import table
from databricks.teachinglab.cli.registry import Invocation, command
from databricks.teachinglab.core.errors import AdminError

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
