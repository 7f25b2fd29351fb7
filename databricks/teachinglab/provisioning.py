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

from .roster import Roster

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClusterSettings:
    course: str = "course"
    spark_version: str = "15.4.x-scala2.12"
    node_type_id: str = "Standard_DS3_v2"
    driver_node_type_id: str | None = None
    min_workers: int = 1
    max_workers: int = 2
    autotermination_minutes: int = 30
    pypi: tuple[str, ...] = ()
    maven: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env) -> "ClusterSettings":
        def listed(name: str) -> tuple[str, ...]:
            return tuple(x.strip() for x in (env.get(name) or "").split(",") if x.strip())
        d = cls()
        return cls(course=env.get("COURSE_NAME") or d.course,
                   spark_version=env.get("CLUSTER_SPARK_VERSION") or d.spark_version,
                   node_type_id=env.get("CLUSTER_NODE_TYPE") or d.node_type_id,
                   driver_node_type_id=env.get("CLUSTER_DRIVER_NODE_TYPE") or None,
                   min_workers=int(env.get("CLUSTER_MIN_WORKERS") or d.min_workers),
                   max_workers=int(env.get("CLUSTER_MAX_WORKERS") or d.max_workers),
                   autotermination_minutes=int(env.get("CLUSTER_AUTOTERMINATION_MINUTES") or d.autotermination_minutes),
                   pypi=listed("CLUSTER_PYPI_PACKAGES"), maven=listed("CLUSTER_MAVEN_PACKAGES"))

    @property
    def students_group(self) -> str:
        return f"{self.course}-students"

    def cluster_name(self, group_key: str) -> str:
        return f"{self.course}-{group_key}"

    def spec(self, group_key: str, group_name: str) -> dict:
        return {"cluster_name": self.cluster_name(group_key), "spark_version": self.spark_version,
                "node_type_id": self.node_type_id, "driver_node_type_id": self.driver_node_type_id,
                "autotermination_minutes": self.autotermination_minutes,
                "autoscale": (self.min_workers, self.max_workers),
                "custom_tags": {"group": group_name, "course": self.course}}


class NotCreated(Exception):
    """A step that depends on an object an earlier step failed to create."""


@dataclass(frozen=True)
class Change:
    action: str   # create_user | create_group | add_members | create_cluster | grant | remove_members | delete_user | delete_group | delete_cluster
    target: str
    detail: str = ""
    run: Callable[[], None] | None = field(default=None, compare=False, repr=False)

    def __str__(self) -> str:
        return f"{self.action:<15} {self.target}" + (f"  ({self.detail})" if self.detail else "")


@dataclass
class Plan:
    changes: list[Change]
    drift: list[str]


def plan(gateway, roster: Roster, cs: ClusterSettings, *, prune: bool = False, protected: set[str] = frozenset()) -> Plan:
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
    for name, emails in sorted(wanted_groups.items()):
        existing = groups.get(name)
        if existing is None:
            def create_group(name=name):
                group_ids[name] = gateway.create_group(name).group_id
            changes.append(Change("create_group", name, run=create_group))
        have = {p.user_name.lower() for p in (existing.members if existing else ())}
        missing = sorted(set(emails) - have)
        if missing:
            def add(name=name, missing=missing):
                if name not in group_ids:
                    raise NotCreated(f"group {name!r} was not created (see above)")
                known = [ids[e] for e in missing if e in ids]
                if known:
                    gateway.change_members(group_ids[name], add=known)
                lost = [e for e in missing if e not in ids]
                if lost:
                    raise NotCreated(f"{len(lost)} member(s) not added, their user was not created (see above): "
                                     + ", ".join(lost))
            changes.append(Change("add_members", name, f"{len(missing)}: {', '.join(missing[:3])}"
                                  + ("…" if len(missing) > 3 else ""), run=add))
        extra = sorted(have - set(emails))
        if extra and existing is not None:
            if prune:
                def remove(gid=existing.group_id, extra=extra):
                    gateway.change_members(gid, remove=[users[e].user_id for e in extra])
                changes.append(Change("remove_members", name, ", ".join(extra), run=remove))
            else:
                drift.append(f"group {name!r} has members not in the roster: {', '.join(extra)} (--prune removes them)")

    for g in sorted(roster.groups, key=lambda g: g.key):
        spec = cs.spec(g.key, g.name)
        existing = clusters.get(spec["cluster_name"])
        if existing is None:
            def create_cluster(spec=spec, group=g.name):
                cid = gateway.create_cluster(spec)
                gateway.terminate(cid)  # libraries install at the first start; nobody pays until then
                gateway.pin(cid)
                gateway.grant(cid, [("group_name", group, "CAN_RESTART")])
                gateway.install_libraries(cid, list(cs.pypi), list(cs.maven))
            changes.append(Change("create_cluster", spec["cluster_name"], f"group {g.name}", run=create_cluster))
            continue
        acl = {(e.principal_type, e.principal): e.level for e in gateway.acl(existing.cluster_id) if not e.inherited}
        if acl.get(("group_name", g.name)) not in ("CAN_RESTART", "CAN_MANAGE", "CAN_ATTACH_TO"):
            def grant(cid=existing.cluster_id, group=g.name):
                gateway.grant(cid, [("group_name", group, "CAN_RESTART")])
            changes.append(Change("grant", spec["cluster_name"], f"CAN_RESTART to {g.name}", run=grant))
        have = gateway.cluster_spec(existing.cluster_id)
        for key in ("spark_version", "node_type_id", "autotermination_minutes", "autoscale"):
            if have.get(key) != spec[key]:
                drift.append(f"cluster {spec['cluster_name']}: {key} is {have.get(key)!r}, roster wants {spec[key]!r}")
        for tag, value in spec["custom_tags"].items():
            if have["custom_tags"].get(tag) != value:
                drift.append(f"cluster {spec['cluster_name']}: tag {tag}={have['custom_tags'].get(tag)!r}, "
                             f"roster wants {value!r}")

    if prune:
        course_clusters = [c for c in clusters.values() if c.custom_tags.get("course") == cs.course]
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
            if p.user_name.lower() not in wanted_users and p.user_name.lower() not in protected:
                changes.append(Change("delete_user", p.user_name, run=lambda uid=p.user_id: gateway.delete_user(uid)))
    return Plan(changes, drift)


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
