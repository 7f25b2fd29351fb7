"""--plan_course: what the semester can cost at worst, what a previous ledger says it will cost, and
the node types the workspace offers, before anything is created."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from databricks.teachinglab.adapters.roster_files import read_users_csv
from databricks.teachinglab.cli.registry import Invocation, command
from databricks.teachinglab.core.plan import CoursePlan
from databricks.teachinglab.core.roster import Roster, RosterError


def read_roster(path: str) -> Roster | None:
    """The roster, or None after printing every problem as file:line (the caller exits 2)."""
    try:
        roster = read_users_csv(Path(path))
    except RosterError as err:
        problems = err.problems
    else:
        problems = roster.problems
        if not problems:
            return roster
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return None


@command("plan_course", "the semester's worst-case cost from the roster, the policy and the price table, an "
         "expected cost from a previous ledger, the workspace's node types cheapest first (--budget USD: exit 1 "
         "when the worst case exceeds it, with the largest quota that fits; --weeks N; --json)",
         flag={"metavar": "USERS_CSV"}, workspace=True)
def plan_course(inv: Invocation) -> int:
    from databricks.teachinglab.services.plan import course_plan, node_type_options
    settings, args = inv.settings, inv.args
    roster = read_roster(args.plan_course)
    if roster is None:
        return 2
    if settings.quota.prices is None or not settings.quota.prices.node_types:
        print("error: --plan_course needs a price table with node types (PRICE_TABLE_FILE)", file=sys.stderr)
        return 2
    plan = course_plan(settings, roster, weeks=args.weeks, budget_usd=args.budget)
    expected = _expected(inv, len(roster.groups), plan.weeks)
    try:
        offered = node_type_options(settings, inv.context().workspace.node_types())
        offered_error = None
    except Exception as err:  # noqa: BLE001 - the plan stands without the list; said
        offered, offered_error = [], f"{type(err).__name__}: {err}"
    if args.json:
        print(json.dumps({"course": settings.course_label, **plan.as_json(), "expected": expected,
                          "node_types": offered, "node_types_error": offered_error}, indent=2, ensure_ascii=False))
    else:
        print(describe(plan, expected, offered, offered_error))
    return 1 if plan.within_budget is False else 0


def _expected(inv: Invocation, groups: int, weeks: int) -> dict | None:
    """From the ledger's recorded sessions, when a ledger exists (it is never created here)."""
    from databricks.teachinglab.cli.wiring import open_existing_ledger
    from databricks.teachinglab.services.plan import expected_cost
    try:
        return expected_cost(inv.settings, groups, weeks) if open_existing_ledger(inv.settings, inv.now) else None
    except Exception as err:  # noqa: BLE001 - the worst case does not need it
        print(f"note: the ledger could not be read for an expected cost ({type(err).__name__}: {err})",
              file=sys.stderr)
        return None


def describe(plan: CoursePlan, expected: dict | None, offered: list[dict], offered_error: str | None) -> str:
    unit = {"minutes": "min", "dbu": "DBU", "usd": "USD"}[plan.unit]
    students = sum(g.students for g in plan.groups)
    lines = [f"{len(plan.groups)} group(s), {students} student(s), {plan.days} days ({plan.weeks} weeks); clusters "
             f"{plan.node_type} with up to {plan.max_workers} workers; QUOTA_UNIT={plan.unit}",
             "worst case (every group at every cap, at its largest size, every top-up):"]
    for g in plan.groups:
        lines.append(f"  {g.group}: {g.max_amount:g} {unit} ({g.limited_by} cap binds"
                     + (f", {g.topups:g} of top-ups" if g.topups else "") + ")"
                     + (f"; serverless {g.serverless_dbu:g} DBU" if g.serverless_dbu is not None else ""))
    lines.append(f"  clusters: {plan.worst_dbu:.1f} DBU = {plan.worst_dbu_usd:.2f} USD of DBUs + "
                 f"{plan.worst_vm_usd:.2f} USD of VMs")
    lines.append(f"  serverless: {plan.worst_serverless_usd:.2f} USD at {plan.serverless_dbu_price:g} USD/DBU"
                 + ("; not bounded for " + ("every group" if len(plan.serverless_unbounded) == len(plan.groups)
                                            else ", ".join(plan.serverless_unbounded))
                    + " (no [serverless] cap: set one, and the serverless compute ids, README 'Serverless')"
                    if plan.serverless_unbounded else ""))
    lines.append(f"  total: {plan.worst_usd:.2f} USD")
    if expected:
        lines.append(f"expected from {expected['from_sessions']} recorded session(s) ({expected['groups_seen']} group(s) "
                     f"over {expected['weeks_seen']} week(s) since {expected['first_day']}): about {expected['usd']:.2f} "
                     f"USD ({expected['dbu']:.1f} DBU) for this course")
    if plan.budget_usd is not None:
        verdict = "within" if plan.within_budget else "OVER"
        lines.append(f"budget {plan.budget_usd:.2f} USD: the worst case is {verdict} it")
        if not plan.within_budget and plan.largest_fitting:
            f = plan.largest_fitting
            lines.append(f"  largest quota that fits, if that cap alone binds ({plan.node_type}): daily {f['daily']:g}, "
                         f"weekly {f['weekly']:g} or semester {f['semester']:g} {unit} per group")
    if offered:
        lines.append("node types the workspace offers, cheapest first (price table; unpriced last):")
        for o in offered[:12]:
            price = f"{o['usd_per_hour']:.3f} USD/h" if o["usd_per_hour"] is not None else "not in the price table"
            lines.append(f"  {o['node_type_id']:<22} {o['cores']:g} cores {o['memory_gb']:g} GB  {price}")
    elif offered_error:
        lines.append(f"node types: not listed ({offered_error})")
    return "\n".join(lines)
