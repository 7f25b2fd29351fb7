"""Quota decisions. Pure: from usage, limits and what was already done today, the named actions
still needed. Each action is safe to repeat, so after a crash the next poll decides the same
unfinished actions again and finishes them."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from databricks.teachinglab.core.accounting import ACTIVE_STATES
from databricks.teachinglab.core.units import MINUTES, QuotaUnit


class Action(str, Enum):
    WARN = "warn"                    # email the group once a day at the soft quota
    TERMINATE = "terminate"          # stop the cluster
    BLOCK = "block"                  # lower the group to CAN_ATTACH_TO until the nightly close
    NOTIFY = "notify"                # tell the group and admin it was stopped
    NOTIFY_RETERMINATION = "notify_retermination"  # tell the admin, once, of a restart while blocked
    RESTORE = "restore"              # give the group CAN_RESTART back
    REBLOCK = "reblock"              # a block undone from outside (terraform, the UI): lower again
    NOTIFY_REBLOCK = "notify_reblock"  # tell the admin, once per cluster per day, it was undone


@dataclass(frozen=True)
class Limits:
    """A day's soft and hard quota as integer amounts of the quota unit (core/units.py)."""
    warn: int
    hard: int
    unit: QuotaUnit = MINUTES
    # Under a semester policy (core/allowance.py): the cap the hard limit comes from, the one the
    # warning level comes from, when the first refills, and what each is once per.
    cap: str = "daily"
    warn_cap: str = "daily"
    refills: str | None = None
    period: str | None = None
    warn_period: str | None = None
    bank: int = 0                     # top-up bank included in `hard`
    spans: tuple = ()                 # (cap, used before today, the period's total) for weekly, semester

    @property
    def extra(self) -> int:
        """What today's hard limit holds beyond what its cap itself leaves (grants, top-up banks):
        0 for a week or a semester used up, however many days later."""
        own = next((max(0, total - before) for cap, before, total in self.spans if cap == self.cap), None)
        return self.hard if own is None else max(0, self.hard - own)

    @classmethod
    def of(cls, unit: QuotaUnit, warn: float, hard: float, granted: float = 0) -> "Limits":
        """From limits given in the unit (480 minutes, 6.5 DBU), plus what was granted today."""
        return cls(unit.of(warn + granted), unit.of(hard + granted), unit)

    @classmethod
    def from_minutes(cls, warn: float, hard: float, granted: float = 0) -> "Limits":
        return cls.of(MINUTES, warn, hard, granted)


@dataclass(frozen=True)
class DayFlags:
    """What has been done for a cluster today (all False on a new day)."""
    warned: bool = False
    terminated: bool = False       # we stopped it at least once today
    blocked: bool = False          # its group's permission was lowered
    notified: bool = False         # the termination notice is in the outbox
    retermination_notified: bool = False
    reblock_notified: bool = False


@dataclass(frozen=True)
class Decision:
    actions: tuple[Action, ...]
    reason: str

    @property
    def is_noop(self) -> bool:
        return not self.actions


# Levels that let a group start its cluster: a blocked group found holding one was raised from
# outside (a Terraform apply, a person in the UI).
RESTART_LEVELS = ("CAN_RESTART", "CAN_MANAGE")


def decide(*, used: int, limits: Limits, state: str, flags: DayFlags, group: str | None,
           exempt: bool, group_level: str | None = None, can_block: bool = True, alone: bool = False) -> Decision:
    """`used` is the group's usage over all its clusters, in the limits' unit. `group_level`: the group's direct
    level on the cluster as read this poll (only read for clusters blocked today), or None.
    `can_block` is False for a student's own cluster: the group holds no right on it to lower,
    so it is terminated again each time it is seen running. `alone`: a student's cluster whose
    creator is in no course group, held to the quota by itself."""
    if exempt:
        return Decision((), "exempt (a lab cluster's quota=exempt tag, or --set_quota exempt)")
    if group is None and not alone:
        return Decision((), "unmapped: a lab cluster with no group tag, no group with CAN_RESTART, no cluster_NN name")
    can_block = can_block and not alone
    active = state in ACTIVE_STATES
    if used >= limits.hard:
        actions: list[Action] = []
        if active:
            actions.append(Action.TERMINATE)
        if not flags.blocked and can_block:
            actions.append(Action.BLOCK)
        elif group_level in RESTART_LEVELS:
            actions.append(Action.REBLOCK)
            if not flags.reblock_notified:
                actions.append(Action.NOTIFY_REBLOCK)
        if not flags.notified:
            actions.append(Action.NOTIFY)
        elif active and flags.terminated and not flags.retermination_notified:
            actions.append(Action.NOTIFY_RETERMINATION)
        if active and flags.terminated:
            return Decision(tuple(actions), "over the hard quota and running again while blocked")
        return Decision(tuple(actions), "over the hard quota")
    if flags.blocked:
        return Decision((Action.RESTORE,), "blocked, but a grant raised the limit above usage")
    if used >= limits.warn and not flags.warned and not flags.notified:
        return Decision((Action.WARN,), "over the soft quota")
    return Decision((), "within quota" if used < limits.warn else "already warned")
