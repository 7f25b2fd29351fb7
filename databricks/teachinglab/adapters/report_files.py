"""The daily report as files and as a message: HTML table, PNG bar chart (matplotlib, headless),
CSV (with spreadsheet formulas neutralised). Rendering of numbers lives in report.py."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from databricks.teachinglab.adapters.files import write_private
from databricks.teachinglab.adapters.mail.outbox import enqueue
from databricks.teachinglab.adapters.mail.render import render
from databricks.teachinglab.core.accounting import local_day
from databricks.teachinglab.core.cells import safe_cell
from databricks.teachinglab.core.messages import Attachment, Rendered, dedupe_key, show_local
from databricks.teachinglab.core.report import DailyReport, chart_bars
from databricks.teachinglab.core.settings import Settings

CHART_CID = "usage-chart"

def report_csv(report: DailyReport) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["date", "group", "cluster", "cluster_id", "used_minutes", "limit_minutes", "percent",
                     "sessions", "warned", "terminated", "blocked", "estimated_usage",
                     f"estimated_cost_{report.currency}", "exempt", "notes", "quota_unit", "used_in_unit",
                     "limit_in_unit"])
    for r in report.rows:
        writer.writerow([safe_cell(v) for v in (
            report.day.isoformat(), r.group or "", r.cluster_name, r.cluster_id, r.used_minutes,
            "" if r.limit_minutes is None else r.limit_minutes, r.percent, r.sessions, int(r.warned), int(r.terminated), int(r.blocked),
            int(r.estimated), "" if r.cost is None else f"{r.cost:.2f}", int(r.exempt), r.notes, r.unit.name,
            r.used_in_unit, r.limit_in_unit)])
    return ("\ufeff" + out.getvalue()).encode("utf-8")  # BOM: Excel then reads Hebrew names right


# Each state's colour and what the legend calls it: every colour on the chart is in its legend.
STATE_COLOURS = {"ok": ("#2e86c1", "below the warning level"), "warned": ("#e67e22", "warned"),
                 "stopped": ("#c0392b", "stopped at the quota"), "exempt": ("#95a5a6", "exempt (no quota)")}


def chart_figure(report: DailyReport):
    """The chart as a matplotlib Figure: one bar per group, its clusters stacked (white lines
    between them), coloured by the group's state, with the group's quota as a black mark."""
    import matplotlib
    matplotlib.use("Agg")  # headless: the VM has no display
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    bars = chart_bars(report.rows)
    unit = report.unit  # rows held to another unit (QUOTA_UNIT changed that day) are drawn in theirs
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(bars) + 2), 4.5), dpi=100)
    for x, bar in enumerate(bars):
        colour = STATE_COLOURS[bar.state][0]
        bottom = 0.0
        for _, value in bar.segments:
            ax.bar(x, value, bottom=bottom, color=colour, edgecolor="white", linewidth=1)
            bottom += value
    quotas = [(x, b.quota) for x, b in enumerate(bars) if b.quota is not None]
    if quotas:
        ax.scatter([x for x, _ in quotas], [q for _, q in quotas], marker="_", s=600, color="black", zorder=3)
    ax.set_xticks(range(len(bars)), [display_label(b.label) for b in bars], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("minutes" if unit.name == "minutes" else unit.symbol)
    top = max([b.total for b in bars] + [q for _, q in quotas] + [1])
    ax.set_ylim(0, 1.35 * top)  # room for the legend above the bars
    what = "Cluster minutes" if unit.name == "minutes" else unit.symbol
    ax.set_title(f"{what} used per group on {report.day.isoformat()} (its clusters stacked) against its daily quota",
                 fontsize=9)
    used_states = [s for s in STATE_COLOURS if any(b.state == s for b in bars)]
    handles = [Patch(color=STATE_COLOURS[s][0], label=STATE_COLOURS[s][1]) for s in used_states]
    if quotas:
        from matplotlib.lines import Line2D
        handles.append(Line2D([], [], color="black", marker="_", linestyle="none", markersize=15, label="quota"))
    if handles:
        ax.legend(handles=handles, loc="upper center", ncol=min(len(handles), 3), fontsize=8)
    fig.tight_layout()
    return fig


def report_png(report: DailyReport) -> bytes:
    import matplotlib.pyplot as plt
    fig = chart_figure(report)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def display_label(text: str) -> str:
    """A name as matplotlib can draw it: it lays text out left to right only, so a right-to-left
    name (Hebrew, Arabic) is given in visual order (python-bidi), Arabic letters joined first."""
    if not _has_rtl(text):
        return text
    import arabic_reshaper
    from bidi import get_display
    return get_display(arabic_reshaper.reshape(text))


def chart_labels(rows) -> list[str]:
    """The x labels of a chart with a bar per row: the group (as drawn, any script), or the
    cluster's name for a row with no group."""
    return [display_label(r.group) if r.group else r.cluster_name for r in rows]


def _has_rtl(text: str) -> bool:
    import unicodedata
    return any(unicodedata.bidirectional(ch) in ("R", "AL") for ch in text)


@dataclass(frozen=True)
class ReportBundle:
    subject: str
    text: str
    html: str
    csv: bytes
    png: bytes

    def attachments(self) -> list[Attachment]:
        return [Attachment("usage-chart.png", "image/png", self.png, CHART_CID),
                Attachment("usage.csv", "text/csv", self.csv)]


def bundle(report: DailyReport, settings: Settings, now: datetime, *, inline_chart: bool = True) -> ReportBundle:
    tz = settings.quota.timezone
    context = {"day": report.day.isoformat(), "at": show_local(report.closed_at or now, tz), "tz_name": tz.key,
               "r": report, "preview": report.preview,
               "rows": report.rows, "totals": report.totals, "never_ran": report.never_ran,
               "failed_messages": report.failed_messages, "currency": report.currency,
               "findings": report.findings, "audit_error": report.audit_error,
               "chart_src": f"cid:{CHART_CID}" if inline_chart else "report.png",
               "contact": settings.mail.admin_email or "the lab admin", "environment": settings.environment}
    rendered = render("daily_report", context, templates_dir=settings.mail.templates_dir)
    return ReportBundle(rendered.subject, rendered.text, rendered.html, report_csv(report), report_png(report))


def queue_report(report: DailyReport, settings: Settings, now: datetime, subject_id: str = "all") -> bool:
    """Put the report (chart inline, CSV attached) in the outbox for REPORT_RECIPIENT_EMAIL."""
    b = bundle(report, settings, now)
    return enqueue(kind="daily_report", key=dedupe_key("daily_report", subject_id, report.day),
                   to=[settings.mail.report_recipient or ""], rendered=Rendered(b.subject, b.text, b.html),
                   attachments=b.attachments(), now=now)


def write_files(report: DailyReport, settings: Settings, now: datetime, out: Path) -> list[Path]:
    """report.html, .csv and .png: private files (0600 in a 0700 folder), never through a link."""
    b = bundle(report, settings, now, inline_chart=False)
    paths = {"report.html": b.html.encode("utf-8"), "report.csv": b.csv, "report.png": b.png}
    return [write_private(out / name, data) for name, data in paths.items()]


def report_day_default(now: datetime, tz) -> date:
    """Yesterday, the last day the nightly close can have finished."""
    return local_day(now, tz) - timedelta(days=1)
