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


def _run(summary: Summary, items: Iterable[tuple[str, Callable[[], None]]], progress=None) -> Summary:
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


def workspace_admins(gateway) -> set[str]:
    """User names (lower case) of everyone who administers the workspace: members of `admins`,
    also through nested groups, and principals holding the workspace ADMIN permission assignment
    (a user, or every member of a group that holds it)."""
    groups = {g.group_id: g for g in gateway.groups()}
    by_name = {g.name: g for g in groups.values()}
    assigned = gateway.workspace_admin_ids() or set()
    roots = [g.group_id for g in groups.values() if g.name == "admins" or g.group_id in assigned]
    names: set[str] = set()
    seen: set[str] = set()
    while roots:
        gid = roots.pop()
        if gid in seen or gid not in groups:
            continue
        seen.add(gid)
        names |= {p.user_name.lower() for p in groups[gid].members}
        roots.extend(groups[gid].subgroups)
    if assigned:
        names |= {p.user_name.lower() for p in gateway.users() if p.user_id in assigned}
    if "admins" not in by_name:
        logger.warning("no `admins` group is visible: only ADMIN assignments, ADMIN_EMAIL and the caller are kept")
    return names


def delete_all_users(gateway, *, protect: Iterable[str], dry_run: bool = False, progress=None) -> Summary:
    protect = {p.lower() for p in protect if p}
    admin_names = workspace_admins(gateway)
    summary = Summary("users", dry_run)
    todo = []
    for p in sorted(gateway.users(), key=lambda p: p.user_name):
        name = p.user_name.lower()
        if name in admin_names:
            summary.kept.append((p.user_name, "workspace admin"))
        elif name in protect:
            summary.kept.append((p.user_name, "ADMIN_EMAIL or the user running this"))
        else:
            todo.append((p.user_name, (lambda uid=p.user_id: None) if dry_run else
                         (lambda uid=p.user_id: gateway.delete_user(uid))))
    return _run(summary, todo, progress)


def course_groups(gateway, *, course: str, roster_groups: Iterable[str] = ()) -> set[str]:
    """The course's groups: those in the roster, those named by the `group` tag of a cluster
    tagged course=<course>, and <course>-students."""
    tagged = {c.custom_tags.get("group") for c in gateway.list_clusters()
              if c.custom_tags.get("course") == course and c.custom_tags.get("group")}
    return set(roster_groups) | tagged | {f"{course}-students"}


def delete_all_groups(gateway, *, course: str | None = None, roster_groups: Iterable[str] = (),
                      dry_run: bool = False, progress=None) -> Summary:
    """Delete the course's groups (course=None: every group but the system ones, after the
    caller's confirmation). Groups synced from Entra ID are kept: delete them there."""
    mine = course_groups(gateway, course=course, roster_groups=roster_groups) if course else None
    summary = Summary("groups", dry_run)
    todo = []
    for g in sorted(gateway.groups(), key=lambda g: g.name):
        if g.name.lower() in SYSTEM_GROUPS:
            summary.kept.append((g.name, "system group"))
        elif mine is not None and g.name not in mine:
            summary.kept.append((g.name, f"not a group of course {course} (--all deletes it)"))
        elif g.external_id:
            summary.kept.append((g.name, "synced from Entra ID: remove it there"))
        else:
            todo.append((g.name, (lambda: None) if dry_run else (lambda gid=g.group_id: gateway.delete_group(gid))))
    return _run(summary, todo, progress)


def purge_clusters(gateway, *, course: str | None = None, dry_run: bool = False, progress=None) -> Summary:
    summary = Summary("clusters", dry_run)
    todo = []
    for c in sorted(gateway.list_clusters(), key=lambda c: c.name):
        if course and c.custom_tags.get("course") != course:
            summary.kept.append((c.name, f"not tagged course={course}"))
        else:
            todo.append((c.name, (lambda: None) if dry_run else (lambda cid=c.cluster_id: gateway.permanent_delete(cid))))
    return _run(summary, todo, progress)
