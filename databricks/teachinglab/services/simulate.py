"""--simulate POLICY_FILE: the recorded sessions replayed under another policy, set against the
policy in force now and against what the ledger recorded. Reads the ledger only; no workspace."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from databricks.teachinglab.adapters.ledger import repository as ledger
from databricks.teachinglab.core import accounting as acc
from databricks.teachinglab.core.policy import Policy
from databricks.teachinglab.core.serverless import replay
from databricks.teachinglab.core.settings import Settings
from databricks.teachinglab.core.simulate import GroupOutcome, day_pieces, nearest_stop, simulate_group
from databricks.teachinglab.core.units import UNITS
from databricks.teachinglab.services.allowances import replay_start

CAVEAT = ("Recorded usage was already cut short by the policy in force then: a looser policy cannot "
          "show the demand that policy denied.")


@dataclass(frozen=True)
class Comparison:
    group: str
    candidate: GroupOutcome
    current: GroupOutcome
    recorded_stops: int
    landmarks: list[dict]        # top-up windows and deadlines, each with the candidate's nearest stop
    serverless: tuple | None = None  # (candidate, current) ServerlessReplay, when the bill showed use

    def as_json(self, unit) -> dict:
        def figures(o: GroupOutcome) -> dict:
            return {"stops": len(o.stops), "denied_minutes": o.denied_ms // 60_000,
                    "denied_amount": round(unit.value(o.denied_amount), 4), "cost_saved_usd": round(o.saved_usd, 2),
                    "stop_days": [d.isoformat() for d in o.stop_days]}
        out = {"group": self.group, **figures(self.candidate), "quota_unit": unit.name,
               "current": figures(self.current), "recorded_stops": self.recorded_stops,
               "nearest_stops": self.landmarks}
        if self.serverless:
            def serverless(r) -> dict:
                return {"used_dbu": r.used, "denied_dbu": r.denied, "off_days": [d.isoformat() for d in r.off_days]}
            out["serverless"] = {**serverless(self.serverless[0]), "current": serverless(self.serverless[1])}
        return out


@dataclass(frozen=True)
class Simulation:
    candidate: Policy
    current: Policy
    report_from: date
    report_to: date
    groups: list[Comparison]
    sessions: int

    def as_json(self) -> list[dict]:
        return [g.as_json(self.candidate.unit) for g in self.groups]


def simulate(settings: Settings, candidate: Policy, *, today: date, date_from: date | None = None,
             date_to: date | None = None) -> Simulation:
    tz, unit, prices = settings.quota.timezone, settings.quota.unit, settings.quota.prices
    current = settings.quota.the_policy
    seen = ledger.first_seen()
    seen_day = seen.astimezone(tz).date() if seen else None
    start = min(replay_start(candidate, today, seen_day), replay_start(current, today, seen_day))
    report_to = date_to or today - timedelta(days=1)
    report_from = date_from or candidate.caps.semester_start or start
    start = min(start, report_from)
    clusters = ledger.load_clusters()
    usd = UNITS["usd"]
    rates: dict[tuple[str, int], tuple[float, float]] = {}

    def rate(cluster_id: str, nodes: int) -> tuple[float, float]:
        key = (cluster_id, nodes)
        if key not in rates:
            c = clusters.get(cluster_id)
            types = c if c is not None and c.node_type_id else _Default(settings)
            amount = unit.rate_per_ms(prices, types, nodes - 1)
            dollars = usd.rate_per_ms(prices, types, nodes - 1) / usd.scale if prices and prices.node_types else 0.0
            rates[key] = (amount, dollars)
        return rates[key]

    window_lo, window_hi = acc.day_bounds(start, tz)[0], acc.day_bounds(report_to, tz)[1]
    by_group: dict[str, list] = {}
    count = 0
    for s in ledger.sessions(window_lo, window_hi):
        c = clusters.get(s.cluster_id)
        group = s.group_name or (c.group_name if c else None)
        if not group or (c is not None and c.exempt):
            continue
        count += 1
        by_group.setdefault(group, []).append((s.start, s.end, *rate(s.cluster_id, s.nodes)))
    granted: dict[str, dict[date, int]] = {}
    for g in ledger.grants_between(start, report_to + timedelta(days=1)):
        c = clusters.get(g.cluster_id)
        if c and c.group_name and g.unit == unit.name:
            per = granted.setdefault(c.group_name, {})
            per[g.day] = per.get(g.day, 0) + unit.of(g.amount)
    recorded: dict[str, set[date]] = {}
    for h in ledger.history(report_from, report_to):
        if h.terminated and h.group_name:
            recorded.setdefault(h.group_name, set()).add(h.day)
    serverless_use: dict[str, dict[date, float]] = {}
    for d in ledger.serverless_days(start, report_to):
        if d.group_name:
            serverless_use.setdefault(d.group_name, {})[d.day] = d.dbu
    out = []
    for group in sorted(set(by_group) | set(recorded) | set(serverless_use)):
        pieces = day_pieces(by_group.get(group, []), tz)
        runs = [simulate_group(policy, group, pieces, start=start, end=report_to, report_from=report_from,
                               report_to=report_to, granted=granted.get(group), tz=tz)
                for policy in (candidate, current)]
        replays = None
        if group in serverless_use:
            replays = tuple(replay(p.serverless_for(group), serverless_use[group], start, report_to,
                                   report_from=report_from, semester_start=p.caps.semester_start,
                                   semester_end=p.caps.semester_end) for p in (candidate, current))
        out.append(Comparison(group, runs[0], runs[1], len(recorded.get(group, ())),
                              _landmarks(candidate, group, runs[0]), replays))
    return Simulation(candidate, current, report_from, report_to, out, count)


def _landmarks(policy: Policy, group: str, outcome: GroupOutcome) -> list[dict]:
    marks = [(t.start, t.until, f"top-up: {t.reason or 'no reason given'}") for t in policy.topups_for(group)]
    marks += [(d, d, "deadline") for d in policy.deadlines]
    out = []
    for first, last, what in marks:
        stop, away = nearest_stop(outcome.stops, first, last)
        out.append({"window": f"{first.isoformat()}..{last.isoformat()}", "what": what,
                    "nearest_stop": stop.isoformat(timespec="seconds") if stop else None, "days_away": away})
    return out


class _Default:
    """A cluster the ledger lacks node types for: the lab's own node type."""
    def __init__(self, settings: Settings):
        self.node_type_id = settings.cluster.node_type_id
        self.driver_node_type_id = settings.cluster.driver_node_type_id
