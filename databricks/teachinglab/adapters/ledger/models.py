"""The usage ledger (Peewee): a SQLite file in WAL mode by default, or PostgreSQL (DATABASE_URL).

Tables, by role:
  cluster          cluster info, plus the accounting tracker (watermark, open interval)
  cluster_day      usage and flags of each day not yet closed (today's counters live here)
  usage_history    the archived per-day history written by the nightly close
  closed_day       which days the nightly close has finished
  quota_override   per-cluster quotas that replace the defaults
  quota_grant      extra quota (in its unit) for one day, with who granted them and when
  outbox           every message, rendered, until a transport has accepted it
  job_run          each cron run's start and end, so a killed run is noticed by the next one
  schema_version   the migrations applied

Times are stored in UTC as ISO-8601 text; days are local dates in the quota time zone.
"""
from __future__ import annotations

import logging
from datetime import date, datetime, timezone
from pathlib import Path

import peewee as pw

logger = logging.getLogger(__name__)
db_proxy = pw.DatabaseProxy()


class UtcDateTimeField(pw.Field):
    field_type = "TEXT"

    def db_value(self, value):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored: pass an aware UTC datetime")
        return value.astimezone(timezone.utc).isoformat(timespec="milliseconds")

    def python_value(self, value):
        return datetime.fromisoformat(value) if value else None


class DayField(pw.Field):
    field_type = "TEXT"

    def db_value(self, value):
        return value.isoformat() if value is not None else None

    def python_value(self, value):
        return date.fromisoformat(value) if value else None


class BaseModel(pw.Model):
    class Meta:
        database = db_proxy
        legacy_table_names = False


class SchemaVersion(BaseModel):
    version = pw.IntegerField(primary_key=True)
    applied_at = UtcDateTimeField()


class Cluster(BaseModel):
    cluster_id = pw.CharField(primary_key=True)
    name = pw.CharField()
    group_name = pw.CharField(null=True)
    group_source = pw.CharField(null=True)  # tag | acl | name | creator
    owner = pw.CharField(null=True)         # the student who created it (group_source = creator)
    course = pw.CharField(null=True)
    exempt = pw.BooleanField(default=False)
    state = pw.CharField(default="UNKNOWN")
    node_type_id = pw.CharField(null=True)
    num_workers = pw.IntegerField(null=True)
    first_seen = UtcDateTimeField()
    last_seen = UtcDateTimeField()
    open_since = UtcDateTimeField(null=True)
    watermark = UtcDateTimeField(null=True)
    checked_until = UtcDateTimeField(null=True)
    estimated = pw.BooleanField(default=False)
    workers = pw.IntegerField(null=True)             # in the open interval, its latest count
    segment_since = UtcDateTimeField(null=True)      # where the open interval's node count began
    driver_node_type_id = pw.CharField(null=True)
    starting_since = UtcDateTimeField(null=True)     # a start not yet RUNNING (its VMs are billed)
    # Trust (services/trust.py): who created it, whether that is a lab principal, and for a lab
    # cluster the `group` and `quota` tags as first seen ('' for none), which decide for good.
    creator = pw.CharField(null=True)
    kind = pw.CharField(null=True)                   # lab | student
    tag_group = pw.CharField(null=True)
    tag_quota = pw.CharField(null=True)
    tag_drift = pw.BooleanField(default=False)       # a lab cluster's tags differ from those recorded
    photon = pw.BooleanField(default=False)          # runtime_engine PHOTON: priced at Photon's DBU rate


