"""Every way a student can run compute that the quota does not control, as far as the APIs show.

    policy         a cluster policy that `users`, a course group or a student may use
                   (Personal Compute is open to all users in a new workspace)
    entitlement    `allow-cluster-create` on `users`, a course group or a student
    cluster_acl    CAN_RESTART or more on a lab cluster for `users` or a group other than its own
                   (permissions add up: a `users` grant defeats every block), and for a course
                   group or student on a cluster not their own
    student_cluster a cluster a student created (counted to their group, but it exists)
    spoofed_tag    a student's cluster whose tags or name claim a group, a course or an exemption
                   (never believed: core/trust.py; the attempt is worth knowing)
    serverless     CAN_USE on the serverless compute objects (SERVERLESS_INTERACTIVE_COMPUTE_ID,
                   SERVERLESS_AUTOMATED_COMPUTE_ID) for `users` or anyone outside the course and its
                   lab principals; without the ids, that they are not set (unless the admin turned
                   serverless off for the account and set SERVERLESS_NOTEBOOKS=off)

Read-only: nothing here changes the workspace. Each finding names the exact setting that closes it.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from datetime import datetime

from databricks.teachinglab.core.model import AclEntry, ClusterInfo, GroupInfo
from databricks.teachinglab.core.errors import Failed
from databricks.teachinglab.core.trust import LabPrincipals, claims, group_from_name
from databricks.teachinglab.services.context import JobContext
from databricks.teachinglab.services.trust import lab_principals

logger = logging.getLogger(__name__)
KINDS = ("policy", "entitlement", "cluster_acl", "student_cluster", "spoofed_tag", "serverless")
RUN_LEVELS = ("CAN_RESTART", "CAN_MANAGE")
SERVERLESS_PATH = ("Account console > Settings > Feature enablement > \"Serverless compute for workflows, "
                   "notebooks, and Lakeflow Declarative Pipelines\"")


@dataclass(frozen=True)
class Finding:
    kind: str
    principal: str        # a group's name or a user's user name, as the workspace shows it
    object: str
    fix: str
    detail: str = ""
    principal_type: str = "group_name"  # group_name | user_name | service_principal_name

    def as_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Course:
    """Who counts as the course: its groups (those with a cluster of their own, and
    `<course>-students`) and their members."""
    groups: frozenset[str]
    students: frozenset[str]  # user names, lower case
    home: dict                # cluster_id -> the group whose own cluster it is


def find_course(clusters: list[ClusterInfo], groups: list[GroupInfo], *, course: str,
                known_home: dict[str, str], principals: LabPrincipals) -> Course:
    """Course groups come from lab clusters only: a tag on a student's cluster widens nothing."""
    by_name = {g.name: g for g in groups}
    home = dict(known_home)
    for c in clusters:
        group = (c.claimed_group or group_from_name(c.name)) if principals.trusts(c.creator) else None
        if group and c.cluster_id not in home:
            home[c.cluster_id] = group
    names = {g for g in home.values() if g in by_name} | ({f"{course}-students"} & set(by_name))
    students = {p.user_name.lower() for g in names for p in by_name[g].members}
    return Course(frozenset(names), frozenset(students), home)


def _is_course(entry: AclEntry, course: Course, *, users_too: bool) -> bool:
    if entry.principal_type == "group_name":
        return entry.principal in course.groups or (users_too and entry.principal == "users")
    return entry.principal_type == "user_name" and entry.principal.lower() in course.students


def _who(entry: AclEntry) -> str:
    """How a fix names the principal: "group users", "student@uni.edu"."""
    return entry.principal if entry.principal_type != "group_name" else f"group {entry.principal}"


