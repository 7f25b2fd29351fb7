"""--plan_course: what a semester can cost at worst, before it starts. Pure: the roster's groups,
the policy, the cluster settings and the price table in; figures out.

Worst case: every group uses every cap to the end, on its cluster at its largest size (1 driver
+ CLUSTER_MAX_WORKERS), plus every top-up, plus its serverless caps. A cap's period total is its
limit times the periods in the semester (days, started weeks); the smallest of them binds.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from databricks.teachinglab.core.policy import Policy
from databricks.teachinglab.core.prices import PriceTable


@dataclass(frozen=True)
class UnitCost:
    """What one unit of QUOTA_UNIT (a minute, a DBU, a dollar) costs at worst, and its DBUs."""
    dbu: float
    dbu_usd: float
    vm_usd: float

    @property
    def usd(self) -> float:
        return self.dbu_usd + self.vm_usd


def unit_cost(unit: str, prices: PriceTable, node_type: str, driver_type: str | None, max_workers: int) -> UnitCost:
    driver = prices.rate(driver_type or node_type) or prices.dearest
    worker = prices.rate(node_type) or prices.dearest
    dbu_h = driver["dbu_per_hour"] + max_workers * worker["dbu_per_hour"]
    vm_h = driver["vm_per_hour"] + max_workers * worker["vm_per_hour"]
    if unit == "minutes":
        return UnitCost(dbu_h / 60, dbu_h / 60 * prices.dbu_price, vm_h / 60)
    if unit == "dbu":  # the VM cost per DBU is highest on whichever size has the dearer VMs per DBU
        ratio = max(vm_h / dbu_h, driver["vm_per_hour"] / driver["dbu_per_hour"]) if dbu_h else 0.0
        return UnitCost(1.0, prices.dbu_price, ratio)
    usd_h = dbu_h * prices.dbu_price + vm_h  # usd: a dollar is a dollar, split as at the largest size
    share = dbu_h * prices.dbu_price / usd_h if usd_h else 0.0
    return UnitCost(share / prices.dbu_price if prices.dbu_price else 0.0, share, 1 - share)


@dataclass(frozen=True)
class GroupPlan:
    group: str
    students: int
    max_amount: float           # the most it can use in QUOTA_UNIT over the semester, top-ups included
    limited_by: str             # daily | weekly | semester
    topups: float
    serverless_dbu: float | None   # None: no serverless cap (not bounded by the policy)


@dataclass
class CoursePlan:
    unit: str
    days: int
    weeks: int
    node_type: str
    max_workers: int
    groups: list[GroupPlan]
    per_unit: UnitCost
    serverless_dbu_price: float
    worst_dbu: float = 0.0
    worst_dbu_usd: float = 0.0
    worst_vm_usd: float = 0.0
    worst_serverless_usd: float = 0.0
    serverless_unbounded: list[str] = field(default_factory=list)
    budget_usd: float | None = None
    largest_fitting: dict | None = None   # cap -> the largest limit (in the unit) that fits the budget

    @property
    def worst_usd(self) -> float:
        return self.worst_dbu_usd + self.worst_vm_usd + self.worst_serverless_usd

    @property
    def within_budget(self) -> bool | None:
        return None if self.budget_usd is None else self.worst_usd <= self.budget_usd + 1e-9

    def as_json(self) -> dict:
        out = asdict(self)
        out.pop("per_unit")
        out["per_unit_usd"] = round(self.per_unit.usd, 6)
        out["worst_usd"] = round(self.worst_usd, 2)
        out["within_budget"] = self.within_budget
        for key in ("worst_dbu", "worst_dbu_usd", "worst_vm_usd", "worst_serverless_usd"):
            out[key] = round(out[key], 2)
        return out


def plan_course(groups: list[tuple[str, int]], policy: Policy, prices: PriceTable, *, days: int, node_type: str,
                driver_type: str | None, max_workers: int, budget_usd: float | None = None) -> CoursePlan:
    """`groups`: (name, students) from the roster; `days`: the semester's length in days."""
    unit = policy.unit.name
    weeks = math.ceil(days / 7)
    per_unit = unit_cost(unit, prices, node_type, driver_type, max_workers)
    serverless_price = prices.serverless_dbu_price if prices.serverless_dbu_price is not None else prices.dbu_price
    plans = []
    for name, size in groups:
        caps = policy.for_group(name)
        bound = {"daily": days * caps.daily_max}
        if caps.weekly_max is not None:
            bound["weekly"] = weeks * caps.weekly_max
        if caps.semester_max is not None:
            bound["semester"] = caps.semester_max
        limited_by = min(bound, key=bound.get)
        topups = sum(t.amount for t in policy.topups_for(name))
        s = policy.serverless_for(name)
        sbound = [v for v in ((days * s.daily_max) if s.daily_max else None,
                              (weeks * s.weekly_max) if s.weekly_max else None, s.semester_max) if v is not None]
        plans.append(GroupPlan(name, size, bound[limited_by] + topups, limited_by, topups,
                               min(sbound) if sbound else None))
    plan = CoursePlan(unit, days, weeks, node_type, max_workers, plans, per_unit, serverless_price,
                      budget_usd=budget_usd)
    for g in plans:
        plan.worst_dbu += g.max_amount * per_unit.dbu
        plan.worst_dbu_usd += g.max_amount * per_unit.dbu_usd
        plan.worst_vm_usd += g.max_amount * per_unit.vm_usd
        if g.serverless_dbu is None:
            plan.serverless_unbounded.append(g.group)
        else:
            plan.worst_serverless_usd += g.serverless_dbu * serverless_price
    if budget_usd is not None and plans:
        plan.largest_fitting = largest_fitting(plan, budget_usd)
    return plan


def largest_fitting(plan: CoursePlan, budget_usd: float) -> dict:
    """Per cap, the largest limit that keeps the worst case within the budget if that cap alone
    bound every group (top-ups and serverless caps as they are)."""
    fixed = sum(g.topups for g in plan.groups) * plan.per_unit.usd + plan.worst_serverless_usd
    per_group = max(0.0, budget_usd - fixed) / len(plan.groups) / plan.per_unit.usd if plan.per_unit.usd else 0.0
    out = {}
    for cap, periods in (("daily", plan.days), ("weekly", plan.weeks), ("semester", 1)):
        value = per_group / periods
        out[cap] = math.floor(value) if plan.unit == "minutes" else math.floor(value * 100) / 100
    out["unit"] = plan.unit
    return out
