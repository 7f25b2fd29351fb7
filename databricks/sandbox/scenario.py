"""Seed an emulated workspace from a scenario: users, groups, clusters and student sessions.

A scenario is plain data (a dict, or a JSON file), so tests, the demo and a person trying the
tool by hand all describe a course the same way:

    {"users":    [{"email": "a@uni.edu", "first_name": "A", "last_name": "B"}],
     "groups":   [{"name": "group_01", "members": ["a@uni.edu"]}],
     "clusters": [{"name": "cluster_01", "group": "group_01", "tag_group": true}],
     "sessions": [{"cluster": "cluster_01", "start": "2026-03-02T08:00:00+02:00",
                   "end": "2026-03-02T10:30:00+02:00"}]}
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

from .workspace import Workspace


def load_scenario(ws: Workspace, scenario: dict | str | Path) -> dict[str, str]:
    """Seed `ws`; returns cluster name -> cluster id."""
    if not isinstance(scenario, dict):
        scenario = json.loads(Path(scenario).read_text(encoding="utf-8"))
    for user in scenario.get("users", []):
        ws.add_user(user["email"], display_name=user.get("display_name"),
                    given_name=user.get("first_name", ""), family_name=user.get("last_name", ""),
                    admin=user.get("admin", False))
    for group in scenario.get("groups", []):
        ws.add_group(group["name"], group.get("members", []))
    ids: dict[str, str] = {}
    for cluster in scenario.get("clusters", []):
        tags = dict(cluster.get("tags", {}))
        group = cluster.get("group")
        if group and cluster.get("tag_group", True):
            tags.setdefault("group", group)
        acl = list(cluster.get("acl", []))
        if group and cluster.get("grant_group", True):
            acl.append({"group_name": group, "permission_level": "CAN_RESTART"})
        ids[cluster["name"]] = ws.add_cluster(cluster["name"], tags=tags, acl=acl,
                                              cluster_id=cluster.get("cluster_id"),
                                              spec=cluster.get("spec"))
    for session in scenario.get("sessions", []):
        end = session.get("end")
        ws.session(ids[session["cluster"]], _when(session["start"]), _when(end) if end else None)
    return ids


def _when(value: str | datetime) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def sample_course(n_groups: int = 10, size: int = 3, *, course: str = "bigdata",
                  domain: str = "students.example.edu") -> dict:
    """A course of `n_groups` groups of `size` students, each group with its own cluster."""
    users, groups, clusters = [], [], []
    for g in range(1, n_groups + 1):
        members = []
        for s in range(1, size + 1):
            email = f"student{g:02d}{s}@{domain}"
            users.append({"email": email, "first_name": f"Student{g:02d}{s}", "last_name": "Demo"})
            members.append(email)
        groups.append({"name": f"group_{g:02d}", "members": members})
        clusters.append({"name": f"cluster_{g:02d}", "group": f"group_{g:02d}",
                         "tags": {"course": course}})
    return {"users": users, "groups": groups, "clusters": clusters, "sessions": []}


def day_at(day_start: datetime, hours: float) -> datetime:
    return day_start + timedelta(hours=hours)