def policy_findings(ctx: JobContext, course: Course) -> list[Finding]:
    out = []
    for policy, acl in ctx.parallel(lambda p: ctx.workspace.policy_acl(p.policy_id), ctx.workspace.policies()):
        if isinstance(acl, Failed):
            logger.error("cluster policy %r (%s): permissions unreadable (%s: %s); not audited. Check that the "
                         "token belongs to a workspace admin", policy.name, policy.policy_id, acl.kind, acl)
            continue
        for entry in acl:
            if entry.inherited or not _is_course(entry, course, users_too=True):
                continue
            where = f"Compute > Policies > {policy.name} > Permissions: remove CAN_USE for {_who(entry)}"
            if policy.family == "personal-vm":
                fix = ("Account console > Settings > Feature enablement > Personal Compute: set \"Delegate\"; "
                       f"then in the workspace, {where}")
            else:
                fix = where
            out.append(Finding("policy", entry.principal, f"cluster policy \"{policy.name}\" ({policy.policy_id})", fix,
                               f"{_who(entry)} may create clusters from this policy, outside the quota",
                               entry.principal_type))
    return out


def entitlement_findings(groups: list[GroupInfo], people, course: Course) -> list[Finding]:
    out = []
    for g in groups:
        if "allow-cluster-create" in g.entitlements and (g.name == "users" or g.name in course.groups):
            out.append(Finding("entitlement", g.name, "allow-cluster-create",
                               f"Settings > Identity and access > Groups > {g.name} > Entitlements: clear "
                               "\"Unrestricted cluster creation\"",
                               "members may create clusters of any size, outside the quota", "group_name"))
    for p in people:
        if "allow-cluster-create" in p.entitlements and p.user_name.lower() in course.students:
            out.append(Finding("entitlement", p.user_name, "allow-cluster-create",
                               f"Settings > Identity and access > Users > {p.user_name} > Entitlements: clear "
                               "\"Unrestricted cluster creation\"",
                               "this student may create clusters of any size, outside the quota", "user_name"))
    return out


def cluster_findings(ctx: JobContext, clusters: list[ClusterInfo], course: Course,
                     principals: LabPrincipals) -> list[Finding]:
    out = []
    for c in clusters:
        if principals.trusts(c.creator):
            continue
        creator = c.creator or "(a deleted user)"
        who = "service_principal_name" if c.creator and "@" not in c.creator else "user_name"
        out.append(Finding("student_cluster", creator, f"cluster \"{c.name}\" ({c.cluster_id})",
                           f"Compute > {c.name} > Delete, if it is not needed; it is counted to its creator's "
                           "course group and stopped with it, and the policy and entitlement findings say how "
                           "to stop new ones",
                           f"created by {'a student' if creator.lower() in course.students else 'someone who is not a lab principal'}"
                           f" ({c.source or 'UI'}); state {c.state}", who))
        claimed = claims(c)
        if claimed:
            out.append(Finding("spoofed_tag", creator, f"cluster \"{c.name}\" ({c.cluster_id})",
                               f"Compute > {c.name} > Delete, or edit away its tags; nothing to undo in the quota: "
                               "it counts to its creator's course group whatever it claims",
                               "claims " + ", ".join(claimed) + ", on a cluster a lab principal did not create", who))
    interactive = [c for c in clusters if c.source in (None, "UI", "API")]
    for c, entries in ctx.parallel(lambda c: ctx.workspace.acl(c.cluster_id), interactive):
        if isinstance(entries, Failed):
            logger.warning("cluster=%s name=%s: permissions unreadable (%s); not audited", c.cluster_id, c.name,
                           entries.kind)
            continue
        own = course.home.get(c.cluster_id)
        lab = principals.trusts(c.creator)
        for e in entries:
            if e.inherited or e.level not in RUN_LEVELS:
                continue
            if e.principal_type == "group_name" and e.principal == own:
                continue
            if e.principal_type != "group_name" and c.creator and e.principal.lower() == c.creator.lower():
                continue  # the creator's own entry: a student's is reported as student_cluster
            if lab and e.principal_type == "group_name" and e.principal != "admins":
                why = ("every workspace user may start it: permissions add up, so this defeats every block"
                       if e.principal == "users" else f"{e.level} on a lab cluster that is "
                       + (f"group {own}'s" if own else "no course group's own"))
            elif _is_course(e, course, users_too=False):
                why = f"{e.level} on a cluster that is " + (f"group {own}'s" if own else "no course group's own")
            else:
                continue
            out.append(Finding("cluster_acl", e.principal, f"cluster \"{c.name}\" ({c.cluster_id})",
                               f"Compute > {c.name} > Permissions: lower {_who(e)} to CAN_ATTACH_TO"
                               + (" (or remove it)" if e.principal == "users" else ""), why, e.principal_type))
    return out