class ClusterDay(BaseModel):
    cluster = pw.ForeignKeyField(Cluster, backref="days", on_delete="CASCADE")
    day = DayField()
    closed_ms = pw.BigIntegerField(default=0)     # closed intervals booked to this day
    sessions = pw.IntegerField(default=0)         # closed intervals touching this day
    estimated = pw.BooleanField(default=False)
    used_ms = pw.BigIntegerField(default=0)       # closed + open share, as of `as_of`
    # The hard quota applied, an integer amount of `quota_unit` (core/units.py): ms for minutes.
    limit_amount = pw.BigIntegerField(default=0, column_name="limit_ms")
    quota_unit = pw.CharField(default="minutes")
    as_of = UtcDateTimeField(null=True)
    warned_at = UtcDateTimeField(null=True)
    over_quota_at = UtcDateTimeField(null=True)
    terminated_at = UtcDateTimeField(null=True)
    reterminations = pw.IntegerField(default=0)
    blocked_group = pw.CharField(null=True)
    blocked_at = UtcDateTimeField(null=True)
    previous_level = pw.CharField(null=True)
    notified_at = UtcDateTimeField(null=True)
    retermination_notified_at = UtcDateTimeField(null=True)
    restored_at = UtcDateTimeField(null=True)
    reblock_notified_at = UtcDateTimeField(null=True)  # the admin was told a block was undone
    first_warned_at = UtcDateTimeField(null=True)      # these two are kept when a grant resets
    first_stopped_at = UtcDateTimeField(null=True)     # the day's flags: the report tells it all
    limit_at = UtcDateTimeField(null=True)  # as of `as_of`: when the group reaches its hard quota at that rate
    closed_node_ms = pw.BigIntegerField(default=0)  # node-time of closed segments booked to this day
    used_node_ms = pw.BigIntegerField(default=0)    # closed + the open segment's share, as of `as_of`
    startup_ms = pw.BigIntegerField(default=0)      # start-up VM time (start to RUNNING): cost only
    startup_node_ms = pw.BigIntegerField(default=0)
    quota_cap = pw.CharField(default="daily")  # the cap the hard limit came from: daily | weekly | semester
    warn_amount = pw.BigIntegerField(null=True)  # the soft quota the same poll applied (None: before v12)

    class Meta:
        primary_key = pw.CompositeKey("cluster", "day")


class UsageHistory(BaseModel):
    cluster = pw.ForeignKeyField(Cluster, backref="history", on_delete="CASCADE")
    day = DayField()
    cluster_name = pw.CharField()
    group_name = pw.CharField(null=True)
    used_ms = pw.BigIntegerField()
    limit_amount = pw.BigIntegerField(column_name="limit_ms")  # as in cluster_day
    quota_unit = pw.CharField(default="minutes")
    sessions = pw.IntegerField(default=0)
    warned = pw.BooleanField(default=False)
    terminated = pw.BooleanField(default=False)
    blocked_group = pw.CharField(null=True)
    previous_level = pw.CharField(null=True)
    restored_at = UtcDateTimeField(null=True)
    estimated = pw.BooleanField(default=False)
    archived_at = UtcDateTimeField()
    exempt = pw.BooleanField(default=False)
    notes = pw.TextField(default="")  # what happened, in order: "stopped at 14:05; granted 30 min at 14:20 by …"
    node_ms = pw.BigIntegerField(default=0)  # node-time: every ms used times 1 driver + its workers then
    startup_ms = pw.BigIntegerField(default=0)
    startup_node_ms = pw.BigIntegerField(default=0)

    class Meta:
        primary_key = pw.CompositeKey("cluster", "day")


class ClosedDay(BaseModel):
    day = DayField(primary_key=True)
    archived_at = UtcDateTimeField()
    completed_at = UtcDateTimeField(null=True)  # set once permissions are restored


class QuotaOverride(BaseModel):
    cluster = pw.ForeignKeyField(Cluster, primary_key=True, on_delete="CASCADE")
    warn_minutes = pw.IntegerField()   # before v7 the limits; since, kept only for a minutes quota
    max_minutes = pw.IntegerField()
    unit = pw.CharField(default="minutes")  # QUOTA_UNIT when it was set
    warn_limit = pw.FloatField(null=True)   # in `unit`
    max_limit = pw.FloatField(null=True)
    set_by = pw.CharField()
    set_at = UtcDateTimeField()


