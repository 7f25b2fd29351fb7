"""The lab principals: whose clusters are trusted (core/trust.py says for what).

    the identity the tool runs as (its token's user, or service principal)
    the workspace admins: members of `admins` (nested groups too), and ADMIN assignments
    LAB_MANAGERS: user emails and service principals' application ids the admin lists

Reading the admins costs a few calls, so they are kept in the ledger and read again at most
once an hour, or sooner when a cluster appears whose creator is not among them (a new admin
may have made it). When they cannot be read, the last list read is used; with none, a creator
outside the tool's identity and LAB_MANAGERS is left unclassified for the run (core.trust).
"""
from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime, timedelta
from typing import Iterable

from databricks.teachinglab.adapters.ledger import repository as ledger
from databricks.teachinglab.adapters.mail.outbox import enqueue
from databricks.teachinglab.adapters.mail.render import render
from databricks.teachinglab.core.errors import AdminError
from databricks.teachinglab.core.messages import dedupe_key
from databricks.teachinglab.core.records import TrackedCluster
from databricks.teachinglab.core.trust import LAB, LabPrincipals
from databricks.teachinglab.services.context import JobContext

logger = logging.getLogger(__name__)
FACT = "lab_principals"
REFRESH = timedelta(hours=1)


def lab_principals(ctx: JobContext, now: datetime, *, creators: Iterable[str | None] = (),
                   dry_run: bool = False) -> LabPrincipals:
    """`creators`: of clusters seen for the first time; one outside the kept list makes it read
    again. A dry run reads when it must but keeps nothing."""
    managers = ctx.settings.workspace.lab_managers
    kept = ledger.fact(FACT)
    known = json.loads(kept[0]) if kept else None
    fresh = kept is not None and now - kept[1] < REFRESH
    names = set(known["names"]) if known else set()
    strangers = {c.lower() for c in creators if c} - names - {m.lower() for m in managers}
    if fresh and not strangers:
        return LabPrincipals.of([*names, *managers])
    me = _me(ctx)
    try:
        read = {*([me.lower()] if me else []), *ctx.workspace.admin_principals()}
    except Exception as err:  # noqa: BLE001 - the kept list serves; with none, nothing new is concluded
        # The run's deadline too: what was measured is still recorded, and the run's one alert says so.
        logger.warning("the workspace admins could not be read (%s: %s); %s", type(err).__name__, err,
                       "using the list read at " + kept[1].isoformat(timespec="minutes") if known else
                       "clusters of creators outside LAB_MANAGERS and the tool's identity stay unclassified this run")
        return LabPrincipals.of([*names, *managers, *([me] if me else [])], complete=known is not None)
    if me is None:  # admins read, but not who the tool is: keep what was known of it
        read |= names
    if not dry_run:
        if read != names:
            logger.info("lab principals: %d (the tool's identity and the workspace admins) plus %d in LAB_MANAGERS",
                        len(read), len(managers))
        with ledger.transaction():
            ledger.set_fact(FACT, json.dumps({"names": sorted(read)}), now)
    return LabPrincipals.of([*read, *managers])


def _me(ctx: JobContext) -> str | None:
    try:
        return ctx.workspace.me()
    except Exception as err:  # noqa: BLE001 - said, and the admins alone decide this run
        logger.warning("the tool's own identity could not be read (%s: %s)", type(err).__name__, err)
        return None


def keepers(gateway, settings) -> dict[str, str]:
    """Who a teardown or --prune never deletes, lower case, with why: read now (never an hour-old
    list), since deleting is forever."""
    keep = {name: "a workspace admin (admins, nested groups, or the ADMIN assignment)"
            for name in gateway.admin_principals()}
    keep.update({m.lower(): "in LAB_MANAGERS" for m in settings.workspace.lab_managers})
    if settings.mail.admin_email:
        keep[settings.mail.admin_email.lower()] = "ADMIN_EMAIL"
    keep[gateway.me().lower()] = "the identity this tool runs as"
    return keep


def queue_tag_drift(ctx: JobContext, usages, now: datetime) -> None:
    """Tell the admin, once for each change, that a lab cluster's tags moved away from the ones
    the ledger recorded (which still decide). The caller holds the transaction."""
    for u in usages:
        a = u.attribution
        if not a.drift or u.vanished:
            continue
        current = (u.info.claimed_group or "", u.info.claimed_quota)
        change = hashlib.sha256(json.dumps([a.tag_group, a.tag_quota, *current]).encode()).hexdigest()[:12]
        context = {"course": ctx.settings.course_label, "cluster_name": u.info.name, "cluster_id": u.info.cluster_id,
                   "recorded_group": a.tag_group, "recorded_quota": a.tag_quota, "current_group": current[0],
                   "current_quota": current[1], "group": u.group, "exempt": u.exempt,
                   "tz_name": ctx.settings.quota.tz_name, "contact": ctx.settings.mail.admin_email or "the lab admin"}
        enqueue(kind="tag_drift", key=dedupe_key("tag_drift", u.info.cluster_id, change),
                to=[ctx.settings.mail.admin_email or ""],
                rendered=render("tag_drift", context, templates_dir=ctx.settings.mail.templates_dir), now=now)


def accept_tags(ctx: JobContext, cluster: TrackedCluster, *, dry_run: bool = False) -> list[str]:
    """Make a lab cluster's tags as they are now the recorded ones: its `group` tag (when it has
    one) becomes its group, its `quota` tag its exemption. Returns what changes, as lines."""
    if cluster.kind != LAB:
        raise AdminError(f"{cluster.name} is a student's cluster (created by {cluster.creator or 'someone unknown'}): "
                         "its tags are never believed, so there is nothing to accept. It counts to its creator's "
                         "course group; exempt it with --set_quota exempt --cluster " + cluster.cluster_id)
    info = ctx.workspace.get_cluster(cluster.cluster_id)
    group, source = (info.claimed_group, "tag") if info.claimed_group else (cluster.group_name, cluster.group_source)
    exempt = info.claims_exempt or cluster.cluster_id in ledger.exemptions()
    lines = [f"group: {cluster.group_name or '(none)'} -> {group or '(none)'}",
             f"exempt: {'yes' if cluster.exempt else 'no'} -> {'yes' if exempt else 'no'}",
             f"recorded tags: group={cluster.tag_group or '(none)'} quota={cluster.tag_quota or '(none)'} -> "
             f"group={info.claimed_group or '(none)'} quota={info.claimed_quota or '(none)'}"]
    if not dry_run:
        with ledger.transaction():
            ledger.accept_tags(cluster.cluster_id, group, source, info.claimed_group or "", info.claimed_quota, exempt)
        logger.info("cluster=%s name=%s: tags accepted by the admin (%s)", cluster.cluster_id, cluster.name,
                    "; ".join(lines))
    return lines
