"""Moving a semester: copy a ledger to another database (SQLite to PostgreSQL, say), then prove
the copy by row counts and usage sums on both sides.

The target is migrated to this release's schema; the source must already be at it (opening it
once with this release, e.g. `--cluster_usage`, migrates it), so rows map column for column. The
copy is one transaction on the target, checked before it commits: a mismatch or an error leaves
the target as it was. A target that holds rows is refused unless `force` (its rows are replaced).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import peewee as pw

from databricks.teachinglab.adapters.ledger.guard import prepare_new
from databricks.teachinglab.adapters.ledger.models import (
    MIGRATIONS, Cluster, ClosedDay, ClusterDay, ClusterExemption, JobRun, LabFact, LabSecret, MailRequest, ServerlessBlock, ServerlessUsage,
    OutboxAttachment, OutboxMessage, QuotaGrant, QuotaOverride, SchemaVersion, UsageHistory, UsageSession, LedgerConfigError, connect_url, describe_connect_error,
    db_proxy, is_postgres, migrate, redacted_url)

logger = logging.getLogger(__name__)
# Parents before children (foreign keys); schema_version is the target's own, from migrate().
TABLES = [Cluster, ClusterDay, UsageHistory, ClosedDay, QuotaOverride, QuotaGrant, UsageSession, LabSecret, LabFact,
          ClusterExemption, OutboxMessage, OutboxAttachment, JobRun, MailRequest, ServerlessUsage, ServerlessBlock]
SUMS = {"cluster_day.used_ms": ClusterDay.used_ms, "cluster_day.used_node_ms": ClusterDay.used_node_ms,
        "usage_history.used_ms": UsageHistory.used_ms, "usage_history.node_ms": UsageHistory.node_ms}
BATCH = 500


class CopyRefused(Exception):
    """The copy cannot start: say what to do (exit 2)."""


class CopyMismatch(Exception):
    """The copy's counts or sums differ from the source's: rolled back (exit 1)."""

    def __init__(self, report: "CopyReport"):
        super().__init__("the copy differs from the source (see the table); nothing was kept")
        self.report = report


@dataclass
class CopyReport:
    source: str
    target: str
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)   # table: (source, target)
    sums: dict[str, tuple[int, int]] = field(default_factory=dict)
    dry_run: bool = False
    replaced: int = 0                                                  # rows the target held (--force)

    @property
    def matches(self) -> bool:
        return all(a == b for a, b in [*self.counts.values(), *self.sums.values()])


def _open(url: str, schema: str | None, *, target: bool = False, dry_run: bool = False) -> pw.Database:
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        if not path.exists() and not target:
            raise CopyRefused(f"the source {url} does not exist: give the ledger's path (CLUSTER_UPTIMES_DB)")
        if not path.exists() and dry_run:
            return pw.SqliteDatabase(":memory:")  # an empty target, and no file made by a dry run
        if not path.exists():
            prepare_new(path)  # 0600 in a 0700 folder, as every ledger: it holds student emails
    db = connect_url(url, schema if is_postgres(url) else None)
    try:
        db.connect(reuse_if_open=True)
    except pw.OperationalError as err:
        if is_postgres(url):
            raise LedgerConfigError(describe_connect_error(url, err).replace("DATABASE_URL", "the URL")) from None
        raise CopyRefused(f"cannot open {redacted_url(url)}: {err}") from None
    if schema and is_postgres(url) and target and not dry_run:  # a dry run (or a source) makes no schema
        db.execute_sql(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    return db


def _counts(db: pw.Database) -> dict[str, int]:
    existing = set(db.get_tables(schema=getattr(db, "ledger_schema", None)))
    with db.bind_ctx(TABLES):
        return {m._meta.table_name: (m.select().count() if m._meta.table_name in existing else 0) for m in TABLES}


def _sums(db: pw.Database) -> dict[str, int]:
    with db.bind_ctx(TABLES):
        return {name: int(column.model.select(pw.fn.COALESCE(pw.fn.SUM(column), 0)).scalar() or 0)
                for name, column in SUMS.items()}


def copy_ledger(source_url: str, target_url: str, now: datetime, *, schema: str | None = None,
                force: bool = False, dry_run: bool = False) -> CopyReport:
    report = CopyReport(redacted_url(source_url), redacted_url(target_url), dry_run=dry_run)
    source = _open(source_url, schema)
    target = _open(target_url, schema, target=True, dry_run=dry_run)
    try:
        have = {r[0] for r in source.execute_sql("SELECT version FROM schema_version")} \
            if "schema_version" in source.get_tables(schema=getattr(source, "ledger_schema", None)) else set()
        latest = max(v for v, _ in MIGRATIONS)
        if latest not in have:
            raise CopyRefused(f"the source {report.source} is not a ledger at schema version {latest} (it has "
                              f"{max(have) if have else 'none'}): open it once with this release (e.g. "
                              "DATABASE_URL=<it> python -m databricks.main --cluster_usage), then copy it")
        source_counts = _counts(source)
        held = sum(_counts(target).values())
        report.replaced = held
        if held and not force:
            raise CopyRefused(f"the target {report.target} already holds {held} row(s): copy into an empty ledger, "
                              "or add --force to replace them")
        if dry_run:
            report.counts = {t: (n, 0) for t, n in source_counts.items()}
            return report
        db_proxy.initialize(target)  # migrate() works through the models' proxy
        with target.atomic():
            migrate(target, now)
            with target.bind_ctx(TABLES + [SchemaVersion]):
                for model in reversed(TABLES):
                    model.delete().execute()
            for model in TABLES:
                with source.bind_ctx([model]):
                    rows = list(model.select().tuples().iterator())
                columns = list(model._meta.sorted_fields)
                with target.bind_ctx([model]):
                    for start in range(0, len(rows), BATCH):
                        model.insert_many(rows[start:start + BATCH], fields=columns).execute()
                _reset_sequence(target, model)
            target_counts, target_sums = _counts(target), _sums(target)
            source_sums = _sums(source)
            report.counts = {t: (source_counts[t], target_counts[t]) for t in source_counts}
            report.sums = {k: (source_sums[k], target_sums[k]) for k in source_sums}
            if not report.matches:  # raised inside the transaction: it rolls back
                raise CopyMismatch(report)
        return report
    finally:
        source.close()
        target.close()


def _reset_sequence(db: pw.Database, model: type[pw.Model]) -> None:
    """PostgreSQL: an id column's sequence continues after the copied ids (else the next
    outbox row would collide with a copied one)."""
    pk = model._meta.primary_key
    if not isinstance(db, pw.PostgresqlDatabase) or not isinstance(pk, pw.AutoField):
        return
    table = model._meta.table_name
    db.execute_sql(f"SELECT setval(pg_get_serial_sequence('{table}', '{pk.column_name}'), "
                   f"COALESCE((SELECT MAX({pk.column_name}) FROM {table}), 0) + 1, false)")