class QuotaGrant(BaseModel):
    cluster = pw.ForeignKeyField(Cluster, backref="grants", on_delete="CASCADE")
    day = DayField(index=True)
    minutes = pw.IntegerField()        # before v7 the grant; since, kept only for a minutes quota
    unit = pw.CharField(default="minutes")
    amount = pw.FloatField(null=True)  # in `unit`
    granted_by = pw.CharField()
    granted_at = UtcDateTimeField()
    reason = pw.TextField(default="")
    until = DayField(null=True)        # set: a top-up to the group's bank, usable from `day` to `until`


class UsageSession(BaseModel):
    """Every usage interval, cut where the node count changed: what the simulator replays and the
    students' page lists. Written with the usage it closes; (cluster, start) is unique, so a
    rerun adds nothing."""
    cluster = pw.ForeignKeyField(Cluster, backref="sessions", on_delete="CASCADE")
    group_name = pw.CharField(null=True, index=True)
    start = UtcDateTimeField(index=True)
    end = UtcDateTimeField()
    nodes = pw.IntegerField()          # 1 driver + its workers

    class Meta:
        indexes = ((("cluster", "start"), True),)


class LabFact(BaseModel):
    """What the lab learned and keeps between runs (the lab principals, read hourly), as JSON."""
    name = pw.CharField(primary_key=True)
    value = pw.TextField()
    set_at = UtcDateTimeField()


class ClusterExemption(BaseModel):
    """An admin's exemption of one cluster from every quota (--set_quota exempt), with who and why.
    The only way a student's cluster is exempt: a tag on it never is."""
    cluster = pw.ForeignKeyField(Cluster, primary_key=True, on_delete="CASCADE")
    set_by = pw.CharField()
    set_at = UtcDateTimeField()
    reason = pw.TextField(default="")


class LabSecret(BaseModel):
    """Secrets the lab makes for itself (the status page's link key), never shown or logged."""
    name = pw.CharField(primary_key=True)
    value = pw.CharField()
    set_at = UtcDateTimeField()


class OutboxMessage(BaseModel):
    dedupe_key = pw.CharField(unique=True)
    kind = pw.CharField()
    event = pw.CharField()           # the X-Teachinglab-Event header
    to_addrs = pw.TextField()        # comma-separated
    cc_addrs = pw.TextField(default="")
    subject = pw.TextField()
    text_body = pw.TextField()
    html_body = pw.TextField()
    created_at = UtcDateTimeField()
    status = pw.CharField(default="pending", index=True)  # pending | sent | failed
    attempts = pw.IntegerField(default=0)
    next_attempt_at = UtcDateTimeField(null=True)
    last_error = pw.TextField(default="")
    sent_at = UtcDateTimeField(null=True)
    transport = pw.CharField(null=True)
    provider_ref = pw.CharField(null=True)  # e.g. an ACS operation id
    last_attempt_at = UtcDateTimeField(null=True)  # written before each send (write-ahead)


class MailRequest(BaseModel):
    """Each request made of a paced mail service (ACS): a send or a status check, when. Its limits
    hold per subscription and per minute and hour, across runs, so they are counted here."""
    at = UtcDateTimeField(index=True)
    kind = pw.CharField()            # send | status


class OutboxAttachment(BaseModel):
    message = pw.ForeignKeyField(OutboxMessage, backref="attachments", on_delete="CASCADE")
    filename = pw.CharField()
    content_type = pw.CharField()
    content_id = pw.CharField(null=True)  # set for images shown inline in the HTML part
    data = pw.BlobField()


class JobRun(BaseModel):
    """Every run of a cron job, written when it starts and when it ends. A run with no end was
    killed (cron's `timeout`, the OOM killer, a reboot): the next run tells the admin, once."""
    job = pw.CharField(index=True)
    started_at = UtcDateTimeField()
    finished_at = UtcDateTimeField(null=True)
    exit_code = pw.IntegerField(null=True)
    pid = pw.IntegerField(null=True)
    reported_at = UtcDateTimeField(null=True)  # when a later run queued the "did not finish" alert