SERVERLESS_PERMISSIONS = "Settings > Compute > Serverless compute > {name} > Permissions"
SERVERLESS_NAMES = {"notebooks": "Default Interactive Compute", "jobs": "Default Automated Compute"}


def serverless_findings(ctx: JobContext, course: Course, principals: LabPrincipals) -> list[Finding]:
    """Who may use serverless compute outside the course's allowance. Budget (usage) policies
    only tag usage; they grant and cap nothing, so they are no fix."""
    ws = ctx.settings.workspace
    if not ws.serverless_objects:
        if ws.serverless_notebooks == "off":
            return []
        state = "on" if ws.serverless_notebooks == "on" else "not visible through any workspace API"
        return [Finding("serverless", "users", "serverless compute (notebooks and jobs)",
                        "set SERVERLESS_INTERACTIVE_COMPUTE_ID and SERVERLESS_AUTOMATED_COMPUTE_ID (copy them from "
                        "Settings > Compute > Serverless compute; README, 'Serverless') and run --create_from_csv: "
                        "CAN_USE then goes to the course groups only, and their use is metered and capped; or "
                        f"{SERVERLESS_PATH}: turn it off and set SERVERLESS_NOTEBOOKS=off",
                        "SERVERLESS_INTERACTIVE_COMPUTE_ID and SERVERLESS_AUTOMATED_COMPUTE_ID are not set, so who may "
                        f"use serverless compute cannot be checked; every workspace user may, by default; state: {state}")]
    out = []
    for (label, oid), acl in ctx.parallel(lambda o: ctx.workspace.serverless_acl(o[1]), ws.serverless_objects):
        name = SERVERLESS_NAMES[label]
        if isinstance(acl, Failed):
            logger.error("serverless compute %s (%s): permissions unreadable (%s: %s); not audited. Check the id and "
                         "that the token belongs to a workspace admin", name, oid, acl.kind, acl)
            continue
        for e in acl:
            if e.inherited or e.level not in ("CAN_USE", "CAN_MANAGE"):
                continue
            if e.principal_type == "group_name" and (e.principal in course.groups or e.principal == "admins"):
                continue
            if e.principal_type != "group_name" and principals.trusts(e.principal):
                continue
            if e.principal == "users" and e.principal_type == "group_name":
                why = "every workspace user may run serverless notebooks or jobs, outside every allowance"
            elif _is_course(e, course, users_too=False):
                why = "a student's own grant: it outlasts a block of the student's group"
            else:
                why = "outside the course: its use is billed to no course group (reported, never capped)"
            out.append(Finding("serverless", e.principal, f"serverless compute '{name}' ({oid})",
                               SERVERLESS_PERMISSIONS.format(name=name) + f": remove {e.level} for {_who(e)}"
                               + (" (--create_from_csv does it)" if e.principal == "users" else ""),
                               f"{e.level}: {why}", e.principal_type))
    return out


def audit_workspace(ctx: JobContext, now: datetime, *, known_home: dict[str, str]) -> list[Finding]:
    """`known_home`: cluster id -> group, for the lab clusters the ledger knows as a group's own."""
    gateway = ctx.workspace
    clusters = gateway.list_clusters(every_source=True)  # job clusters a student's job made, too
    groups = gateway.groups()
    principals = lab_principals(ctx, now, creators=[c.creator for c in clusters])
    course = find_course(clusters, groups, course=ctx.settings.cluster.course, known_home=known_home,
                         principals=principals)
    findings = (policy_findings(ctx, course) + entitlement_findings(groups, gateway.users(), course)
                + cluster_findings(ctx, clusters, course, principals)
                + serverless_findings(ctx, course, principals))
    return sorted(findings, key=lambda f: (KINDS.index(f.kind), f.object, f.principal))
