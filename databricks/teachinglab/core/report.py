"""Report numbers from plain rows of the archived history: per cluster and group, totals, week-
and semester-to-date, clusters that never ran, failed messages. Costs are estimates from a price
table (DBU/h per node type x $/DBU, plus the VM's $/h), never a bill. Pure: the rows come from
the ledger's repository (services/reports.py gathers them)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from databricks.teachinglab.core.prices import PriceTable
from databricks.teachinglab.core.reconcile import Billing, DriftRow, drift_rows
from databricks.teachinglab.core.units import MINUTES, UNITS, Measured, QuotaUnit

if TYPE_CHECKING:  # types only: core imports no ledger
    from databricks.teachinglab.core.records import DayRecord, HistoryRecord, TrackedCluster


@dataclass(frozen=True)
class ReportRow:
    cluster_id: str
    cluster_name: str
    group: str | None
    used_ms: int
    limit_amount: int   # the hard quota in `unit`'s integer amount
    sessions: int
    warned: bool
    terminated: bool
    blocked: bool
    estimated: bool
    cost: float | None = None
    exempt: bool = False
    notes: str = ""   # "warned at 13:55; stopped at 14:05; granted 30 min at 14:20 by alice"
    unit: QuotaUnit = MINUTES   # the quota unit the day was held to
    used: int = 0               # usage in `unit` (the same as used_ms for minutes)

    @property
    def used_minutes(self) -> int:
        return self.used_ms // 60_000

    @property
    def limit_minutes(self) -> int | None:
        """None when the quota was not in minutes."""
        return self.limit_amount // 60_000 if self.unit.name == "minutes" else None

    @property
    def used_in_unit(self) -> str:
        return self.unit.number(self.used)

    @property
    def limit_in_unit(self) -> str:
        return self.unit.number(self.limit_amount)

    @property
    def percent(self) -> int | str:
        """Of the quota; an exempt cluster has none ("exempt", never "141"). From the two figures
        shown beside it (whole minutes, rounded down), so "3 of 3 minutes" never reads 102 %."""
        if self.exempt:
            return "exempt"
        if self.unit.name == "minutes":
            return 100 * self.used_minutes // self.limit_minutes if self.limit_minutes else 0
        return 100 * self.used // self.limit_amount if self.limit_amount else 0

    @property
    def flags(self) -> str:
        names = [n for n, on in (("exempt", self.exempt), ("warned", self.warned), ("terminated", self.terminated),
                                 ("blocked", self.blocked), ("estimate", self.estimated)) if on]
        return ",".join(names)


@dataclass
class DailyReport:
    day: date
    rows: list[ReportRow]
    totals: dict
    week: dict[str, dict]        # group -> {"used_minutes", "cost"} from Monday to `day`
    semester: dict[str, dict]    # group -> the same, from the semester's first day
    semester_start: date
    never_ran: list[str]         # clusters with no usage at all this semester
    idle_today: list[str]        # clusters with no usage on `day`
    failed_messages: list[dict] = field(default_factory=list)
    currency: str = "USD"
    findings: list[dict] | None = None  # --audit_workspace as the nightly close ran it; None: not run
    closed_at: datetime | None = None   # when the nightly close archived the day (not when a file is made)
    preview: bool = False               # today, not closed: numbers as of the last poll
    audit_error: str | None = None                       # why the audit could not run, if it could not
    unpriced: list[str] = field(default_factory=list)    # node types used that the price table lacks
    unit: QuotaUnit = MINUTES                            # QUOTA_UNIT: the quota column's unit
    billing: list[DriftRow] | None = None   # measured against billed DBUs per group; None: not read
    billing_error: str | None = None        # why the bill could not be read, when it could not
    billing_source: str = ""
    exemptions: list = field(default_factory=list)   # Exemption: clusters the admin exempted, who and why
    serverless: "ServerlessSection | None" = None    # billed serverless use per group; None: never read


@dataclass(frozen=True)
class ServerlessLine:
    group: str
    day_dbu: float
    week_dbu: float
    semester_dbu: float
    day_usd: float | None
    blocked: str | None = None        # "weekly cap 6.30/6 DBU, back Mon 09 Mar"


@dataclass(frozen=True)
class ServerlessSection:
    """Serverless use as billing has shown it (hours late): per group for the report's day, its
    week and semester, and use by no course group's member (who, product, DBU)."""
    lines: list[ServerlessLine]
    unassigned: list[tuple]
    freshness: str


@dataclass(frozen=True)
class Exemption:
    """A cluster the admin exempted from every quota (--set_quota exempt): listed in every report."""
    cluster_name: str
    cluster_id: str
    group: str | None
    set_by: str
    set_at: datetime
    reason: str


def exemptions_of(records: dict, clusters: dict) -> list[Exemption]:
    out = []
    for cluster_id, e in records.items():
        c = clusters.get(cluster_id)
        out.append(Exemption(c.name if c else cluster_id, cluster_id, c.group_name if c else None, e.set_by,
                             e.set_at, e.reason))
    return sorted(out, key=lambda e: e.cluster_name)