class ServerlessUsage(BaseModel):
    """Every serverless billing record read (system.billing.usage), once, by its record_id: a
    retraction is its own (negative) record, so a day's figure is a plain sum and a re-read adds
    nothing. `known_at`: when this product first read it (billing lags; a day can grow after its
    close)."""
    record_id = pw.CharField(primary_key=True)
    run_as = pw.CharField(null=True)
    group_name = pw.CharField(null=True, index=True)   # None: whose it is, is in no course group
    day = DayField(index=True)                          # the local day its usage started
    start = UtcDateTimeField()
    end = UtcDateTimeField()
    dbu = pw.FloatField()
    usd = pw.FloatField(null=True)
    record_type = pw.CharField(default="ORIGINAL")
    product = pw.CharField(null=True)
    notebook_id = pw.CharField(null=True)
    ingestion_date = DayField(null=True)
    known_at = UtcDateTimeField()


class ServerlessBlock(BaseModel):
    """A group whose serverless allowance is spent: its CAN_USE on the serverless compute objects
    is removed until `returns_on`. Written after the removal succeeded; `lifted_at` after the
    grant came back."""
    group_name = pw.CharField(primary_key=True)
    cap = pw.CharField()                 # daily | weekly | semester
    used = pw.FloatField()
    limit = pw.FloatField()
    blocked_at = UtcDateTimeField()
    returns_on = DayField(null=True)     # None: not this semester
    lifted_at = UtcDateTimeField(null=True)


V1_TABLES = [Cluster, ClusterDay, UsageHistory, ClosedDay, QuotaOverride, QuotaGrant, OutboxMessage]


def _v1(db: pw.Database) -> None:
    db.create_tables(V1_TABLES)


def _v2(db: pw.Database) -> None:
    """Attachments (report chart and CSV) and the time of the last send attempt."""
    from playhouse.migrate import SchemaMigrator, migrate as run
    db.create_tables([OutboxAttachment])
    if "last_attempt_at" not in _columns(db, "outbox_message"):
        run(SchemaMigrator.from_database(db).add_column(
            "outbox_message", "last_attempt_at", UtcDateTimeField(null=True)))


def _v3(db: pw.Database) -> None:
    """Runs of the cron jobs, the once-a-day notice that a block was undone from outside, and the
    owner of a cluster counted to a group through its creator."""
    from playhouse.migrate import SchemaMigrator, migrate as run
    db.create_tables([JobRun])
    migrator = SchemaMigrator.from_database(db)
    if "reblock_notified_at" not in _columns(db, "cluster_day"):
        run(migrator.add_column("cluster_day", "reblock_notified_at", UtcDateTimeField(null=True)))
    if "owner" not in _columns(db, "cluster"):
        run(migrator.add_column("cluster", "owner", pw.CharField(null=True)))
    day_columns = _columns(db, "cluster_day")
    for column in ("first_warned_at", "first_stopped_at"):
        if column not in day_columns:
            run(migrator.add_column("cluster_day", column, UtcDateTimeField(null=True)))
    history = _columns(db, "usage_history")
    if "exempt" not in history:
        run(migrator.add_column("usage_history", "exempt", pw.BooleanField(default=False)))
    if "notes" not in history:
        run(migrator.add_column("usage_history", "notes", pw.TextField(default="")))


def _v4(db: pw.Database) -> None:
    """The forecast of when a group reaches its hard quota (--cluster_usage, the warning)."""
    from playhouse.migrate import SchemaMigrator, migrate as run
    if "limit_at" not in _columns(db, "cluster_day"):
        run(SchemaMigrator.from_database(db).add_column("cluster_day", "limit_at", UtcDateTimeField(null=True)))


def _v5(db: pw.Database) -> None:
    """Node-time: the worker count and node segment of the open interval, node-ms per day."""
    _add_columns(db, {
        "cluster": [("workers", pw.IntegerField(null=True)), ("segment_since", UtcDateTimeField(null=True)),
                    ("driver_node_type_id", pw.CharField(null=True))],
        "cluster_day": [("closed_node_ms", pw.BigIntegerField(default=0)), ("used_node_ms", pw.BigIntegerField(default=0))],
        "usage_history": [("node_ms", pw.BigIntegerField(default=0))]})


