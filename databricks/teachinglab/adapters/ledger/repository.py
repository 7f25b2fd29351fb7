"""The ledger's named operations: the only module outside the models that runs Peewee queries.

Services call these and get plain records back (core/records.py). Rules that belong to the
data live here once, e.g. "a flag is set only after its action succeeded" is the caller's
order of calls, and "the first warning and first stop of a day survive a grant" is
`reset_after_restore`. Writers expect the caller's `transaction()` where several go together.
"""
from __future__ import annotations

import contextlib
import logging
from datetime import date, datetime, timedelta
from typing import Iterable, Iterator

from peewee import fn

from databricks.teachinglab.adapters.ledger.models import (
    Cluster, ClusterDay, ClusterExemption, ClosedDay, JobRun, LabFact, LabSecret, MailRequest, OutboxAttachment, OutboxMessage, QuotaGrant, QuotaOverride,
    ServerlessBlock, ServerlessUsage, UsageHistory, UsageSession, db_proxy)
from databricks.teachinglab.core.records import (
    ClosedDayRecord, DayRecord, DayUsage, ExemptionRecord, GrantRecord, HistoryRecord, MessageRecord, RunRecord, SessionRecord,
    ServerlessBlockRecord, ServerlessDay, TrackedCluster, record_of)

logger = logging.getLogger(__name__)


# Checks run before every write transaction: the PostgreSQL run lock's (lock.advisory_lock) that
# its session still holds the lock.
before_write: list = []


@contextlib.contextmanager
def transaction() -> Iterator[None]:
    """Everything inside commits together, or not at all."""
    for check in list(before_write):
        check()
    with db_proxy.atomic():
        yield


# -- clusters and trackers ----------------------------------------------------------------------
def load_clusters() -> dict[str, TrackedCluster]:
    return {row.cluster_id: record_of(TrackedCluster, row) for row in Cluster.select().order_by(Cluster.name)}


def find_clusters(name_or_id: str) -> list[TrackedCluster]:
    """The cluster with this id, else every cluster with this name."""
    found = Cluster.get_or_none(Cluster.cluster_id == name_or_id)
    rows = [found] if found else list(Cluster.select().where(Cluster.name == name_or_id))
    return [record_of(TrackedCluster, r) for r in rows]


def cluster_ids_of_group(group: str) -> list[str]:
    return [c.cluster_id for c in Cluster.select(Cluster.cluster_id).where(Cluster.group_name == group)]


def home_clusters() -> dict[str, str]:
    """cluster id -> group, for the lab clusters that are a group's own (not a student's)."""
    return {c.cluster_id: c.group_name for c in Cluster.select().where(
        Cluster.group_name.is_null(False) & (Cluster.group_source != "creator")
        & (Cluster.kind.is_null() | (Cluster.kind != "student")))}


def first_seen() -> datetime | None:
    row = Cluster.select(Cluster.first_seen).order_by(Cluster.first_seen).first()
    return row.first_seen if row else None


