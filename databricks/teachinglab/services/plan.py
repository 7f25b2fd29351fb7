"""--plan_course (and --create_from_csv's budget check): the semester's worst case from the roster,
the policy and the price table; the expected cost from a previous ledger's sessions; the node types
the workspace offers, cheapest first."""
from __future__ import annotations

import logging
import math

from databricks.teachinglab.core.plan import CoursePlan, plan_course
from databricks.teachinglab.core.roster import Roster
from databricks.teachinglab.core.settings import Settings
from databricks.teachinglab.core.units import UNITS

logger = logging.getLogger(__name__)
DEFAULT_WEEKS = 15


def semester_days(settings: Settings, weeks: int | None) -> int:
    """--weeks, else the policy's [semester] dates, else fifteen weeks."""
    if weeks:
        return weeks * 7
    caps = settings.quota.the_policy.caps
    if caps.semester_start and caps.semester_end:
        return (caps.semester_end - caps.semester_start).days + 1
    return DEFAULT_WEEKS * 7


def course_plan(settings: Settings, roster: Roster, *, weeks: int | None = None,
                budget_usd: float | None = None) -> CoursePlan:
    cs = settings.cluster
    return plan_course([(g.name, len(g.members)) for g in roster.groups], settings.quota.the_policy,
                       settings.quota.prices, days=semester_days(settings, weeks), node_type=cs.node_type_id,
                       driver_type=cs.driver_node_type_id, max_workers=cs.max_workers, budget_usd=budget_usd)


def expected_cost(settings: Settings, groups: int, weeks: int) -> dict | None:
    """From the recorded sessions of the ledger (a previous semester's, or this one's so far): the
    average group's cost a week, times groups and weeks. None when it has no sessions."""
    from databricks.teachinglab.adapters.ledger import repository as ledger
    sessions = ledger.sessions()
    if not sessions:
        return None
    clusters = ledger.load_clusters()
    prices, dbu_unit, usd_unit = settings.quota.prices, UNITS["dbu"], UNITS["usd"]
    dbu = usd = 0.0
    per_group: set[str] = set()
    for s in sessions:
        c = clusters.get(s.cluster_id)
        types = c if c is not None and c.node_type_id else settings.cluster
        ms = (s.end - s.start).total_seconds() * 1000
        dbu += dbu_unit.rate_per_ms(prices, types, s.nodes - 1) * ms / dbu_unit.scale
        usd += usd_unit.rate_per_ms(prices, types, s.nodes - 1) * ms / usd_unit.scale
        per_group.add(s.group_name or s.cluster_id)
    span_days = (max(s.end for s in sessions) - min(s.start for s in sessions)).days + 1
    observed_weeks = max(1, math.ceil(span_days / 7))
    scale = groups * weeks / (len(per_group) * observed_weeks)
    return {"dbu": round(dbu * scale, 2), "usd": round(usd * scale, 2), "from_sessions": len(sessions),
            "groups_seen": len(per_group), "weeks_seen": observed_weeks,
            "first_day": min(s.start for s in sessions).astimezone(settings.quota.timezone).date().isoformat()}


def node_type_options(settings: Settings, offered: list[tuple[str, float, int]]) -> list[dict]:
    """The offered types with their price per node-hour (the price table's), cheapest first; types
    the table lacks come last, unpriced."""
    prices = settings.quota.prices
    out = []
    for node_type, cores, memory_mb in offered:
        rate = prices.rate(node_type) if prices else None
        out.append({"node_type_id": node_type, "cores": cores, "memory_gb": round(memory_mb / 1024, 1),
                    "dbu_per_hour": rate["dbu_per_hour"] if rate else None,
                    "usd_per_hour": round(rate["dbu_per_hour"] * prices.dbu_price + rate["vm_per_hour"], 4)
                    if rate else None})
    return sorted(out, key=lambda o: (o["usd_per_hour"] is None, o["usd_per_hour"] or 0, o["node_type_id"]))