def _cost(prices: PriceTable, used_ms: int, cluster: "TrackedCluster | None", node_ms: int = 0,
          startup: tuple[int, int] = (0, 0)) -> float | None:
    """From the measured node-time; a day archived before node-time was measured (node_ms 0 with
    usage) falls back to the autoscale maximum all along, an upper bound."""
    if cluster is None:
        return None
    if node_ms:
        measured = prices.measured(cluster, used_ms, node_ms, *startup)
        return None if measured is None else round(measured[1], 2)
    hourly = prices.hourly(cluster.node_type_id, 1 + (cluster.num_workers or 0), getattr(cluster, "photon", False))
    return None if hourly is None else round(hourly * used_ms / 3_600_000, 2)


class _NoTypes:
    node_type_id = driver_node_type_id = None


def _in_unit(unit: QuotaUnit, prices: PriceTable, cluster, m: Measured) -> int:
    """Usage in the unit; a cluster the ledger lost its node types for is priced at the dearest rate."""
    return unit.amount(prices, cluster or _NoTypes(), m)[0]


def row_from_history(h: "HistoryRecord", prices: PriceTable, cluster: "TrackedCluster | None") -> ReportRow:
    unit = UNITS.get(h.quota_unit, MINUTES)
    measured = Measured(h.used_ms, h.node_ms, h.startup_ms, h.startup_node_ms)
    return ReportRow(h.cluster_id, h.cluster_name, h.group_name, h.used_ms, h.limit_amount, h.sessions,
                     h.warned, h.terminated, h.blocked_group is not None, h.estimated,
                     _cost(prices, h.used_ms, cluster, h.node_ms, (h.startup_ms, h.startup_node_ms)), exempt=h.exempt,
                     notes=h.notes or "", unit=unit, used=_in_unit(unit, prices, cluster, measured))


def _sorted(rows: list[ReportRow]) -> list[ReportRow]:
    return sorted(rows, key=lambda r: (r.group or "~", r.cluster_name))


def totals(rows: list[ReportRow]) -> dict:
    costs = [r.cost for r in rows if r.cost is not None]
    return {"used_minutes": sum(r.used_ms for r in rows) // 60_000,
            "sessions": sum(r.sessions for r in rows),
            "warned": sum(r.warned for r in rows),
            "terminated": sum(r.terminated for r in rows),
            "blocked": sum(r.blocked for r in rows),
            "cost": round(sum(costs), 2) if costs else None}


def _span(history: list["HistoryRecord"], start: date, end: date, prices: PriceTable,
          clusters: dict, unit: QuotaUnit = MINUTES) -> dict[str, dict]:
    """group -> used_minutes, used (in `unit`, as shown) and cost over the days from start to end."""
    out: dict[str, dict] = {}
    amounts: dict[str, int] = {}
    for h in history:
        if not start <= h.day <= end:
            continue
        key = h.group_name or h.cluster_name
        entry = out.setdefault(key, {"used_minutes": 0, "used_ms": 0, "cost": 0.0})
        entry["used_ms"] += h.used_ms
        amounts[key] = amounts.get(key, 0) + _in_unit(unit, prices, clusters.get(h.cluster_id), Measured(
            h.used_ms, h.node_ms, h.startup_ms, h.startup_node_ms))
        cost = _cost(prices, h.used_ms, clusters.get(h.cluster_id), h.node_ms, (h.startup_ms, h.startup_node_ms))
        entry["cost"] = None if cost is None or entry["cost"] is None else round(entry["cost"] + cost, 2)
    for key, entry in out.items():
        entry["used_minutes"] = entry.pop("used_ms") // 60_000
        entry["used"] = unit.number(amounts[key])
    return dict(sorted(out.items()))


def build_report(day: date, *, history: list["HistoryRecord"], clusters: dict[str, "TrackedCluster"],
                 prices: PriceTable, semester_start: date | None = None, failed_messages: list[dict] = (),
                 closed_at: datetime | None = None, findings: list[dict] | None = None,
                 audit_error: str | None = None, unit: QuotaUnit = MINUTES,
                 billing: Billing | None = None, exemptions: list[Exemption] = ()) -> DailyReport:
    """`history`: the archived days up to `day` (from the semester's start, or all of them)."""
    history = [h for h in history if h.day <= day]
    rows = _sorted([row_from_history(h, prices, clusters.get(h.cluster_id)) for h in history if h.day == day])
    start = semester_start or min((h.day for h in history), default=day)
    used_ever = {h.cluster_name for h in history if start <= h.day and h.used_ms > 0}
    return DailyReport(
        day=day, rows=rows, totals=totals(rows), closed_at=closed_at,
        week=_span(history, day - timedelta(days=day.weekday()), day, prices, clusters, unit),
        semester=_span(history, start, day, prices, clusters, unit), semester_start=start, unit=unit,
        never_ran=sorted(r.cluster_name for r in rows if r.cluster_name not in used_ever),
        idle_today=[r.cluster_name for r in rows if r.used_ms == 0],
        failed_messages=list(failed_messages), currency=prices.currency, findings=findings,
        audit_error=audit_error, **_billing_fields(billing, day, history, clusters, prices),
        unpriced=unpriced_node_types(rows, clusters, prices), exemptions=list(exemptions))


