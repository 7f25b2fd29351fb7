"""Whose cluster is it, and what may it claim. Pure.

A cluster's creator sets its name, its custom tags and (as its owner, CAN_MANAGE) its ACL. So
they decide something only on a **lab cluster**: one created by a lab principal (the identity the
tool runs as, a workspace admin, or someone listed in LAB_MANAGERS). On a lab cluster the `group`
tag, the group holding CAN_RESTART and the `cluster_NN` name give its group, and `quota=exempt`
its exemption, as the ledger first recorded them: a tag changed afterwards is *drift*, shown to
the admin and accepted only with `--accept_tags`.

Every other cluster is a **student cluster**. Whatever its tags, name or ACL say, it belongs to
its creator's course group (a course group is one a lab cluster belongs to), and it is never
exempt through a tag: an admin exempts one cluster through the ledger (`--set_quota exempt`).
A student cluster whose creator is in no course group is held to the default quota on its own.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from databricks.teachinglab.core.model import ClusterInfo
from databricks.teachinglab.core.records import TrackedCluster

LAB, STUDENT = "lab", "student"
NAME_CONVENTION = re.compile(r"^cluster[_-]?(\d+)$", re.IGNORECASE)


def group_from_name(name: str) -> str | None:
    m = NAME_CONVENTION.match(name.strip())
    return f"group_{m.group(1)}" if m else None


@dataclass(frozen=True)
class LabPrincipals:
    """Lower-case user names and service principals' application ids of the lab principals.
    `complete` is False when the workspace admins could not be read this run: a creator outside
    the set may then be an admin, so nothing new is concluded about them."""
    names: frozenset[str]
    complete: bool = True

    @classmethod
    def of(cls, names: Iterable[str], complete: bool = True) -> "LabPrincipals":
        return cls(frozenset(n.strip().lower() for n in names if n and n.strip()), complete)

    def trusts(self, creator: str | None) -> bool:
        return bool(creator) and creator.strip().lower() in self.names


def kind_of(info: ClusterInfo, known: TrackedCluster | None, principals: LabPrincipals) -> str | None:
    """lab | student, or None when it cannot be told this run (the admins were unreadable and the
    ledger has not classified the cluster before)."""
    creator = info.creator or (known.creator if known else None)
    if principals.trusts(creator):
        return LAB
    if principals.complete:
        return STUDENT
    return known.kind if known is not None else None


@dataclass(frozen=True)
class Attribution:
    """Who a cluster counts to, and what the ledger records of its tags."""
    group: str | None
    source: str | None            # tag | acl | name | creator
    kind: str | None
    tag_group: str | None = None  # a lab cluster's recorded `group` tag ('' for none)
    tag_quota: str | None = None  # its recorded `quota` tag
    drift: bool = False           # its tags now differ from the recorded ones

    @property
    def tag_exempt(self) -> bool:
        return self.kind == LAB and self.tag_quota == "exempt"


def attribute(info: ClusterInfo, known: TrackedCluster | None, kind: str | None, *,
              acl_group: str | None = None, creator_group: str | None = None) -> Attribution:
    """`acl_group`: the group holding CAN_RESTART, when it was read this run (lab clusters only).
    `creator_group`: the creator's course group, when it was looked up (student clusters)."""
    if kind == STUDENT:
        remembered = known.group_name if (known is not None and known.kind == STUDENT
                                          and known.group_source == "creator") else None
        return Attribution(remembered or creator_group, "creator", STUDENT)
    if kind != LAB:  # not told this run: the ledger's group is kept, nothing new is believed
        return Attribution(known.group_name, known.group_source, None) if known else Attribution(None, None, None)
    tags = (info.claimed_group or "", info.claimed_quota)
    if known is None or known.kind != LAB or known.tag_group is None:
        group, source = _first_lab_group(info, known, acl_group)
        return Attribution(group, source, LAB, *tags)
    recorded = (known.tag_group, known.tag_quota or "")
    if known.group_name and known.group_source in ("tag", "acl", "name"):
        group, source = known.group_name, known.group_source
    elif acl_group:  # a lab cluster no rule mapped yet: its ACL is read again on the quarter hour
        group, source = acl_group, "acl"
    else:
        group, source = None, None
    return Attribution(group, source, LAB, *recorded, drift=tags != recorded)


def _first_lab_group(info: ClusterInfo, known: TrackedCluster | None,
                     acl_group: str | None) -> tuple[str | None, str | None]:
    """Tag first, then the group holding CAN_RESTART (remembered: once blocked, the group no
    longer holds it), then the cluster_NN -> group_NN convention."""
    if info.claimed_group:
        return info.claimed_group, "tag"
    if acl_group:
        return acl_group, "acl"
    if known is not None and known.group_source == "acl" and known.group_name:
        return known.group_name, "acl"
    by_name = group_from_name(info.name)
    return (by_name, "name") if by_name else (None, None)


def claims(info: ClusterInfo) -> list[str]:
    """What a cluster's tags and name claim: a group, a course, an exemption. Harmless on a
    student's cluster (none of it is believed) but worth an audit line: it is an attempt."""
    out = []
    if info.claimed_group:
        out.append(f"tag group={info.claimed_group}")
    if info.custom_tags.get("course"):
        out.append(f"tag course={info.custom_tags['course']}")
    if info.claimed_quota:
        out.append(f"tag quota={info.claimed_quota}")
    if group_from_name(info.name):
        out.append(f"name {info.name} (the cluster_NN rule of {group_from_name(info.name)})")
    return out
