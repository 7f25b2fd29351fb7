"""The price table: DBU per hour and the VM's $ per hour per node type, and $ per DBU. Estimates,
never a bill (PRICE_TABLE_FILE, or the packaged adapters/prices.json). Pure."""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property


def _price(value, name: str) -> float:
    """A price: a finite number from 0 to a million (NaN, inf or a typo of that size would make
    every quota meaningless)."""
    number = float(value)
    if isinstance(value, bool) or not math.isfinite(number) or not 0 <= number <= 1_000_000:
        raise ValueError(f"{name} = {value!r} is not a price (a number from 0 to 1000000)")
    return number


@dataclass(frozen=True)
class PriceTable:
    currency: str
    dbu_price: float
    node_types: dict

    @classmethod
    def from_json(cls, data: dict) -> "PriceTable":
        """Raises KeyError, TypeError or ValueError when a field is missing or not a number."""
        table = cls(data.get("currency", "USD"), _price(data["dbu_price"], "dbu_price"), dict(data["node_types"]))
        for name, price in table.node_types.items():
            _price(price["dbu_per_hour"], f"{name}.dbu_per_hour"), _price(price["vm_per_hour"], f"{name}.vm_per_hour")
        return table

    @cached_property
    def dearest(self) -> dict:
        """The node type price with the highest $/h (DBUs at dbu_price plus the VM)."""
        return max(self.node_types.values(), key=lambda p: p["dbu_per_hour"] * self.dbu_price + p["vm_per_hour"])

    def hourly(self, node_type: str | None, nodes: int) -> float | None:
        price = self.node_types.get(node_type or "")
        if price is None:
            return None
        return nodes * (price["dbu_per_hour"] * self.dbu_price + price["vm_per_hour"])

    def dbu_and_cost(self, used_ms: int, node_ms: int, worker_type: str | None, driver_type: str | None = None,
                     startup_ms: int = 0, startup_node_ms: int = 0) -> tuple[float, float] | None:
        """(DBUs, cost) of a cluster's measured time: the driver for every ms used, the workers
        for the rest of the node-time; each at its node type's rates. Start-up time (a start to
        RUNNING) adds its VMs to the cost, no DBUs: the VMs are billed, the cluster is not usable
        yet. None when a type used is not in the table."""
        driver = self.node_types.get(driver_type or worker_type or "")
        worker_ms, startup_worker_ms = max(0, node_ms - used_ms), max(0, startup_node_ms - startup_ms)
        worker = self.node_types.get(worker_type or "") if worker_ms or startup_worker_ms else driver
        if driver is None or worker is None:
            return None
        driver_h, worker_h = used_ms / 3_600_000, worker_ms / 3_600_000
        dbu = driver_h * driver["dbu_per_hour"] + worker_h * worker["dbu_per_hour"]
        vm_h = {"driver": driver_h + startup_ms / 3_600_000, "worker": worker_h + startup_worker_ms / 3_600_000}
        return dbu, dbu * self.dbu_price + vm_h["driver"] * driver["vm_per_hour"] + vm_h["worker"] * worker["vm_per_hour"]

    def measured(self, cluster, used_ms: int, node_ms: int, startup_ms: int = 0,
                 startup_node_ms: int = 0) -> tuple[float, float] | None:
        """dbu_and_cost at a cluster's own node types (a TrackedCluster)."""
        return self.dbu_and_cost(used_ms, node_ms, cluster.node_type_id, cluster.driver_node_type_id,
                                 startup_ms, startup_node_ms)
