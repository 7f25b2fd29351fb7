"""Serverless compute: its two access-controlled objects and the billing records its use leaves.

Access (serverless compute access control, GA 2026-08-03; the Permissions API path and levels as
verified against a live workspace in the Terraform provider's issue tracker): a workspace has
"Default Interactive Compute" (notebooks) and "Default Automated Compute" (jobs), each read and
changed as /permissions/serverless-compute/<id>, levels CAN_USE and CAN_MANAGE, CAN_USE granted to
`users` at first, admins holding CAN_MANAGE by inheritance. PUT replaces the direct entries,
PATCH adds to them. A user without CAN_USE (directly or through a group) is refused.

Billing (docs "Billable usage system table reference", "Monitor the cost of serverless
compute"): records per workload and UTC hour with `identity_metadata.run_as`,
`usage_metadata.notebook_id`, `product_features.is_serverless`, `record_type` ORIGINAL,
RETRACTION (the negative of a corrected record) or RESTATEMENT (the corrected one), and an
`ingestion_date`. Records "usually" arrive within hours: here each becomes visible `lag` after
its hour ends. Prices from system.billing.list_prices (`list_price`; None: no price row).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from .errors import ApiError
from .identity import Directory
from .permissions import parse_acl

LEVELS = ("CAN_USE", "CAN_MANAGE")
HOUR = timedelta(hours=1)
OBJECTS = {"interactive": ("Default Interactive Compute", "INTERACTIVE"),
           "automated": ("Default Automated Compute", "JOBS")}


@dataclass
class UsageRecord:
    record_id: str
    run_as: str
    start: datetime
    end: datetime
    dbu: float
    visible_at: datetime              # when the record appears in system.billing.usage
    record_type: str = "ORIGINAL"
    notebook_id: str | None = None
    product: str = "INTERACTIVE"

    def row(self, list_price: float | None) -> list[str | None]:
        return [self.record_id, self.run_as, str(int(self.start.timestamp())), str(int(self.end.timestamp())),
                repr(round(self.dbu, 6)), self.record_type, self.visible_at.date().isoformat(), self.notebook_id,
                self.product, None if list_price is None else repr(list_price)]


COLUMNS = [("record_id", "STRING"), ("run_as", "STRING"), ("start_s", "BIGINT"), ("end_s", "BIGINT"),
           ("dbus", "DOUBLE"), ("record_type", "STRING"), ("ingestion_date", "STRING"), ("notebook_id", "STRING"),
           ("product", "STRING"), ("usd_per_dbu", "DOUBLE")]


@dataclass
class Serverless:
    directory: Directory
    ids: dict[str, str] = field(default_factory=lambda: {"interactive": "5012345678901234",
                                                         "automated": "5098765432109876"})
    acls: dict[str, dict[tuple[str, str], str]] = field(default_factory=dict)
    records: list[UsageRecord] = field(default_factory=list)
    lag: timedelta = timedelta(hours=3)
    list_price: float | None = 0.95
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self):
        for oid in self.ids.values():
            self.acls.setdefault(oid, {("group_name", "users"): "CAN_USE"})

    # -- permissions ------------------------------------------------------------------------
    def _object(self, object_id: str) -> dict[tuple[str, str], str]:
        if object_id not in self.acls:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Serverless compute {object_id} does not exist.")
        return self.acls[object_id]

    def get(self, object_id: str) -> dict:
        acl = [{key: name, "all_permissions": [{"permission_level": level, "inherited": False}]}
               for (key, name), level in sorted(self._object(object_id).items())]
        acl.append({"group_name": "admins", "all_permissions": [
            {"permission_level": "CAN_MANAGE", "inherited": True, "inherited_from_object": ["/serverless-compute/"]}]})
        return {"object_id": f"/serverless-compute/{object_id}", "object_type": "serverless-compute",
                "access_control_list": acl}

    def _parse(self, body: dict) -> dict[tuple[str, str], str]:
        return parse_acl(body, self.directory, LEVELS, "serverless compute")

    def put(self, object_id: str, body: dict) -> dict:
        self._object(object_id)
        self.acls[object_id] = self._parse(body)
        return self.get(object_id)

    def patch(self, object_id: str, body: dict) -> dict:
        self._object(object_id).update(self._parse(body))
        return self.get(object_id)

    def may_use(self, object_id: str, user_name: str) -> bool:
        if self.directory.is_admin(user_name):
            return True
        for (key, name), level in self._object(object_id).items():
            if key == "group_name" and (name == "users" or self.directory.in_group(user_name, name)):
                return True
            if key != "group_name" and name.lower() == user_name.lower():
                return True
        return False

    # -- use and its bill -------------------------------------------------------------------
    def use(self, user_name: str, start: datetime, end: datetime, dbu_per_hour: float, *, kind: str = "interactive",
            notebook_id: str | None = None) -> list[str]:
        """A student's serverless notebook (or job) running from `start` to `end`: refused with
        PERMISSION_DENIED without CAN_USE; billed per UTC hour, each record visible `lag` after its
        hour ends. Returns the record ids."""
        object_id = self.ids[kind]
        if not self.may_use(object_id, user_name):
            raise ApiError(403, "PERMISSION_DENIED",
                           f"User {user_name} does not have permission to use {OBJECTS[kind][0]}.")
        made = []
        a = start.astimezone(timezone.utc)
        end = end.astimezone(timezone.utc)
        while a < end:
            hour = a.replace(minute=0, second=0, microsecond=0)
            b = min(end, hour + HOUR)
            record = UsageRecord(f"sl-{next(self._ids):06d}", user_name, hour, hour + HOUR,
                                 dbu_per_hour * (b - a).total_seconds() / 3600, hour + HOUR + self.lag,
                                 notebook_id=notebook_id, product=OBJECTS[kind][1])
            self.records.append(record)
            made.append(record.record_id)
            a = b
        return made

    def restate(self, record_id: str, dbu: float, now: datetime) -> tuple[str, str]:
        """A correction: a RETRACTION (the original, negated) and a RESTATEMENT (the new figure),
        both visible `lag` from now."""
        original = next(r for r in self.records if r.record_id == record_id)
        visible = now + self.lag
        retraction = UsageRecord(f"sl-{next(self._ids):06d}", original.run_as, original.start, original.end,
                                 -original.dbu, visible, "RETRACTION", original.notebook_id, original.product)
        restatement = UsageRecord(f"sl-{next(self._ids):06d}", original.run_as, original.start, original.end, dbu,
                                  visible, "RESTATEMENT", original.notebook_id, original.product)
        self.records += [retraction, restatement]
        return retraction.record_id, restatement.record_id

    def billed(self, now: datetime, *, user_names: set[str] | None = None) -> float:
        """The DBUs the bill will show in the end (every record, visible or not)."""
        return sum(r.dbu for r in self.records if user_names is None or r.run_as in user_names)

    def rows(self, params: dict, now: datetime) -> list[list[str | None]]:
        """The serverless statement's answer: records visible by `now` ingested on or after `since`."""
        since = params.get("since") or "0001-01-01"
        return [r.row(self.list_price) for r in self.records
                if r.visible_at <= now and r.visible_at.date().isoformat() >= since]
