"""Measured DBUs against billed ones (system.billing.usage), per group and day. Pure.

The bill is the truth about money, but it comes late (hours; up to a day); events are what the
quota can act on within a minute. The drift between the two tells the admin how far to trust the
measured figures, and a billed cluster the ledger does not know is compute outside the quota.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING

from databricks.teachinglab.core.prices import PriceTable

if TYPE_CHECKING:  # types only: core imports no ledger
    from databricks.teachinglab.core.records import HistoryRecord, TrackedCluster

NOT_IN_LEDGER = "(clusters not in the ledger)"


@dataclass(frozen=True)
class Billing:
    """Billed DBUs per (cluster id, local day) for `days`, or why there are none (`error`)."""
    days: tuple[date, ...]
    dbus: dict[tuple[str, date], float] = field(default_factory=dict)
    error: str | None = None
    source: str = ""               # "warehouse 1234abcd": where the figures came from


def by_local_day(records, tz) -> dict[tuple[str, date], float]:
    """Billed (cluster id, start, end, DBUs) records, in UTC as the table keeps them, booked to the
    local days they cover: one that straddles local midnight (hourly records do in half-hour zones,
    and every record in a zone the warehouse session does not share) is split in proportion."""
    from databricks.teachinglab.core.accounting import Interval, split_by_day
    out: dict[tuple[str, date], float] = {}
    for cluster_id, start, end, dbus in records:
        interval = Interval(start, end)
        pieces = split_by_day(interval, tz) if interval.ms else {start.astimezone(tz).date(): 1}
        total = sum(pieces.values())
        for day, ms in pieces.items():
            out[(cluster_id, day)] = out.get((cluster_id, day), 0.0) + dbus * ms / total
    return out


@dataclass(frozen=True)
class DriftRow:
    day: date
    group: str
    measured: float | None         # from node-time and the price table; None when a type is unpriced
    billed: float

    @property
    def drift_percent(self) -> float | None:
        """How much more was billed than measured, in % of measured; None with nothing measured."""
        if not self.measured:
            return None
        return round(100 * (self.billed - self.measured) / self.measured, 1)


def drift_rows(billing: Billing, days: list[date], history: list["HistoryRecord"],
               clusters: dict[str, "TrackedCluster"], prices: PriceTable) -> list[DriftRow]:
    """Per day of `days` and group: DBUs measured (archived history) and billed. A group with
    nothing on either side is left out; billed clusters the ledger never saw are one line."""
    measured: dict[tuple[date, str], float | None] = {}
    for h in history:
        if h.day not in days:
            continue
        key = (h.day, h.group_name or h.cluster_name)
        cluster = clusters.get(h.cluster_id)
        got = prices.measured(cluster, h.used_ms, h.node_ms) if cluster is not None else None
        before = measured.get(key, 0.0)
        measured[key] = None if got is None or before is None else before + got[0]
    billed: dict[tuple[date, str], float] = {}
    for (cluster_id, day), dbus in billing.dbus.items():
        if day not in days:
            continue
        cluster = clusters.get(cluster_id)
        group = (cluster.group_name or cluster.name) if cluster is not None else NOT_IN_LEDGER
        billed[(day, group)] = billed.get((day, group), 0.0) + dbus
    rows = []
    for key in sorted(set(measured) | set(billed), key=lambda k: (k[0], k[1] == NOT_IN_LEDGER, k[1])):
        got = measured.get(key, 0.0)
        if not got and not billed.get(key):
            continue
        rows.append(DriftRow(key[0], key[1], None if got is None else round(got, 4), round(billed.get(key, 0.0), 4)))
    return rows