def _billing_fields(billing: Billing | None, day: date, history, clusters, prices: PriceTable) -> dict:
    """The day closed and the one before it (settled: the bill lags by hours)."""
    if billing is None:
        return {}
    if billing.error:
        return {"billing_error": billing.error, "billing_source": billing.source}
    days = [d for d in (day - timedelta(days=1), day) if d in billing.days]
    return {"billing": drift_rows(billing, days, history, clusters, prices), "billing_source": billing.source}


def unpriced_node_types(rows: list[ReportRow], clusters: dict[str, "TrackedCluster"], prices: PriceTable) -> list[str]:
    """Node types of the clusters that ran but the price table does not list: their cost is left
    out (never guessed), and the report says which types to add to PRICE_TABLE_FILE."""
    out = set()
    for r in rows:
        c = clusters.get(r.cluster_id)
        if c is not None and r.used_ms:
            photon = bool(getattr(c, "photon", False))
            out |= {f"{t} (Photon)" if photon and t in prices.node_types else t
                    for t in (c.node_type_id, c.driver_node_type_id) if t and prices.rate(t, photon) is None}
    return sorted(out)


def build_preview(day: date, *, days: list["DayRecord"], clusters: dict[str, "TrackedCluster"],
                  prices: PriceTable, semester_start: date | None = None, unit: QuotaUnit = MINUTES,
                  exemptions: list[Exemption] = ()) -> DailyReport:
    """Today's report before the nightly close: each cluster as of the last poll, marked a preview."""
    rows = []
    for r in days:
        c = clusters.get(r.cluster_id)
        unit = UNITS.get(r.quota_unit, MINUTES)
        measured = Measured(r.used_ms, r.used_node_ms, r.startup_ms, r.startup_node_ms)
        rows.append(ReportRow(r.cluster_id, c.name if c else r.cluster_id, c.group_name if c else None, r.used_ms,
                              r.limit_amount, r.sessions, r.was_warned, r.was_stopped, r.blocked_at is not None,
                              r.estimated, _cost(prices, r.used_ms, c, r.used_node_ms, (r.startup_ms, r.startup_node_ms)),
                              exempt=bool(c and c.exempt), unit=unit, used=_in_unit(unit, prices, c, measured)))
    rows = _sorted(rows)
    return DailyReport(day=day, rows=rows, totals=totals(rows), week={}, semester={},
                       semester_start=semester_start or day, never_ran=[],
                       idle_today=[r.cluster_name for r in rows if r.used_ms == 0],
                       currency=prices.currency, preview=True, unit=unit, unpriced=unpriced_node_types(rows, clusters, prices),
                       exemptions=list(exemptions))


@dataclass(frozen=True)
class ChartBar:
    """One bar of the report's chart: a group's clusters stacked (or one cluster with no group
    quota: exempt, or no group), against the group's hard quota (None: no quota to show)."""
    label: str                              # the group's name as it is, in any script
    segments: tuple[tuple[str, float], ...]  # (cluster name, used in the unit), bottom to top
    quota: float | None
    state: str                              # ok | warned | stopped | exempt

    @property
    def total(self) -> float:
        return sum(v for _, v in self.segments)


def chart_bars(rows: list[ReportRow]) -> list[ChartBar]:
    """One bar per group, its clusters stacked, against the group's quota (its clusters share it:
    the largest recorded, after a grant); clusters outside any group quota each on their own."""
    groups: dict[str, list[ReportRow]] = {}
    alone: list[ReportRow] = []
    for r in rows:
        (groups.setdefault(r.group, []) if r.group and not r.exempt else alone).append(r)
    bars = []
    for group, members in groups.items():
        members = sorted(members, key=lambda r: r.cluster_name)
        state = "stopped" if any(r.terminated for r in members) else "warned" if any(r.warned for r in members) \
            else "ok"
        bars.append(ChartBar(group, tuple((r.cluster_name, r.unit.value(r.used)) for r in members),
                             max(r.unit.value(r.limit_amount) for r in members), state))
    for r in alone:
        bars.append(ChartBar(r.cluster_name, ((r.cluster_name, r.unit.value(r.used)),),
                             None if r.exempt else r.unit.value(r.limit_amount),
                             "exempt" if r.exempt else "stopped" if r.terminated else "warned" if r.warned else "ok"))
    return sorted(bars, key=lambda b: b.label)
