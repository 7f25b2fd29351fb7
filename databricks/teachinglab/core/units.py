"""The quota unit (QUOTA_UNIT): what a group's daily quota counts. Pure.

- minutes: usable time, as always (a cluster with 4 workers counts like one with 1);
- dbu:     DBUs from node-time: the driver for every ms used plus its workers, at each node type's
           DBU/h in the price table;
- usd:     the cost: those DBUs at the table's $/DBU plus every node's VM $/h, start-up VM time
           included (the VMs are billed while the cluster starts).

Amounts are integers, so a group's sum over its clusters never drifts: milliseconds for minutes,
millionths of a DBU or of a dollar otherwise. Each amount is computed afresh from the day's
integer node-time, never accumulated from rounded pieces, so a replay gives the same number.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from databricks.teachinglab.core.prices import PriceTable

MS_PER_HOUR = 3_600_000


class NodeTypes(Protocol):
    node_type_id: str | None
    driver_node_type_id: str | None
    # and `photon: bool`, where known (ClusterInfo, TrackedCluster): read with getattr


@dataclass(frozen=True)
class Measured:
    """What a cluster used on a day, in integer milliseconds."""
    used_ms: int = 0
    node_ms: int = 0          # 1 driver + its workers, for every ms used
    startup_ms: int = 0       # start to RUNNING: the VMs are billed, the cluster is not usable
    startup_node_ms: int = 0


@dataclass(frozen=True)
class QuotaUnit:
    name: str          # QUOTA_UNIT's value
    scale: int         # integer amount per unit
    symbol: str        # as shown: "min", "DBU", "USD"
    warn_var: str      # the environment variables that give its limits
    max_var: str
    max_limit: float   # the largest daily limit or grant a command accepts (a typo guard)

    @property
    def priced(self) -> bool:
        """Whether the unit needs the price table (every node type a cluster uses must be in it)."""
        return self.name != "minutes"

    def of(self, value: float) -> int:
        """A limit given in the unit (480 minutes, 6.5 DBU) as an integer amount."""
        return round(value * self.scale)

    def value(self, amount: int) -> float:
        return amount / self.scale

    def number(self, amount: int) -> str:
        """"412" (minutes), "4.25" (DBU, USD): rounded down, so a message never claims more than
        was used (5.999 DBU shows as 5.99, not as the 6.00 of a limit not yet reached)."""
        if self.name == "minutes":
            return str(amount // self.scale)
        hundredths = amount * 100 // self.scale
        return f"{hundredths // 100}.{hundredths % 100:02d}"

    def show(self, amount: int) -> str:
        """"412 minutes", "4.25 DBU", "3.10 USD"."""
        return f"{self.number(amount)} {'minutes' if self.name == 'minutes' else self.symbol}"

    def amount(self, prices: PriceTable | None, cluster: NodeTypes, m: Measured) -> tuple[int, bool]:
        """(amount, priced): what the measured time counts in this unit. A node type missing from
        the price table is counted at the table's dearest rate, an upper bound, so no group escapes
        its quota by choosing a VM the table lacks; `priced` is False then, and the caller says so."""
        if not self.priced:
            return m.used_ms, True
        driver, worker, priced = _rates(prices, cluster)
        worker_ms = max(0, m.node_ms - m.used_ms)
        dbu_ms = m.used_ms * driver.dbu + worker_ms * worker.dbu  # DBU/h x ms
        if self.name == "dbu":
            return round(dbu_ms * self.scale / MS_PER_HOUR), priced
        startup_worker_ms = max(0, m.startup_node_ms - m.startup_ms)
        usd_ms = (dbu_ms * prices.dbu_price + (m.used_ms + m.startup_ms) * driver.vm
                  + (worker_ms + startup_worker_ms) * worker.vm)
        return round(usd_ms * self.scale / MS_PER_HOUR), priced

    def rate_per_ms(self, prices: PriceTable | None, cluster: NodeTypes, workers: int) -> float:
        """The amount a cluster with `workers` workers adds per millisecond it is usable."""
        if not self.priced:
            return 1.0
        driver, worker, _ = _rates(prices, cluster)
        dbu_h = driver.dbu + workers * worker.dbu
        per_h = dbu_h if self.name == "dbu" else dbu_h * prices.dbu_price + driver.vm + workers * worker.vm
        return per_h * self.scale / MS_PER_HOUR


@dataclass(frozen=True)
class _Rate:
    dbu: float
    vm: float


def _rates(prices: PriceTable | None, cluster: NodeTypes) -> tuple[_Rate, _Rate, bool]:
    if prices is None or not prices.node_types:
        raise ValueError("a priced quota unit needs a price table with node types")
    dearest = prices.dearest
    worker_type = cluster.node_type_id or ""
    driver_type = cluster.driver_node_type_id or worker_type
    photon = bool(getattr(cluster, "photon", False))  # Photon's DBU rate, where the cluster runs it
    found = [prices.rate(t, photon) for t in (driver_type, worker_type)]
    driver, worker = ((_Rate(p["dbu_per_hour"], p["vm_per_hour"]) if p else
                       _Rate(dearest["dbu_per_hour"], dearest["vm_per_hour"])) for p in found)
    return driver, worker, all(p is not None for p in found)


UNITS = {u.name: u for u in (
    QuotaUnit("minutes", 60_000, "min", "DATABRICKS_WARN_UPTIME", "DATABRICKS_MAX_UPTIME", 24 * 60),
    QuotaUnit("dbu", 1_000_000, "DBU", "DATABRICKS_WARN_DBU", "DATABRICKS_MAX_DBU", 10_000),
    QuotaUnit("usd", 1_000_000, "USD", "DATABRICKS_WARN_USD", "DATABRICKS_MAX_USD", 100_000),
)}
MINUTES = UNITS["minutes"]
