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
    done: list[str] = field(default_factory=list)
    kept: list[tuple[str, str]] = field(default_factory=list)      # (name, why)
    failed: list[tuple[str, str]] = field(default_factory=list)    # (name, error)

    def lines(self) -> list[str]:
        out = [f"{self.what}: {len(self.done)} deleted, {len(self.kept)} kept, {len(self.failed)} failed"]
        out += [f"  kept   {name}: {why}" for name, why in self.kept]
        out += [f"  FAILED {name}: {err}" for name, err in self.failed]
        return out


def _run(summary: Summary, items: Iterable[tuple[str, Callable[[], None]]], progress=None) -> Summary:
    items = list(items)
    for name, delete in (progress(items) if progress else items):
        try:
            delete()
            summary.done.append(name)
            logger.info("%s: deleted %s", summary.what, name)
        except Exception as err:  # noqa: BLE001 - one failure must not stop the rest
            summary.failed.append((name, f"{type(err).__name__}: {err}"))
            logger.error("%s: could not delete %s: %s", summary.what, name, err)
    return summary


def delete_all_users(gateway, *, protect: Iterable[str], dry_run: bool = False, progress=None) -> Summary:
    protect = {p.lower() for p in protect if p}
    admins = next((g for g in gateway.groups() if g.name == "admins"), None)
    admin_names = {p.user_name.lower() for p in (admins.members if admins else ())}
    summary = Summary("users")
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


def delete_all_groups(gateway, *, dry_run: bool = False, progress=None) -> Summary:
    summary = Summary("groups")
    todo = []
    for g in sorted(gateway.groups(), key=lambda g: g.name):
        if g.name.lower() in SYSTEM_GROUPS:
            summary.kept.append((g.name, "system group"))
        else:
            todo.append((g.name, (lambda: None) if dry_run else (lambda gid=g.group_id: gateway.delete_group(gid))))
    return _run(summary, todo, progress)


def purge_clusters(gateway, *, course: str | None = None, dry_run: bool = False, progress=None) -> Summary:
    summary = Summary("clusters")
    todo = []
    for c in sorted(gateway.list_clusters(), key=lambda c: c.name):
        if course and c.custom_tags.get("course") != course:
            summary.kept.append((c.name, f"not tagged course={course}"))
        else:
            todo.append((c.name, (lambda: None) if dry_run else (lambda cid=c.cluster_id: gateway.permanent_delete(cid))))
    return _run(summary, todo, progress)