def _v6(db: pw.Database) -> None:
    """Start-up VM time (a start to RUNNING), billed but not usable: counted in the cost only."""
    _add_columns(db, {
        "cluster": [("starting_since", UtcDateTimeField(null=True))],
        "cluster_day": [("startup_ms", pw.BigIntegerField(default=0)), ("startup_node_ms", pw.BigIntegerField(default=0))],
        "usage_history": [("startup_ms", pw.BigIntegerField(default=0)),
                          ("startup_node_ms", pw.BigIntegerField(default=0))]})


def _v7(db: pw.Database) -> None:
    """QUOTA_UNIT: the unit of each day's limit, of each override and grant (all minutes so far)."""
    _add_columns(db, {
        "cluster_day": [("quota_unit", pw.CharField(default="minutes"))],
        "usage_history": [("quota_unit", pw.CharField(default="minutes"))],
        "quota_override": [("unit", pw.CharField(default="minutes")), ("warn_limit", pw.FloatField(null=True)),
                           ("max_limit", pw.FloatField(null=True))],
        "quota_grant": [("unit", pw.CharField(default="minutes")), ("amount", pw.FloatField(null=True))]})
    QuotaOverride.update(warn_limit=QuotaOverride.warn_minutes, max_limit=QuotaOverride.max_minutes).where(
        QuotaOverride.warn_limit.is_null()).execute()
    QuotaGrant.update(amount=QuotaGrant.minutes).where(QuotaGrant.amount.is_null()).execute()


def _columns(db: pw.Database, table: str) -> set[str]:
    """The table's columns, in the ledger's own schema (a course's, on PostgreSQL)."""
    return {c.name for c in db.get_columns(table, schema=getattr(db, "ledger_schema", None))}


def _add_columns(db: pw.Database, wanted: dict[str, list[tuple[str, pw.Field]]]) -> None:
    """Add each column its table lacks (a ledger may have some from a run killed mid-migration)."""
    from playhouse.migrate import SchemaMigrator, migrate as run
    migrator = SchemaMigrator.from_database(db)
    for table, columns in wanted.items():
        have = _columns(db, table)
        for name, column in columns:
            if name not in have:
                run(migrator.add_column(table, name, column))


def _v8(db: pw.Database) -> None:
    """The semester policy: usage sessions, top-up grants with an expiry, the cap that stopped a
    group, the status page's secret."""
    db.create_tables([UsageSession, LabSecret])
    _add_columns(db, {"quota_grant": [("until", DayField(null=True))],
                      "cluster_day": [("quota_cap", pw.CharField(default="daily"))]})


def _v9(db: pw.Database) -> None:
    """Trust: each cluster's creator and kind (lab or student), a lab cluster's tags as first seen,
    the admin's exemptions, and facts the lab keeps between runs (its principals)."""
    db.create_tables([LabFact, ClusterExemption])
    _add_columns(db, {"cluster": [("creator", pw.CharField(null=True)), ("kind", pw.CharField(null=True)),
                                  ("tag_group", pw.CharField(null=True)), ("tag_quota", pw.CharField(null=True)),
                                  ("tag_drift", pw.BooleanField(default=False))]})


def _v10(db: pw.Database) -> None:
    """Photon: a cluster running it is priced at Photon's DBU rate."""
    _add_columns(db, {"cluster": [("photon", pw.BooleanField(default=False))]})


def _v11(db: pw.Database) -> None:
    """The mail service's requests, for pacing within its limits."""
    db.create_tables([MailRequest])


def _v12(db: pw.Database) -> None:
    """The soft quota each poll applied, beside the hard one: what every view shows is what the
    poll enforced, even after .env changed."""
    _add_columns(db, {"cluster_day": [("warn_amount", pw.BigIntegerField(null=True))]})


