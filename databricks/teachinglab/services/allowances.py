"""Each group's balance under the semester policy as of today, replayed from the ledger: the
poll's limits, the status page's figures and --cluster_usage's week and semester columns.

The replay starts at the semester's start (else eight weeks back, enough for the carry-over,
which is capped) and books every past day's usage, grants and bank draws in order
(core/allowance.Balance). The policy as it is now applies to every past day: a policy changed
mid-semester is replayed as if it had always been in force."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, timedelta

from databricks.teachinglab.adapters.ledger import repository as ledger
from databricks.teachinglab.core.allowance import Allowance, Balance, period_key
from databricks.teachinglab.core.messages import dedupe_key
from databricks.teachinglab.core.policy import Policy, TopUp
from databricks.teachinglab.core.quota import Limits
from databricks.teachinglab.core.settings import Settings
from databricks.teachinglab.core.units import Measured

logger = logging.getLogger(__name__)
LOOKBACK_WEEKS = 8


def replay_start(policy: Policy, today: date, first_seen: date | None = None) -> date:
    """The semester's start; without one, the Monday of the week the lab first saw a cluster, at
    most eight weeks back (the carry-over is capped, so older weeks change nothing). Weeks before
    it carry nothing: the lab did not exist then."""
    semester = [c.semester_start for c in (policy.caps, *policy.groups.values())
                if c.semester_start and c.semester_start <= today]
    if semester:
        return min(semester)
    monday = today - timedelta(days=today.weekday())
    start = monday - timedelta(weeks=LOOKBACK_WEEKS)
    if first_seen is not None:
        start = max(start, first_seen - timedelta(days=first_seen.weekday()))
    return min(start, today)


def bank_topups(settings: Settings, clusters: dict) -> list[TopUp]:
    """--grant N --until DATE: a top-up to the group's bank (a cluster with no group: its own)."""
    out = []
    for g in ledger.bank_grants():
        if g.unit != settings.quota.unit.name:
            logger.warning("cluster=%s: a bank top-up of %g %s is left out: QUOTA_UNIT is %s", g.cluster_id,
                           g.amount, g.unit, settings.quota.unit.name)
            continue
        c = clusters.get(g.cluster_id)
        group = c.group_name if c and c.group_name else g.cluster_id
        out.append(TopUp((group,), g.amount, g.day, g.until, g.reason, source="grant"))
    return out


@dataclass
class PolicyBook:
    """The balances of every group the ledger knows, booked up to (not including) `today`."""
    settings: Settings
    today: date
    balances: dict[str, Balance] = field(default_factory=dict)
    topups: list[TopUp] = field(default_factory=list)
    warned: dict[str, frozenset[str]] = field(default_factory=dict)  # per group, read once per book

    def balance(self, group: str) -> Balance:
        if group not in self.balances:
            policy = self.settings.quota.the_policy
            self.balances[group] = Balance(policy.for_group(group), policy.unit,
                                           [t for t in self.topups if t.applies_to(group)])
        return self.balances[group]

    def allowance(self, group: str, daily: Limits | None = None, granted: int = 0) -> Allowance:
        """Today's allowance. `daily`: the day's limits without the policy (overrides and grants
        included); the weekly and semester warnings already sent this period are left out."""
        b = self.balance(group)
        if group not in self.warned:
            self.warned[group] = frozenset(cap for cap in ("weekly", "semester") if ledger.message_exists(
                dedupe_key("warning", group, f"{cap}:{period_key(cap, self.today, b.caps)}")))
        d = (daily.warn - granted, daily.hard - granted) if daily is not None else None
        return b.allowance(self.today, granted=granted, daily=d, warned=self.warned[group])

    def limits(self, group: str, daily: Limits, granted: int) -> Limits:
        return self.allowance(group, daily, granted).limits()


def policy_book(settings: Settings, today: date, *, clusters: dict | None = None,
                only: str | None = None) -> PolicyBook:
    """`clusters`: the ledger's, when the caller has them; `only`: replay just this group (a page)."""
    policy, unit = settings.quota.the_policy, settings.quota.unit
    clusters = ledger.load_clusters() if clusters is None else clusters
    book = PolicyBook(settings, today, topups=[*policy.topups, *bank_topups(settings, clusters)])
    seen = ledger.first_seen()
    start = replay_start(policy, today, seen.astimezone(settings.quota.timezone).date() if seen else None)
    used: dict[tuple[str, date], int] = {}
    for d in ledger.usage_days(start, today):
        if not d.group_name or d.exempt or (only is not None and d.group_name != only):
            continue
        amount = unit.amount(settings.quota.prices, clusters.get(d.cluster_id) or _NoTypes(), Measured(
            d.used_ms, d.node_ms, d.startup_ms, d.startup_node_ms))[0]
        used[d.group_name, d.day] = used.get((d.group_name, d.day), 0) + amount
    for key, amount in counted_serverless(settings, start, today - timedelta(days=1)).items():
        if only is None or key[0] == only:
            used[key] = used.get(key, 0) + amount
    granted: dict[tuple[str, date], int] = {}
    for g in ledger.grants_between(start, today):
        c = clusters.get(g.cluster_id)
        if c and c.group_name and g.unit == unit.name:
            granted[c.group_name, g.day] = granted.get((c.group_name, g.day), 0) + unit.of(g.amount)
    groups = {c.group_name for c in clusters.values() if c.group_name} | {g for g, _ in used}
    if only is not None:
        groups = {only}
    for group in sorted(groups):
        balance = book.balance(group)
        day = start
        while day < today:
            balance.close(day, used.get((group, day), 0), granted=granted.get((group, day), 0))
            day += timedelta(days=1)
    return book


def counted_serverless(settings: Settings, start: date, end: date) -> dict[tuple[str, date], int]:
    """(group, day) -> the serverless use that counts toward the group's main allowance, in
    QUOTA_UNIT's integer amounts: for groups whose [serverless] has counts_toward_quota (dbu or
    usd only). USD at the record's price; a record without one at the price table's."""
    policy, unit = settings.quota.the_policy, settings.quota.unit
    if not unit.priced or not any(c.counts_toward_quota for c in (policy.serverless, *policy.serverless_groups.values())):
        return {}
    prices = settings.quota.prices
    out = {}
    for d in ledger.serverless_days(start, end):
        if not d.group_name or not policy.serverless_for(d.group_name).counts_toward_quota:
            continue
        if unit.name == "dbu":
            value = d.dbu
        else:
            value = d.usd if d.usd is not None else d.dbu * (prices.serverless_dbu_price or prices.dbu_price)
        out[d.group_name, d.day] = max(0, round(value * unit.scale))
    return out


class _NoTypes:
    node_type_id = None
    driver_node_type_id = None
