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
    """`photon_multiplier`: Photon's DBU rate as a multiple of the node type's, for types without
    their own `photon_dbu_per_hour` ("Photon instance types consume DBUs at a different rate than
    the same instance type running the non-Photon runtime", Azure Databricks Photon docs; the rates
    are on the Azure Databricks pricing page). None: only types with their own Photon rate are priced."""
    currency: str
    dbu_price: float
    node_types: dict
    photon_multiplier: float | None = None
    serverless_dbu_price: float | None = None  # $ per serverless DBU, when billing has no list price

    @classmethod
    def from_json(cls, data: dict) -> "PriceTable":
        """Raises KeyError, TypeError or ValueError when a field is missing or not a number."""
        multiplier = data.get("photon_dbu_multiplier")
        table = cls(data.get("currency", "USD"), _price(data["dbu_price"], "dbu_price"), dict(data["node_types"]),
                    None if multiplier is None else _price(multiplier, "photon_dbu_multiplier"),
                    None if data.get("serverless_dbu_price") is None
                    else _price(data["serverless_dbu_price"], "serverless_dbu_price"))
        for name, price in table.node_types.items():
            _price(price["dbu_per_hour"], f"{name}.dbu_per_hour"), _price(price["vm_per_hour"], f"{name}.vm_per_hour")
            if "photon_dbu_per_hour" in price:
                _price(price["photon_dbu_per_hour"], f"{name}.photon_dbu_per_hour")
        return table

    def rate(self, node_type: str | None, photon: bool = False) -> dict | None:
        """{"dbu_per_hour", "vm_per_hour"} of a node type, at Photon's DBU rate when `photon`; None
        when the table lacks the type (or, for Photon, both its Photon rate and the multiplier)."""
        price = self.node_types.get(node_type or "")
        if price is None or not photon:
            return price
        if "photon_dbu_per_hour" in price:
            return {**price, "dbu_per_hour": price["photon_dbu_per_hour"]}
        if self.photon_multiplier is None:
            return None
        return {**price, "dbu_per_hour": price["dbu_per_hour"] * self.photon_multiplier}

    @cached_property
    def dearest(self) -> dict:
        """The node type price with the highest $/h (DBUs at dbu_price plus the VM), Photon's
        rates included: what a node type the table lacks is counted at, an upper bound."""
        rates = [r for t in self.node_types for r in (self.rate(t), self.rate(t, photon=True)) if r]
        return max(rates, key=lambda p: p["dbu_per_hour"] * self.dbu_price + p["vm_per_hour"])

    def hourly(self, node_type: str | None, nodes: int, photon: bool = False) -> float | None:
        price = self.rate(node_type, photon)
        if price is None:
            return None
        return nodes * (price["dbu_per_hour"] * self.dbu_price + price["vm_per_hour"])

    def dbu_and_cost(self, used_ms: int, node_ms: int, worker_type: str | None, driver_type: str | None = None,
                     startup_ms: int = 0, startup_node_ms: int = 0, photon: bool = False) -> tuple[float, float] | None:
        """(DBUs, cost) of a cluster's measured time: the driver for every ms used, the workers
        for the rest of the node-time; each at its node type's rates (Photon's, for a Photon
        cluster). Start-up time (a start to RUNNING) adds its VMs to the cost, no DBUs: the VMs
        are billed, the cluster is not usable yet. None when a type used is not in the table."""
        driver = self.rate(driver_type or worker_type, photon)
        worker_ms, startup_worker_ms = max(0, node_ms - used_ms), max(0, startup_node_ms - startup_ms)
        worker = self.rate(worker_type, photon) if worker_ms or startup_worker_ms else driver
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
                                 startup_ms, startup_node_ms, photon=bool(getattr(cluster, "photon", False)))