def _v13(db: pw.Database) -> None:
    """Serverless inside the quota: billing records per group, and the groups whose serverless
    access is switched off."""
    db.create_tables([ServerlessUsage, ServerlessBlock])


# Append, never edit: each entry runs once, in order, inside a transaction.
MIGRATIONS = [(1, _v1), (2, _v2), (3, _v3), (4, _v4), (5, _v5), (6, _v6), (7, _v7), (8, _v8), (9, _v9),
              (10, _v10), (11, _v11), (12, _v12), (13, _v13)]


def migrate(db: pw.Database, now: datetime) -> int:
    if isinstance(db, pw.PostgresqlDatabase):
        # Two VMs (or an admin command beside a job) may open a new ledger at once: one migrates,
        # the other waits for its commit, then finds nothing to do.
        with db.atomic():
            db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
            return _migrate(db, now)
    return _migrate(db, now)


MIGRATION_LOCK_KEY = 7_358_104_422  # any fixed bigint, apart from the run locks' (hashed names)


def _migrate(db: pw.Database, now: datetime) -> int:
    db.create_tables([SchemaVersion])
    done = {row.version for row in SchemaVersion.select()}
    for version, step in MIGRATIONS:
        if version in done:
            continue
        with db.atomic():
            step(db)
            SchemaVersion.create(version=version, applied_at=now)
        logger.info("ledger migrated to schema version %d", version)
    return max([v for v, _ in MIGRATIONS])


class LedgerConfigError(Exception):
    """DATABASE_URL names a server that cannot be reached or refuses the credentials: a
    configuration error (exit 2). The message never contains the password."""


# READ COMMITTED, stated rather than left to the server's default. Why it is enough: the run lock
# (a PostgreSQL advisory lock, cli/runtime.py) lets one job at a time write a course's ledger, so
# the poll's read-decide-write sequence has no concurrent writer of the same rows; the admin CLI's
# writes (a grant, an override) are single statements or small transactions the next poll reads;
# and the rows two writers could both insert are guarded by unique keys that make the second a
# no-op (outbox.dedupe_key, usage_session (cluster, start), cluster_day (cluster, day) upserts).
# Every `transaction()` is a real BEGIN ... COMMIT, so a run that dies or loses the server keeps
# nothing of a half-done transaction, as on SQLite.
POSTGRES_ISOLATION = "READ COMMITTED"

# TCP keepalives on every PostgreSQL connection (libpq parameters): an idle connection is probed
# after 30 s and every 10 s after, so neither Azure's idle timeout (about 4 minutes) drops it
# unseen nor a dead peer goes unnoticed for long; tcp_user_timeout bounds data left unacknowledged
# (a query to a server that vanished) to 20 s instead of the kernel's quarter of an hour.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3,
              "tcp_user_timeout": 20_000}


def redacted_url(url: str) -> str:
    """The URL as it may be shown: its user and password are *** (core/urls.py)."""
    from databricks.teachinglab.core.urls import shown_url
    return shown_url(url)


def is_postgres(url: str | None) -> bool:
    return bool(url) and url.split(":", 1)[0] in ("postgres", "postgresql", "postgresext")


def connect_url(url: str, schema: str | None = None) -> pw.Database:
    """A peewee database for DATABASE_URL; PostgreSQL with a stated isolation level and a bounded
    connect time (a VM that cannot reach its server must fail inside the poll's deadline). With
    `schema` (a course's ledger), every connection's search_path is that schema alone."""
    from playhouse.db_url import connect
    if is_postgres(url):
        extra = {"options": f"-c search_path={schema}"} if schema else {}
        db = connect(url, isolation_level=POSTGRES_ISOLATION, connect_timeout=5,
                     application_name="teachinglab", **KEEPALIVES, **extra)
        db.ledger_schema = schema or "public"
        return db
    db = connect(url)
    if isinstance(db, pw.SqliteDatabase):
        db.pragma("foreign_keys", 1, permanent=True)
    return db


