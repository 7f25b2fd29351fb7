"""End-of-semester teardown: delete users, groups or clusters, never the admins.

Each goes on past individual failures and ends with a summary. Confirmation (typing the
workspace host, or --yes) is the caller's job; see cli_provisioning.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Iterable

logger = logging.getLogger(__name__)
SYSTEM_GROUPS = {"admins", "users", "account users"}


@dataclass
class Summary:
    what: str
    dry_run: bool = False
    done: list[str] = field(default_factory=list)
    kept: list[tuple[str, str]] = field(default_factory=list)      # (name, why)
    failed: list[tuple[str, str]] = field(default_factory=list)    # (name, error)

    def lines(self) -> list[str]:
        verb = "would be deleted" if self.dry_run else "deleted"
        out = [f"{self.what}: {len(self.done)} {verb}, {len(self.kept)} kept, {len(self.failed)} failed"]
        if self.dry_run:
            out += [f"  would delete {name}" for name in self.done]
        out += [f"  kept   {name}: {why}" for name, why in self.kept]
        out += [f"  FAILED {name}: {err}" for name, err in self.failed]
        return out


def run_deletes(summary: Summary, items: Iterable[tuple[str, Callable[[], None]]], progress=None) -> Summary:
    items = list(items)
    for name, delete in (progress(items) if progress else items):
        try:
            delete()
            summary.done.append(name)
            logger.info("%s: %s %s", summary.what, "would delete" if summary.dry_run else "deleted", name)
        except Exception as err:  # noqa: BLE001 - one failure must not stop the rest
            summary.failed.append((name, f"{type(err).__name__}: {err}"))
            logger.error("%s: could not delete %s: %s", summary.what, name, err)
    return summary


def delete_all_users(gateway, *, keep: dict[str, str], dry_run: bool = False, progress=None) -> Summary:
    """Every user but those in `keep` (trust.keepers: the admins, LAB_MANAGERS, ADMIN_EMAIL, the caller)."""
    return delete_users(gateway, gateway.users(), "users", keep=keep, dry_run=dry_run, progress=progress)


def delete_course_users(gateway, *, course: str, keep: dict[str, str], dry_run: bool = False,
                        progress=None) -> Summary:
    """The course's students: members of <course>-students, never one in `keep`. Other courses'
    students in the same workspace stay."""
    group = gateway.group(f"{course}-students")
    return delete_users(gateway, group.members if group else [], "students", keep=keep, dry_run=dry_run,
                        progress=progress)


def delete_users(gateway, people, what: str, *, keep: dict[str, str], dry_run: bool, progress) -> Summary:
    summary = Summary(what, dry_run)
    todo = []
    for p in sorted(people, key=lambda p: p.user_name):
        why = keep.get(p.user_name.lower())
        if why:
            summary.kept.append((p.user_name, why))
        else:
            todo.append((p.user_name, (lambda uid=p.user_id: None) if dry_run else
                         (lambda uid=p.user_id: gateway.delete_user(uid))))
    return run_deletes(summary, todo, progress)


def lab_clusters_of(clusters, course: str, principals) -> list:
    """The course's lab clusters: created by a lab principal and tagged course=<course>. A tag on a
    student's cluster names no course here."""
    return [c for c in clusters if principals.trusts(c.creator) and c.custom_tags.get("course") == course]


def course_groups(gateway, *, course: str, principals, roster_groups: Iterable[str] = ()) -> set[str]:
    """The course's groups: those in the roster, those the course's lab clusters name (their
    `group` tag), and <course>-students. A student's cluster never widens this."""
    tagged = {c.claimed_group for c in lab_clusters_of(gateway.list_clusters(), course, principals) if c.claimed_group}
    return set(roster_groups) | tagged | {f"{course}-students"}


def delete_all_groups(gateway, *, principals, course: str | None = None, roster_groups: Iterable[str] = (),
                      dry_run: bool = False, progress=None) -> Summary:
    """Delete the course's groups (course=None: every group but the system ones, after the
    caller's confirmation). Groups synced from Entra ID are kept: delete them there. A group
    holding the workspace ADMIN assignment is kept too (its members administer the workspace)."""
    mine = course_groups(gateway, course=course, principals=principals, roster_groups=roster_groups) \
        if course else None
    admin_groups = {name for kind, name, _ in gateway.admin_assignments() if kind == "group_name"}
    summary = Summary("groups", dry_run)
    todo = []
    for g in sorted(gateway.groups(), key=lambda g: g.name):
        if g.name.lower() in SYSTEM_GROUPS:
            summary.kept.append((g.name, "system group"))
        elif mine is not None and g.name not in mine:
            summary.kept.append((g.name, f"not a group of course {course} (--all deletes it)"))
        elif g.name in admin_groups:
            summary.kept.append((g.name, "holds the workspace ADMIN assignment"))
        elif g.external_id:
            summary.kept.append((g.name, "synced from Entra ID: remove it there"))
        else:
            todo.append((g.name, (lambda: None) if dry_run else (lambda gid=g.group_id: gateway.delete_group(gid))))
    return run_deletes(summary, todo, progress)


def course_clusters(gateway, course: str, principals) -> tuple[list, list]:
    """(the course's clusters, the others): its lab clusters, and the clusters its students made
    (members of <course>-students); never a cluster by its tag alone."""
    clusters = gateway.list_clusters()
    students_group = gateway.group(f"{course}-students")
    students = {p.user_name.lower() for p in students_group.members} if students_group else set()
    lab = {c.cluster_id for c in lab_clusters_of(clusters, course, principals)}
    mine = [c for c in clusters if c.cluster_id in lab or (not principals.trusts(c.creator)
                                                          and (c.creator or "").lower() in students)]
    ids = {c.cluster_id for c in mine}
    return mine, [c for c in clusters if c.cluster_id not in ids]


def purge_clusters(gateway, *, principals=None, course: str | None = None, dry_run: bool = False,
                   progress=None) -> Summary:
    summary = Summary("clusters", dry_run)
    todo = []
    if course:
        mine, others = course_clusters(gateway, course, principals)
        summary.kept += [(c.name, f"not a cluster of course {course} (a lab cluster tagged course={course}, or "
                                  f"one a member of {course}-students made)") for c in sorted(others, key=lambda c: c.name)]
    else:
        mine = gateway.list_clusters()
    for c in sorted(mine, key=lambda c: c.name):
        todo.append((c.name, (lambda: None) if dry_run else (lambda cid=c.cluster_id: gateway.permanent_delete(cid))))
    return run_deletes(summary, todo, progress)
