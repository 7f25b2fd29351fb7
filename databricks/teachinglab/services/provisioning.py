"""The SDK path of provisioning: make the workspace match a roster (users.csv), idempotently.

plan() compares the roster with the workspace and lists the changes (and drift it will not
touch); apply() makes them, one at a time, going on past failures. A second run plans nothing.
Nothing is deleted unless prune=True. Names, tags and settings are the Terraform module's:

    group          display name = the Moodle group name; all students also in "<course>-students"
    cluster        "<course>-<group_key>", tags group=<group name>, course=<course>, pinned,
                   autoscale, autotermination; the group CAN_RESTART (admins inherit CAN_MANAGE,
                   and the API refuses an admins entry)
    libraries      PyPI and Maven lists, installed when the cluster first runs

New clusters are terminated right after creation: libraries install at the first start.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

from databricks.teachinglab.core.roster import Roster
from databricks.teachinglab.core.settings import MAX_PINNED, ClusterSettings
from databricks.teachinglab.core.trust import LabPrincipals

logger = logging.getLogger(__name__)


class NotCreated(Exception):
    """A step that depends on an object an earlier step failed to create."""


@dataclass(frozen=True)
class Change:
    action: str   # create_user | create_group | add_members | create_cluster | grant | group_folder |
    #               install_libraries | remove_members | delete_user | delete_group | delete_cluster
    target: str
    detail: str = ""
    run: Callable[[], None] | None = field(default=None, compare=False, repr=False)

    def __str__(self) -> str:
        return f"{self.action:<15} {self.target}" + (f"  ({self.detail})" if self.detail else "")


@dataclass
class Plan:
    changes: list[Change]
    drift: list[str]


def plan(gateway, roster: Roster, cs: ClusterSettings, *, prune: bool = False, protected: dict[str, str] | None = None,
         principals: LabPrincipals | None = None, account=None) -> Plan:
    """`account`: an AccountDirectory when DATABRICKS_ACCOUNT_ID is set; groups are then account
    groups, assigned to the workspace, so they can be granted Unity Catalog privileges.
    `protected`: who --prune never deletes, lower case, with why (services.trust.keepers).
    `principals`: the lab principals; --prune deletes only clusters they created."""
    protected = protected or {}
    principals = principals or LabPrincipals.of(protected)
    users = {p.user_name.lower(): p for p in gateway.users()}
    groups = {g.name: g for g in gateway.groups()}
    clusters = {c.name: c for c in gateway.list_clusters()}
    changes: list[Change] = []
    drift: list[str] = []
    ids: dict[str, str] = {email: p.user_id for email, p in users.items()}
    group_ids: dict[str, str] = {name: g.group_id for name, g in groups.items()}

    wanted_users = {s.email: s for _, s in roster.memberships()}
    for email, s in sorted(wanted_users.items()):
        if email not in users:
            def create(email=email, s=s):
                ids[email] = gateway.create_user(email, f"{s.first_name} {s.last_name}".strip() or email).user_id
            changes.append(Change("create_user", email, run=create))

    wanted_groups = {g.name: [s.email for s in g.members] for g in roster.groups}
    wanted_groups[cs.students_group] = sorted(wanted_users)
    if account is not None:
        names = {p.user_id: email for email, p in users.items()}
        changes += _account_groups(gateway, account, wanted_groups, groups, ids, names, drift, prune)
        wanted_groups = {}  # handled above
    for name, emails in sorted(wanted_groups.items()):
        existing = groups.get(name)
        if existing is None:
            def create_group(name=name):
                group_ids[name] = gateway.create_group(name).group_id
            changes.append(Change("create_group", name, run=create_group))
        have = {p.user_name.lower() for p in (existing.members if existing else ())}
        changes += _members(name, emails, have, group_ids, ids, gateway.change_members, drift, prune)

    pin_budget = MAX_PINNED - gateway.pinned_count() if any(
        cs.cluster_name(g.key) not in clusters for g in roster.groups) else 0
    for g in sorted(roster.groups, key=lambda g: g.key):
        spec = cs.spec(g.key, g.name)
        if cs.access_mode == "dedicated":
            folder = cs.group_folder(g.name)
            managers = gateway.folder_managers(folder)
            if managers is None or g.name not in managers:
                changes.append(Change("group_folder", folder, f"CAN_MANAGE for {g.name}",
                                      run=lambda folder=folder, group=g.name: gateway.group_folder(folder, group)))
        existing = clusters.get(spec["cluster_name"])
        if existing is None:
            pin = pin_budget > 0
            pin_budget -= 1
            if not pin:
                drift.append(f"cluster {spec['cluster_name']} will not be pinned: the workspace has {MAX_PINNED} "
                             "pinned clusters, the most it allows (unpin old courses' clusters to make room)")

            def create_cluster(spec=spec, group=g.name, pin=pin):
                try:
                    cid = gateway.create_cluster(spec)
                except Exception as err:
                    if spec.get("single_user_name") != group:
                        raise
                    raise NotCreated(f"{type(err).__name__}: {err}; a cluster dedicated to a group needs the workspace "
                                     "setting \"Dedicated group clusters\" turned on by a workspace admin (its admin "
                                     "settings, under Compute), Unity Catalog and Databricks Runtime 15.4 or later; or "
                                     "set CLUSTER_ACCESS_MODE=standard") from err
                if pin:
                    try:
                        gateway.pin(cid)
                    except Exception as err:  # noqa: BLE001 - an unpinned cluster still works
                        logger.warning("cluster %s (%s) is not pinned: %s", spec["cluster_name"], cid, err)
                steps = [("stop it", lambda: gateway.terminate(cid)),  # libraries install at the first start
                         (f"give {group} CAN_RESTART", lambda: gateway.grant(cid, [("group_name", group, "CAN_RESTART")])),
                         ("queue its libraries", lambda: gateway.install_libraries(cid, list(cs.pypi), list(cs.maven)))]
                for what, step in steps:
                    try:
                        step()
                    except Exception as err:
                        raise NotCreated(f"cluster {spec['cluster_name']} ({cid}) was created, but could not {what}: "
                                         f"{type(err).__name__}: {err}; run --create_from_csv again to finish") from err
            changes.append(Change("create_cluster", spec["cluster_name"],
                                  f"group {g.name}" + ("" if pin else ", not pinned"), run=create_cluster))
            continue
        acl = {(e.principal_type, e.principal): e.level for e in gateway.acl(existing.cluster_id) if not e.inherited}
        if acl.get(("group_name", g.name)) not in ("CAN_RESTART", "CAN_MANAGE", "CAN_ATTACH_TO"):
            def grant(cid=existing.cluster_id, group=g.name):
                gateway.grant(cid, [("group_name", group, "CAN_RESTART")])
            changes.append(Change("grant", spec["cluster_name"], f"CAN_RESTART to {g.name}", run=grant))
        wanted_libs = [("pypi", x) for x in cs.pypi] + [("maven", x) for x in cs.maven]
        if wanted_libs:
            queued = gateway.libraries_on(existing.cluster_id)
            missing = [lib for lib in wanted_libs if lib not in queued]
            for lib in wanted_libs:
                status, message = queued.get(lib, ("", ""))
                if status == "FAILED":
                    drift.append(f"cluster {spec['cluster_name']}: library {lib[1]} failed to install: {message[:200]}")
            if missing:
                def install(cid=existing.cluster_id, missing=missing):
                    gateway.install_libraries(cid, [n for k, n in missing if k == "pypi"],
                                              [n for k, n in missing if k == "maven"])
                changes.append(Change("install_libraries", spec["cluster_name"],
                                      ", ".join(n for _, n in missing), run=install))
        have = gateway.cluster_spec(existing.cluster_id)
        for key in ("spark_version", "node_type_id", "autotermination_minutes", "autoscale",
                    "data_security_mode", "single_user_name"):
            if have.get(key) != spec.get(key):
                drift.append(f"cluster {spec['cluster_name']}: {key} is {have.get(key)!r}, roster wants {spec.get(key)!r}")
        for tag, value in spec["custom_tags"].items():
            if have["custom_tags"].get(tag) != value:
                drift.append(f"cluster {spec['cluster_name']}: tag {tag}={have['custom_tags'].get(tag)!r}, "
                             f"roster wants {value!r}")

    if prune:
        # Only lab clusters: a student's cluster tagged course=<course> is not the course's to delete.
        course_clusters = [c for c in clusters.values() if c.custom_tags.get("course") == cs.course
                           and principals.trusts(c.creator)]
        wanted_clusters = {cs.cluster_name(g.key) for g in roster.groups}
        for c in sorted(course_clusters, key=lambda c: c.name):
            if c.name not in wanted_clusters:
                changes.append(Change("delete_cluster", c.name, c.cluster_id,
                                      run=lambda cid=c.cluster_id: gateway.permanent_delete(cid)))
                group = c.custom_tags.get("group")
                if group in groups and group not in wanted_groups:
                    changes.append(Change("delete_group", group, run=lambda gid=groups[group].group_id:
                                          gateway.delete_group(gid)))
        students = groups.get(cs.students_group)
        for p in (students.members if students else ()):
            if p.user_name.lower() in wanted_users:
                continue
            if p.user_name.lower() in protected:
                drift.append(f"kept {p.user_name}: in {cs.students_group} but not in the roster, and not deleted: "
                             f"{protected[p.user_name.lower()]}")
                continue
            changes.append(Change("delete_user", p.user_name, run=lambda uid=p.user_id: gateway.delete_user(uid)))
    return Plan(changes, drift)


def _members(name: str, emails: list[str], have: set[str], group_ids: dict[str, str], ids: dict[str, str],
             change_members: Callable, drift: list[str], prune: bool) -> list[Change]:
    """Add the roster's members a group lacks; members it has beyond the roster are drift, or
    removed with --prune. The group and the users may be created by earlier changes of the plan:
    their ids are looked up when the change runs."""
    changes = []
    missing = sorted(set(emails) - have)
    if missing:
        def add():
            if name not in group_ids:
                raise NotCreated(f"group {name!r} was not created (see above)")
            known = [ids[e] for e in missing if e in ids]
            if known:
                change_members(group_ids[name], add=known)
            lost = [e for e in missing if e not in ids]
            if lost:
                raise NotCreated(f"{len(lost)} member(s) not added, their user was not created (see above): "
                                 + ", ".join(lost))
        changes.append(Change("add_members", name, f"{len(missing)}: {', '.join(missing[:3])}"
                              + ("…" if len(missing) > 3 else ""), run=add))
    extra = sorted(have - set(emails))
    if extra and prune:
        changes.append(Change("remove_members", name, ", ".join(extra), run=lambda: change_members(
            group_ids[name], remove=[ids[e] for e in extra if e in ids])))
    elif extra:
        drift.append(f"group {name!r} has members not in the roster: {', '.join(extra)} (--prune removes them)")
    return changes


def _account_groups(gateway, account, wanted: dict[str, list[str]], visible: dict, ids: dict[str, str],
                    names: dict[str, str], drift: list[str], prune: bool) -> list[Change]:
    """Account groups: reuse one of the same name (never shadow it), create the missing ones and
    assign them to the workspace; never change the members of a group synced from Entra ID."""
    changes: list[Change] = []
    workspace_id = gateway.workspace_id()
    assigned = account.assigned(workspace_id)
    group_ids: dict[str, str] = {}
    local_only = {name for name in wanted if visible.get(name) is not None and not visible[name].account}
    account_groups = account.groups(set(wanted) - local_only)  # one GET each for the members, in parallel
    for name, emails in sorted(wanted.items()):
        if name in local_only:
            drift.append(f"group {name!r} is workspace-local: it cannot be granted Unity Catalog privileges. "
                         "Delete it (or rename it) and run again to use an account group of that name")
            continue
        found = account_groups[name]
        have: set[str] = set()
        if found is None:
            def create(name=name):
                group_ids[name] = account.create_group(name)
                account.assign(workspace_id, group_ids[name])
            changes.append(Change("create_group", name, "account group, assigned to the workspace", run=create))
        else:
            gid, external_id, member_ids = found
            group_ids[name] = gid
            have = {names.get(m, m) for m in member_ids}
            if gid not in assigned:
                changes.append(Change("assign_group", name, f"account group {gid} to the workspace",
                                      run=lambda gid=gid: account.assign(workspace_id, gid)))
            if external_id:
                missing, extra = sorted(set(emails) - have), sorted(have - set(emails))
                if missing or extra:
                    drift.append(f"group {name!r} is synced from Entra ID, so its members are not changed here: "
                                 + "; ".join(x for x in (f"not in it: {', '.join(missing)}" if missing else "",
                                                         f"in it, not in the roster: {', '.join(extra)}" if extra else "")
                                             if x) + " (change it in Entra ID)")
                continue
        changes += _members(name, emails, have, group_ids, ids, account.change_members, drift, prune)
    return changes


@dataclass
class Outcome:
    done: list[Change] = field(default_factory=list)
    failed: list[tuple[Change, str]] = field(default_factory=list)


def apply(p: Plan, *, progress: Callable | None = None) -> Outcome:
    out = Outcome()
    steps = progress(p.changes) if progress else p.changes
    for change in steps:
        try:
            change.run()
            out.done.append(change)
            logger.info("provisioned: %s", change)
        except Exception as err:  # noqa: BLE001 - go on, and summarise at the end
            out.failed.append((change, f"{type(err).__name__}: {err}"))
            logger.error("failed: %s: %s", change, err)
    return out