def unreachable(err: Exception) -> bool:
    """A server that cannot be reached right now (refused, timed out, down, failing over), rather
    than one that refuses this configuration (user, password, database name, a malformed URL)."""
    text = str(err).lower()
    refused_config = ("password authentication failed", "no password supplied", "does not exist", "invalid dsn",
                      "invalid connection option", "invalid integer value", "role", "permission denied")
    return not any(words in text for words in refused_config)


def describe_connect_error(url: str, err: Exception) -> str:
    """What is wrong with DATABASE_URL, in one line, without its user or password."""
    from urllib.parse import urlsplit
    from databricks.teachinglab.core.urls import shown_url, userinfo
    parts = urlsplit(shown_url(url))
    try:
        port = parts.port or 5432
    except ValueError:
        port = "?"
    where = f"{parts.hostname or 'localhost'}:{port}/{parts.path.lstrip('/')}"
    text = " ".join(str(err).split())
    import re
    pieces = [p for secret in userinfo(url) for p in re.split(r"[@?#/:%]", secret) if len(p) >= 3]
    for secret in sorted({*userinfo(url), *pieces}, key=len, reverse=True):
        text = text.replace(secret, "***")
    user = url.partition("://")[2].rsplit("@", 1)[0].partition(":")[0] if "@" in url else ""
    if user:
        text = text.replace(f'"{user}"', '"***"')  # psycopg2 quotes the user it names
    lowered = text.lower()
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        advice = "the server refused the user or the password: fix them in DATABASE_URL"
    elif "does not exist" in lowered and "database" in lowered:
        advice = "the database does not exist: create it (createdb) or fix its name in DATABASE_URL"
    else:
        advice = ("the server cannot be reached: check the host and port in DATABASE_URL, the server's "
                  "firewall rules and this VM's network")
    return f"DATABASE_URL: cannot connect to PostgreSQL at {where}: {advice} ({text})"


def open_ledger(*, db_path: Path | None, database_url: str | None, now: datetime, guard=None,
                schema: str | None = None) -> pw.Database:
    """Open (and migrate) the ledger. With a `guard` (ledger_guard.LedgerGuard, as the jobs and
    the CLI pass), a SQLite ledger is created only when that is safe, and every failure to open
    it raises LedgerUnavailable with what to do. A PostgreSQL server that cannot be reached or
    refuses the login raises LedgerConfigError."""
    from databricks.teachinglab.core.errors import LedgerUnavailable
    from databricks.teachinglab.adapters.ledger.guard import describe_open_error, prepare_new
    creating = False
    if database_url:
        db = connect_url(database_url, schema)
    else:
        creating = guard.check(db_path) if guard else not db_path.exists()
        if creating:
            prepare_new(db_path)
        db = pw.SqliteDatabase(str(db_path), pragmas={
            "journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 10_000, "synchronous": "normal"})
    db_proxy.initialize(db)
    if is_postgres(database_url):
        try:
            db.connect(reuse_if_open=True)
        except (pw.OperationalError, pw.ProgrammingError, pw.InterfaceError) as err:  # a malformed DSN too
            if isinstance(err, pw.OperationalError) and unreachable(err):
                # Planned maintenance, an HA failover of a minute or two: not a configuration
                # error. Exit 4, one alert a cause a day, the next run tries again.
                raise LedgerUnavailable("the ledger cannot be used right now: " + describe_connect_error(
                    database_url, err).removeprefix("DATABASE_URL: ")) from None
            raise LedgerConfigError(describe_connect_error(database_url, err)) from None
        if schema:
            db.execute_sql(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    try:
        db.connect(reuse_if_open=True)
        migrate(db, now)
    except (pw.DatabaseError, OSError) as err:
        if database_url or guard is None:
            raise
        db.close()
        raise LedgerUnavailable(describe_open_error(db_path, err)) from err
    if creating and guard is not None:
        guard.register(db_path, now)
        logger.warning("created a new ledger at %s (mode 600)", db_path)
    return db