def save_usage(usages: Iterable, now: datetime) -> None:
    """Trackers and booked usage of measured clusters (core.usage.ClusterUsage); the caller holds
    the transaction. Usage that surfaced after its day was archived corrects the archive.
    Idempotent at the same `now`: pieces are only those after each cluster's watermark."""
    closed_days = {row.day for row in ClosedDay.select(ClosedDay.day)}
    for u in usages:
        info, t, a = u.info, u.tracker, u.attribution
        known = u.known
        Cluster.insert(
            cluster_id=info.cluster_id, name=info.name, group_name=u.group, group_source=u.group_source, owner=u.owner,
            course=info.custom_tags.get("course") if a.kind == "lab" else None, exempt=u.exempt, state=info.state,
            node_type_id=info.node_type_id, driver_node_type_id=info.driver_node_type_id,
            num_workers=info.num_workers, first_seen=now, last_seen=now, open_since=t.open_since,
            watermark=t.watermark, checked_until=t.checked_until, workers=t.workers, segment_since=t.segment_since,
            starting_since=t.starting_since, estimated=u.estimated,
            # An unclassified run (the admins unreadable) keeps what the ledger knew.
            creator=info.creator or (known.creator if known else None),
            kind=a.kind or (known.kind if known else None),
            tag_group=a.tag_group if a.kind else (known.tag_group if known else None),
            tag_quota=a.tag_quota if a.kind else (known.tag_quota if known else None), tag_drift=a.drift,
            photon=info.photon or (u.vanished and bool(known and known.photon)),
        ).on_conflict(
            conflict_target=[Cluster.cluster_id],
            preserve=[Cluster.name, Cluster.group_name, Cluster.group_source, Cluster.owner, Cluster.course,
                      Cluster.exempt, Cluster.state, Cluster.node_type_id, Cluster.driver_node_type_id,
                      Cluster.num_workers, Cluster.last_seen, Cluster.open_since, Cluster.watermark,
                      Cluster.checked_until, Cluster.workers, Cluster.segment_since, Cluster.starting_since,
                      Cluster.estimated, Cluster.creator, Cluster.kind, Cluster.tag_group, Cluster.tag_quota,
                      Cluster.tag_drift, Cluster.photon],
        ).execute()
        for day in sorted(set(u.pieces) | set(u.node_pieces) | set(u.startup_pieces)):
            ms, sessions = u.pieces.get(day, (0, 0))
            node_ms = u.node_pieces.get(day, 0)
            startup_ms, startup_node_ms = u.startup_pieces.get(day, (0, 0))
            if day in closed_days:
                logger.warning("%s: %d s of late usage booked to closed day %s", u.label, ms // 1000, day)
                UsageHistory.update(used_ms=UsageHistory.used_ms + ms, sessions=UsageHistory.sessions + sessions,
                                    node_ms=UsageHistory.node_ms + node_ms,
                                    startup_ms=UsageHistory.startup_ms + startup_ms,
                                    startup_node_ms=UsageHistory.startup_node_ms + startup_node_ms).where(
                    (UsageHistory.cluster == info.cluster_id) & (UsageHistory.day == day)).execute()
                continue
            ClusterDay.insert(cluster=info.cluster_id, day=day, closed_ms=ms, sessions=sessions,
                              closed_node_ms=node_ms, startup_ms=startup_ms, startup_node_ms=startup_node_ms,
                              estimated=u.estimated).on_conflict(
                conflict_target=[ClusterDay.cluster, ClusterDay.day],
                update={ClusterDay.closed_ms: ClusterDay.closed_ms + ms,
                        ClusterDay.sessions: ClusterDay.sessions + sessions,
                        ClusterDay.closed_node_ms: ClusterDay.closed_node_ms + node_ms,
                        ClusterDay.startup_ms: ClusterDay.startup_ms + startup_ms,
                        ClusterDay.startup_node_ms: ClusterDay.startup_node_ms + startup_node_ms},
            ).execute()
        save_sessions(info.cluster_id, u.group, u.segments)
        ClusterDay.insert(cluster=info.cluster_id, day=u.day, used_ms=u.used_ms, limit_amount=u.limits.hard,
                          quota_unit=u.limits.unit.name, used_node_ms=u.used_node_ms, as_of=now,
                          estimated=u.estimated, limit_at=u.limit_at, quota_cap=u.limits.cap,
                          warn_amount=u.limits.warn).on_conflict(
            conflict_target=[ClusterDay.cluster, ClusterDay.day],
            update={ClusterDay.used_ms: u.used_ms, ClusterDay.limit_amount: u.limits.hard,
                    ClusterDay.warn_amount: u.limits.warn,
                    ClusterDay.quota_unit: u.limits.unit.name, ClusterDay.used_node_ms: u.used_node_ms,
                    ClusterDay.as_of: now, ClusterDay.limit_at: u.limit_at, ClusterDay.quota_cap: u.limits.cap},
        ).execute()
        if u.estimated:
            ClusterDay.update(estimated=True).where(_day(info.cluster_id, u.day)).execute()


def clip_open_interval(cluster_id: str, open_since: datetime | None, segment_since: datetime | None) -> None:
    """The open interval (and its node segment) now starts at the archived day's end."""
    Cluster.update(open_since=open_since, segment_since=segment_since).where(
        Cluster.cluster_id == cluster_id).execute()


# -- the day's rows and flags -------------------------------------------------------------------
def _day(cluster_id: str, day: date):
    return (ClusterDay.cluster == cluster_id) & (ClusterDay.day == day)


def days_on(day: date) -> dict[str, DayRecord]:
    return {r.cluster_id: record_of(DayRecord, r) for r in ClusterDay.select().where(ClusterDay.day == day)}


def day_of(cluster_id: str, day: date) -> DayRecord:
    row, _ = ClusterDay.get_or_create(cluster=cluster_id, day=day)
    return record_of(DayRecord, row)


def blocked_cluster_ids(day: date, *, in_effect: bool = True) -> set[str]:
    """Clusters blocked on `day`: whose block is in effect, or (in_effect=False) also those only
    decided (over the quota, the permission change not yet made)."""
    cond = ClusterDay.blocked_at.is_null(False) if in_effect else ClusterDay.blocked_group.is_null(False)
    return {r.cluster_id for r in ClusterDay.select(ClusterDay.cluster).where((ClusterDay.day == day) & cond)}


def blocked_on(day: date) -> list[tuple[DayRecord, str]]:
    """The day's rows with a group to give rights back to, and the cluster's name."""
    return [(record_of(DayRecord, r), r.cluster.name) for r in ClusterDay.select().where(
        (ClusterDay.day == day) & ClusterDay.blocked_group.is_null(False))]


def stale_blocks(today: date) -> list[DayRecord]:
    """Blocks of earlier days still in effect and not lifted."""
    return [record_of(DayRecord, r) for r in ClusterDay.select().where(
        (ClusterDay.day < today) & ClusterDay.blocked_group.is_null(False) & ClusterDay.blocked_at.is_null(False)
        & ClusterDay.restored_at.is_null())]


def mark_lifted(cluster_id: str, day: date, now: datetime) -> None:
    ClusterDay.update(restored_at=now).where(_day(cluster_id, day)).execute()


def mark_warned(cluster_id: str, day: date, now: datetime) -> None:
    # db_value: a function's argument gets no field conversion (PostgreSQL refuses a timestamp there)
    first = fn.COALESCE(ClusterDay.first_warned_at, ClusterDay.first_warned_at.db_value(now))
    ClusterDay.update(warned_at=now, first_warned_at=first).where(_day(cluster_id, day)).execute()


def mark_over_quota(cluster_id: str, day: date, group: str | None, now: datetime) -> None:
    """The intent, before any workspace call: the nightly close then knows whose rights to give
    back, even if the run is killed before the block is made."""
    row = day_of(cluster_id, day)
    if row.over_quota_at is None or row.blocked_group is None:
        ClusterDay.update(over_quota_at=row.over_quota_at or now, blocked_group=group).where(
            _day(cluster_id, day)).execute()


def mark_terminated(cluster_id: str, day: date, now: datetime, *, again: bool) -> None:
    row = day_of(cluster_id, day)
    ClusterDay.update(terminated_at=row.terminated_at or now, first_stopped_at=row.first_stopped_at or now,
                      reterminations=row.reterminations + (1 if again else 0)).where(
        _day(cluster_id, day)).execute()


def mark_blocked(cluster_id: str, day: date, group: str, previous_level: str, now: datetime) -> None:
    ClusterDay.update(blocked_at=now, blocked_group=group, previous_level=previous_level).where(
        _day(cluster_id, day)).execute()


NOTICE_FLAGS = {"termination": "notified_at", "retermination": "retermination_notified_at",
                "block_undone": "reblock_notified_at"}


def mark_noticed(cluster_id: str, day: date, kind: str, now: datetime) -> None:
    """The notice of `kind` is queued (in the same transaction as its outbox row)."""
    ClusterDay.update(**{NOTICE_FLAGS[kind]: now}).where(_day(cluster_id, day)).execute()


def reset_after_restore(cluster_id: str, day: date, now: datetime) -> None:
    """A grant lifted the limit: the day's flags start over against the new limit. The first
    warning and first stop are kept for the report."""
    ClusterDay.update(blocked_at=None, over_quota_at=None, notified_at=None, warned_at=None, terminated_at=None,
                      reblock_notified_at=None, restored_at=now, blocked_group=None).where(
        _day(cluster_id, day)).execute()


# -- quotas and grants --------------------------------------------------------------------------
def overrides() -> dict[str, tuple[str, float, float]]:
    """cluster id -> (unit, warn, hard) of its quota override."""
    return {row.cluster_id: (row.unit, row.warn_limit, row.max_limit) for row in QuotaOverride.select()}


def grants_on(day: date, cluster_ids: Iterable[str] | None = None) -> list[GrantRecord]:
    """The day's grants (bank top-ups, with an `until`, are not among them: see bank_grants)."""
    cond = (QuotaGrant.day == day) & QuotaGrant.until.is_null()
    if cluster_ids is not None:
        cond = cond & QuotaGrant.cluster.in_(list(cluster_ids))
    return [record_of(GrantRecord, g) for g in QuotaGrant.select().where(cond).order_by(QuotaGrant.granted_at)]


def _legacy_minutes(unit: str, amount: float) -> int:
    """The pre-v7 minutes column, still written (NOT NULL): the amount for a minutes quota, else 0."""
    return round(amount) if unit == "minutes" else 0


def add_grant(cluster_id: str, day: date, unit: str, amount: float, by: str, reason: str,
              now: datetime, until: date | None = None) -> GrantRecord:
    row = QuotaGrant.create(cluster=cluster_id, day=day, unit=unit, amount=amount, until=until,
                            minutes=_legacy_minutes(unit, amount), granted_by=by, granted_at=now, reason=reason)
    return record_of(GrantRecord, row)


def grants_between(start: date, before: date) -> list[GrantRecord]:
    """Each day's grants from `start` to the day before `before` (no bank top-ups)."""
    return [record_of(GrantRecord, g) for g in QuotaGrant.select().where(
        (QuotaGrant.day >= start) & (QuotaGrant.day < before) & QuotaGrant.until.is_null())]


def bank_grants() -> list[GrantRecord]:
    """Top-ups granted to a group's bank (--grant ... --until DATE)."""
    return [record_of(GrantRecord, g) for g in QuotaGrant.select().where(QuotaGrant.until.is_null(False))
            .order_by(QuotaGrant.granted_at)]


# -- the semester: past days, sessions -----------------------------------------------------------
def usage_days(start: date, before: date) -> list[DayUsage]:
    """Every cluster's usage on each day from `start` to the day before `before`: the archive for
    closed days, the day's row for days not closed yet (a close that has not run)."""
    closed = {row.day for row in ClosedDay.select(ClosedDay.day).where(ClosedDay.day >= start)}
    out = [DayUsage(h.cluster_id, h.group_name, h.day, h.used_ms, h.node_ms, h.startup_ms, h.startup_node_ms,
                    h.exempt)
           for h in UsageHistory.select().where((UsageHistory.day >= start) & (UsageHistory.day < before))]
    clusters = {c.cluster_id: c for c in Cluster.select(Cluster.cluster_id, Cluster.group_name, Cluster.exempt)}
    for d in ClusterDay.select().where((ClusterDay.day >= start) & (ClusterDay.day < before)):
        if d.day not in closed:
            c = clusters.get(d.cluster_id)
            out.append(DayUsage(d.cluster_id, c.group_name if c else None, d.day, d.used_ms, d.used_node_ms,
                                d.startup_ms, d.startup_node_ms, bool(c and c.exempt)))
    return out


def save_sessions(cluster_id: str, group: str | None, segments: Iterable) -> None:
    """Closed node segments (core.accounting.Segment) as sessions; one already there is kept."""
    rows = [{"cluster": cluster_id, "group_name": group, "start": g.start, "end": g.end, "nodes": g.nodes}
            for g in segments if g.end > g.start]
    if rows:
        UsageSession.insert_many(rows).on_conflict_ignore().execute()


def sessions(start: datetime | None = None, end: datetime | None = None,
             group: str | None = None) -> list[SessionRecord]:
    """Sessions overlapping [start, end), oldest first."""
    query = UsageSession.select(UsageSession.cluster, UsageSession.group_name, UsageSession.start,
                                UsageSession.end, UsageSession.nodes).order_by(UsageSession.start)
    if start is not None:
        query = query.where(UsageSession.end > start)
    if end is not None:
        query = query.where(UsageSession.start < end)
    if group is not None:
        query = query.where(UsageSession.group_name == group)
    return [SessionRecord(*row) for row in query.tuples()]


def secret(name: str) -> str | None:
    row = LabSecret.get_or_none(LabSecret.name == name)
    return row.value if row else None


def set_secret(name: str, value: str, now: datetime) -> None:
    LabSecret.insert(name=name, value=value, set_at=now).on_conflict(
        conflict_target=[LabSecret.name], preserve=[LabSecret.value, LabSecret.set_at]).execute()


def fact(name: str) -> tuple[str, datetime] | None:
    """A fact the lab keeps between runs (its value, JSON text, and when it was learned)."""
    row = LabFact.get_or_none(LabFact.name == name)
    return (row.value, row.set_at) if row else None


def set_fact(name: str, value: str, now: datetime) -> None:
    LabFact.insert(name=name, value=value, set_at=now).on_conflict(
        conflict_target=[LabFact.name], preserve=[LabFact.value, LabFact.set_at]).execute()


def exemptions() -> dict[str, ExemptionRecord]:
    """cluster id -> the admin's exemption of it."""
    return {row.cluster_id: record_of(ExemptionRecord, row) for row in ClusterExemption.select()}


def set_exemption(cluster_id: str, by: str, reason: str, now: datetime) -> None:
    ClusterExemption.insert(cluster=cluster_id, set_by=by, set_at=now, reason=reason).on_conflict(
        conflict_target=[ClusterExemption.cluster],
        preserve=[ClusterExemption.set_by, ClusterExemption.set_at, ClusterExemption.reason]).execute()


def clear_exemption(cluster_id: str) -> int:
    return ClusterExemption.delete().where(ClusterExemption.cluster == cluster_id).execute()


def accept_tags(cluster_id: str, group: str | None, source: str | None, tag_group: str, tag_quota: str,
                exempt: bool) -> None:
    """A lab cluster's tags as they are now become the recorded ones (--accept_tags)."""
    Cluster.update(group_name=group, group_source=source, tag_group=tag_group, tag_quota=tag_quota,
                   exempt=exempt, tag_drift=False).where(Cluster.cluster_id == cluster_id).execute()


def set_override(cluster_id: str, unit: str, warn: float, hard: float, by: str, now: datetime) -> None:
    QuotaOverride.insert(cluster=cluster_id, unit=unit, warn_limit=warn, max_limit=hard,
                         warn_minutes=_legacy_minutes(unit, warn), max_minutes=_legacy_minutes(unit, hard),
                         set_by=by, set_at=now).on_conflict(
        conflict_target=[QuotaOverride.cluster],
        preserve=[QuotaOverride.unit, QuotaOverride.warn_limit, QuotaOverride.max_limit, QuotaOverride.warn_minutes,
                  QuotaOverride.max_minutes, QuotaOverride.set_by, QuotaOverride.set_at]).execute()


def clear_override(cluster_id: str) -> int:
    return QuotaOverride.delete().where(QuotaOverride.cluster == cluster_id).execute()


# -- closing days and history -------------------------------------------------------------------
def closed_days() -> dict[date, ClosedDayRecord]:
    return {row.day: record_of(ClosedDayRecord, row) for row in ClosedDay.select()}


def closed_day(day: date) -> ClosedDayRecord | None:
    row = ClosedDay.get_or_none(ClosedDay.day == day)
    return record_of(ClosedDayRecord, row) if row else None


def archive_day(day: date, rows: list[HistoryRecord], now: datetime) -> None:
    """The day's history rows (replacing any earlier attempt's) and the day marked archived."""
    # An upsert both SQLite and PostgreSQL run (INSERT ... ON CONFLICT DO UPDATE; SQLite's INSERT OR
    # REPLACE has no PostgreSQL form).
    keep = [UsageHistory._meta.fields[f] for f in HistoryRecord.__dataclass_fields__
            if f not in ("cluster_id", "day")]
    for h in rows:
        UsageHistory.insert(**{f: getattr(h, f) for f in HistoryRecord.__dataclass_fields__
                               if f != "cluster_id"}, cluster=h.cluster_id).on_conflict(
            conflict_target=[UsageHistory.cluster, UsageHistory.day], preserve=keep).execute()
    ClosedDay.create(day=day, archived_at=now)


def complete_day(day: date, now: datetime) -> None:
    """Permissions are back: the day's counters go, and the day is done."""
    ClusterDay.delete().where(ClusterDay.day == day).execute()
    ClosedDay.update(completed_at=now).where(ClosedDay.day == day).execute()


def history(start: date | None = None, end: date | None = None) -> list[HistoryRecord]:
    query = UsageHistory.select().order_by(UsageHistory.day, UsageHistory.cluster_name)
    if start:
        query = query.where(UsageHistory.day >= start)
    if end:
        query = query.where(UsageHistory.day <= end)
    return [record_of(HistoryRecord, h) for h in query]


def unrestored_blocks(day: date) -> list[HistoryRecord]:
    return [record_of(HistoryRecord, h) for h in UsageHistory.select().where(
        (UsageHistory.day == day) & UsageHistory.blocked_group.is_null(False) & UsageHistory.restored_at.is_null())]


def mark_history_restored(cluster_id: str, day: date, now: datetime) -> None:
    UsageHistory.update(restored_at=now).where(
        (UsageHistory.cluster == cluster_id) & (UsageHistory.day == day)).execute()


# -- the outbox ---------------------------------------------------------------------------------
def message_exists(key: str) -> bool:
    return OutboxMessage.select().where(OutboxMessage.dedupe_key == key).exists()


def insert_message(*, key: str, kind: str, event: str, to: str, cc: str, subject: str, text: str, html: str,
                   now: datetime, attachments: Iterable = (), note: str = "") -> None:
    # on_conflict_ignore backs the caller's existence check up should another writer slip in between
    OutboxMessage.insert(
        dedupe_key=key, kind=kind, event=event, to_addrs=to, cc_addrs=cc, subject=subject, text_body=text,
        html_body=html, created_at=now, next_attempt_at=now, last_error=note).on_conflict_ignore().execute()
    message = OutboxMessage.get(OutboxMessage.dedupe_key == key)
    if message.attachments.count():
        return
    for att in attachments:
        OutboxAttachment.create(message=message, filename=att.filename, content_type=att.content_type,
                                content_id=att.content_id, data=att.data)


def messages(ids: Iterable[int] | None = None, *, status: str | None = None, limit: int | None = None
             ) -> list[MessageRecord]:
    query = OutboxMessage.select().order_by(OutboxMessage.id.desc())
    if ids is not None:
        query = query.where(OutboxMessage.id.in_(list(ids)))
    if status is not None:
        query = query.where(OutboxMessage.status == status)
    if limit is not None:
        query = query.limit(limit)
    return [record_of(MessageRecord, m) for m in query]


def requeue_failed(ids: Iterable[int] | None, now: datetime) -> int:
    """Failed messages (all, or the given ids) back in the queue."""
    cond = OutboxMessage.status == "failed"
    if ids is not None:
        cond = cond & OutboxMessage.id.in_(list(ids))
    return OutboxMessage.update(status="pending", next_attempt_at=now).where(cond).execute()


def drop_messages(ids: Iterable[int] | None) -> int:
    """Take queued or failed messages (the given ids, or every failed one) out of the queue for
    good. The row stays, marked dropped: its key still stops the same message being queued again."""
    cond = OutboxMessage.status.in_(("pending", "accepted", "failed")) if ids is not None else \
        (OutboxMessage.status == "failed")
    if ids is not None:
        cond = cond & OutboxMessage.id.in_(list(ids))
    return OutboxMessage.update(status="dropped", last_error=fn.TRIM(
        fn.COALESCE(OutboxMessage.last_error, "").concat(" (dropped by the admin)"))).where(cond).execute()


def record_mail_requests(kinds: Iterable[str], now: datetime) -> None:
    """Requests just made of a paced mail service; those over two hours old are forgotten."""
    rows = [{"at": now, "kind": k} for k in kinds]
    with db_proxy.atomic():
        if rows:
            MailRequest.insert_many(rows).execute()
        MailRequest.delete().where(MailRequest.at < now - timedelta(hours=2)).execute()


def mail_requests_since(kind: str, since: datetime) -> int:
    return MailRequest.select().where((MailRequest.kind == kind) & (MailRequest.at > since)).count()


# -- job runs -----------------------------------------------------------------------------------
def unreported_unfinished_runs(job: str) -> list[RunRecord]:
    return [record_of(RunRecord, r) for r in JobRun.select().where(
        (JobRun.job == job) & JobRun.finished_at.is_null() & JobRun.reported_at.is_null()).order_by(JobRun.id)]


def mark_run_reported(run_id: int, now: datetime) -> None:
    JobRun.update(reported_at=now).where(JobRun.id == run_id).execute()


def start_run(job: str, now: datetime, pid: int | None) -> int:
    return JobRun.create(job=job, started_at=now, pid=pid).id


def end_run(run_id: int, now: datetime, exit_code: int) -> None:
    JobRun.update(finished_at=now, exit_code=exit_code).where(JobRun.id == run_id).execute()


# -- serverless (services/serverless.py) -------------------------------------------------------
def save_serverless(booked: Iterable, now: datetime) -> int:
    """Keep each billing record once (core/serverless.Booked); one already kept is left as it was
    (its known_at too). Returns how many were new."""
    rows = [{"record_id": b.record.record_id, "run_as": b.record.run_as, "group_name": b.group, "day": b.day,
             "start": b.record.start, "end": b.record.end, "dbu": b.record.dbu, "usd": b.usd,
             "record_type": b.record.record_type, "product": b.record.product, "notebook_id": b.record.notebook_id,
             "ingestion_date": b.record.ingestion_date, "known_at": now} for b in booked]
    new = [r for r in rows if not ServerlessUsage.select().where(ServerlessUsage.record_id == r["record_id"]).exists()]
    for i in range(0, len(new), 200):
        ServerlessUsage.insert_many(new[i:i + 200]).on_conflict_ignore().execute()
    return len(new)


def serverless_days(start: date | None = None, end: date | None = None) -> list[ServerlessDay]:
    """Per group (None: no course group) and local day, from `start` to `end` (both included)."""
    query = ServerlessUsage.select(
        ServerlessUsage.group_name, ServerlessUsage.day, fn.SUM(ServerlessUsage.dbu).alias("dbu"),
        fn.SUM(ServerlessUsage.usd).alias("usd"), fn.MAX(ServerlessUsage.known_at).alias("known_at"),
        fn.COUNT(ServerlessUsage.record_id).alias("records"))
    if start is not None:
        query = query.where(ServerlessUsage.day >= start)
    if end is not None:
        query = query.where(ServerlessUsage.day <= end)
    out = []
    for r in query.group_by(ServerlessUsage.group_name, ServerlessUsage.day).order_by(
            ServerlessUsage.day, ServerlessUsage.group_name):
        known = ServerlessUsage.known_at.python_value(r.known_at) if not isinstance(r.known_at, datetime) \
            else r.known_at
        out.append(ServerlessDay(r.group_name, ServerlessUsage.day.python_value(r.day) if not isinstance(r.day, date)
                                 else r.day, round(float(r.dbu or 0), 6),
                                 None if r.usd is None else round(float(r.usd), 6), known, int(r.records)))
    return out


def serverless_unassigned(start: date | None = None) -> list[tuple[str | None, str | None, float]]:
    """(run_as, product, DBU) of serverless use by no course group's member, since `start`."""
    query = ServerlessUsage.select(ServerlessUsage.run_as, ServerlessUsage.product,
                                   fn.SUM(ServerlessUsage.dbu).alias("dbu")).where(ServerlessUsage.group_name.is_null())
    if start is not None:
        query = query.where(ServerlessUsage.day >= start)
    return [(r.run_as, r.product, round(float(r.dbu or 0), 6))
            for r in query.group_by(ServerlessUsage.run_as, ServerlessUsage.product).order_by(ServerlessUsage.run_as)]


def serverless_since() -> date | None:
    """The ingestion date to read billing from: the latest one booked (re-read: a day's records
    arrive over the day, and a record kept already is not kept twice)."""
    value = ServerlessUsage.select(fn.MAX(ServerlessUsage.ingestion_date)).scalar()
    return ServerlessUsage.ingestion_date.python_value(value) if value is not None and not isinstance(value, date) \
        else value


def serverless_data_until() -> datetime | None:
    value = ServerlessUsage.select(fn.MAX(ServerlessUsage.end)).scalar()
    return ServerlessUsage.end.python_value(value) if value is not None and not isinstance(value, datetime) else value


def serverless_blocks(*, active: bool = True) -> dict[str, ServerlessBlockRecord]:
    query = ServerlessBlock.select()
    if active:
        query = query.where(ServerlessBlock.lifted_at.is_null())
    return {r.group_name: record_of(ServerlessBlockRecord, r) for r in query}


def mark_serverless_blocked(group: str, cap: str, used: float, limit: float, returns_on: date | None,
                            now: datetime) -> None:
    """A new block, or the figures of one in force (its blocked_at stays)."""
    row = ServerlessBlock.get_or_none(ServerlessBlock.group_name == group)
    if row is None or row.lifted_at is not None:
        ServerlessBlock.insert(group_name=group, cap=cap, used=used, limit=limit, blocked_at=now,
                               returns_on=returns_on, lifted_at=None).on_conflict(
            conflict_target=[ServerlessBlock.group_name],
            preserve=[ServerlessBlock.cap, ServerlessBlock.used, ServerlessBlock.limit, ServerlessBlock.blocked_at,
                      ServerlessBlock.returns_on, ServerlessBlock.lifted_at]).execute()
    else:
        ServerlessBlock.update(cap=cap, used=used, limit=limit, returns_on=returns_on).where(
            ServerlessBlock.group_name == group).execute()


def mark_serverless_lifted(group: str, now: datetime) -> None:
    ServerlessBlock.update(lifted_at=now).where(
        (ServerlessBlock.group_name == group) & ServerlessBlock.lifted_at.is_null()).execute()
