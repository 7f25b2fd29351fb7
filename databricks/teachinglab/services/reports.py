"""The daily report of a closed day, or today's preview: rows from the ledger, numbers from core."""
from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

from databricks.teachinglab.adapters.ledger import repository as ledger
from databricks.teachinglab.core.reconcile import Billing
from databricks.teachinglab.core.report import (DailyReport, ServerlessLine, ServerlessSection, build_preview,
                                                build_report, exemptions_of)
from databricks.teachinglab.core.settings import Settings


def daily_report(day: date, settings: Settings, *, findings: list[dict] | None = None,
                 audit_error: str | None = None, billing: Billing | None = None) -> DailyReport:
    quota = settings.quota
    start = quota.semester_start
    failed = [{"id": m.id, "event": m.event, "to": m.to_addrs, "subject": m.subject, "error": m.last_error}
              for m in reversed(ledger.messages(status="failed"))]
    closed = ledger.closed_day(day)
    since = start if billing is None or start is None else min(start, day - timedelta(days=1))  # reconciled too
    clusters = ledger.load_clusters()
    report = build_report(day, history=ledger.history(since, day), clusters=clusters,
                          prices=quota.prices, semester_start=start, failed_messages=failed,
                          closed_at=closed.archived_at if closed else None, findings=findings,
                          audit_error=audit_error, unit=quota.unit, billing=billing,
                          exemptions=exemptions_of(ledger.exemptions(), clusters))
    return replace(report, serverless=serverless_section(settings, day))


def serverless_section(settings: Settings, day: date) -> ServerlessSection | None:
    """Serverless use per group as of `day` (None when the bill was never read for it)."""
    from databricks.teachinglab.services import serverless
    fresh = serverless.freshness()
    if fresh.checked_at is None:
        return None
    tz = settings.quota.timezone
    usd = {d.group_name: d.usd for d in ledger.serverless_days(day, day) if d.group_name}
    blocks = ledger.serverless_blocks()
    lines = []
    for s in serverless.standings(settings, day):
        b = blocks.get(s.group)
        lines.append(ServerlessLine(s.group, s.today, s.week, s.semester, usd.get(s.group), None if b is None else (
            f"{b.cap} cap {b.used:.2f}/{b.limit:g} DBU, off until {b.returns_on or 'the end of the semester'}")))
    start = serverless.semester_bounds(settings)[0] or day - timedelta(days=day.weekday())
    return ServerlessSection(lines, ledger.serverless_unassigned(start), fresh.describe(tz))


def preview_report(day: date, settings: Settings) -> DailyReport:
    clusters = ledger.load_clusters()
    return build_preview(day, days=list(ledger.days_on(day).values()), clusters=clusters,
                         prices=settings.quota.prices, semester_start=settings.quota.semester_start,
                         unit=settings.quota.unit, exemptions=exemptions_of(ledger.exemptions(), clusters))
