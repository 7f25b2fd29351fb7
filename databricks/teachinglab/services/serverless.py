"""Serverless inside the quota: read students' serverless use from the bill, book it to their
course groups per local day, and switch a group's serverless access off while its allowance
(the policy's [serverless] caps) is spent.

    1. read serverless records from system.billing.usage, ingested since the last one booked
       (every record kept once by its id: corrections net out, re-reads add nothing)
    2. book each to its user's course group and the local day its usage started  (one transaction)
    3. per group: is a cap spent? (core/serverless.standing)
    4. each serverless compute object's ACL: take CAN_USE from the blocked groups (again, when
       someone gave it back), give it back to groups whose period refilled     (safe to repeat)
    5. record what the ACL change did and tell each newly blocked group once    (one transaction)

The nightly close runs it, and the poll every SERVERLESS_CHECK_MINUTES. Billing lags by hours,
so a group can overrun a cap by what it used in that lag: the README says how to size caps.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

from databricks.teachinglab.adapters.ledger import repository as ledger
from databricks.teachinglab.core import accounting as acc
from databricks.teachinglab.core.errors import Failed
from databricks.teachinglab.core.messages import dedupe_key
from databricks.teachinglab.core.serverless import BillingRecord, Freshness, Standing, book, standing, week_start
from databricks.teachinglab.core.settings import Settings
from databricks.teachinglab.services.context import JobContext

logger = logging.getLogger(__name__)
CHECKED = "serverless_checked"   # LabFact: when the bill was last read
TRIED = "serverless_tried"       # LabFact: when a read was last tried (a failing warehouse is not retried every poll)

# system.billing.usage (docs "Billable usage system table reference"; "Monitor the cost of
# serverless compute"), joined to system.billing.list_prices for each record's list price. Read by
# ingestion date (a DATE: no session time zone involved), from the latest one booked: records are
# ingested over a day, and one read twice is kept once. Times travel as epoch seconds.
STATEMENT = """
SELECT u.record_id,
       u.identity_metadata.run_as AS run_as,
       unix_timestamp(u.usage_start_time) AS start_s,
       unix_timestamp(u.usage_end_time) AS end_s,
       CAST(u.usage_quantity AS DOUBLE) AS dbus,
       u.record_type,
       CAST(u.ingestion_date AS STRING) AS ingestion_date,
       u.usage_metadata.notebook_id AS notebook_id,
       u.billing_origin_product AS product,
       CAST(p.pricing.default AS DOUBLE) AS usd_per_dbu
FROM system.billing.usage u
LEFT JOIN system.billing.list_prices p
  ON p.sku_name = u.sku_name AND p.cloud = u.cloud AND p.usage_unit = u.usage_unit
 AND u.usage_end_time >= p.price_start_time
 AND (p.price_end_time IS NULL OR u.usage_end_time < p.price_end_time)
WHERE u.usage_unit = 'DBU'
  AND u.product_features.is_serverless
  AND u.workspace_id = :workspace_id
  AND u.ingestion_date >= CAST(:since AS DATE)
"""


@dataclass
class ServerlessReport:
    read: int = 0                     # records the bill returned
    new: int = 0                      # of which not booked before
    error: str | None = None          # why the bill was not read (the rest still ran)
    standings: list[Standing] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    reapplied: list[str] = field(default_factory=list)
    lifted: list[str] = field(default_factory=list)
    failures: list[tuple[str, Failed]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)   # what the admin must fix (ids missing, users' CAN_USE)


def due(settings: Settings, now: datetime) -> bool:
    """Whether the poll reads the bill this run: SERVERLESS_CHECK_MINUTES since the last read."""
    every = settings.workspace.serverless_check_minutes
    if not every or not settings.workspace.warehouse_id:
        return False
    last = max((f[1] for f in (ledger.fact(CHECKED), ledger.fact(TRIED)) if f), default=None)
    return last is None or now - last >= timedelta(minutes=every) - timedelta(seconds=30)


def freshness() -> Freshness:
    last = ledger.fact(CHECKED)
    return Freshness(ledger.serverless_data_until(), last[1] if last else None)


def semester_bounds(settings: Settings) -> tuple[date | None, date | None]:
    caps = settings.quota.the_policy.caps
    return caps.semester_start or settings.quota.semester_start, caps.semester_end


def standings(settings: Settings, today: date, groups=None) -> list[Standing]:
    """Every course group's serverless use as of `today` (those with use or a cap)."""
    policy = settings.quota.the_policy
    start, end = semester_bounds(settings)
    first = min(d for d in (start, week_start(today)) if d is not None)
    by_group: dict[str, dict[date, float]] = {}
    for d in ledger.serverless_days(first, today):
        if d.group_name:
            by_group.setdefault(d.group_name, {})[d.day] = d.dbu
    names = set(by_group) | set(groups or ()) | set(policy.serverless_groups)
    return [standing(g, policy.serverless_for(g), by_group.get(g, {}), today, semester_start=start,
                     semester_end=end) for g in sorted(names)]


def course_members(ctx: JobContext) -> tuple[dict[str, str], dict[str, list[str]], list[tuple[str, Failed]]]:
    """(identity -> course group, group -> its members' user names, failures). The course groups
    are those owning a lab cluster (the ledger's), never what a student's cluster claims."""
    groups = sorted(set(ledger.home_clusters().values()))
    group_of: dict[str, str] = {}
    members: dict[str, list[str]] = {}
    failures = []
    for name, found in ctx.parallel(ctx.workspace.group, groups):
        if isinstance(found, Failed):
            failures.append((f"(the members of group {name})", found))
            continue
        members[name] = [p.user_name for p in found.members] if found else []
        for p in (found.members if found else ()):
            for key in {p.user_name.lower(), (p.email or "").lower()} - {""}:
                if key in group_of and group_of[key] != name:
                    logger.warning("%s is in course groups %s and %s; serverless use is booked to %s", key,
                                   group_of[key], name, min(group_of[key], name))
                group_of[key] = min(group_of.get(key, name), name)
    return group_of, members, failures


def read_bill(ctx: JobContext, now: datetime, group_of: dict[str, str], report: ServerlessReport) -> None:
    from databricks.teachinglab.services.billing import run_statement
    tz = ctx.settings.quota.timezone
    since = ledger.serverless_since()
    if since is None:  # the first read: from the semester's start, else the week before the lab began
        start, _ = semester_bounds(ctx.settings)
        seen = ledger.first_seen()
        since = start or (acc.local_day(seen, tz) if seen else acc.local_day(now, tz)) - timedelta(days=7)
    with ledger.transaction():
        ledger.set_fact(TRIED, "{}", now)
    budget = ctx.settings.workspace.warehouse_wait_seconds
    # In the poll the bill must never cost the poll its deadline (remaining() is inf in the close).
    budget = min(budget, max(0.0, ctx.deadline.remaining() - 5))
    result = run_statement(ctx, STATEMENT, {"since": since.isoformat()}, what="serverless usage",
                           budget_seconds=budget)
    if isinstance(result, str):
        report.error = result
        return
    records = []
    for row in result.rows:
        try:
            start, end = (datetime.fromtimestamp(int(float(v)), tz=timezone.utc) for v in (row[2], row[3]))
            records.append(BillingRecord(str(row[0]), row[1], start, max(start, end), float(row[4]),
                                         str(row[5] or "ORIGINAL"), date.fromisoformat(row[6]) if row[6] else None,
                                         row[7], row[8], float(row[9]) if row[9] not in (None, "") else None))
        except (TypeError, ValueError, IndexError, OverflowError):
            logger.warning("serverless billing row %r not understood; left out", row)
    prices = ctx.settings.quota.prices
    booked = book(records, group_of, tz, prices.serverless_dbu_price if prices else None)
    with ledger.transaction():
        report.read, report.new = len(records), ledger.save_serverless(booked, now)
        ledger.set_fact(CHECKED, json.dumps({"records": len(records)}), now)
    for b in booked:
        if b.group is None and b.record.dbu:
            logger.info("serverless record %s: %s used %.4f DBU on %s (%s) and is in no course group: reported, "
                        "not counted to a group", b.record.record_id, b.record.run_as or "(no run_as)",
                        b.record.dbu, b.day, b.record.product or "?")
    logger.info("serverless: %d record(s) read since %s, %d new", report.read, since, report.new)


def check_serverless(ctx: JobContext, now: datetime, *, read: bool = True) -> ServerlessReport:
    """Read the bill (when a warehouse is set and `read`), then enforce each group's allowance."""
    report = ServerlessReport()
    group_of, members, failures = course_members(ctx)
    report.failures += failures
    if read and ctx.settings.workspace.warehouse_id:
        if failures:  # booking now would put their students' use under no group, for good
            report.error = "serverless use not read: the members of some course groups could not be read"
            logger.error("%s; the next run tries again", report.error)
        else:
            read_bill(ctx, now, group_of, report)
    elif read:
        report.error = "serverless use not read: DATABRICKS_WAREHOUSE_ID is not set"
    enforce(ctx, now, members, report)
    return report


def enforce(ctx: JobContext, now: datetime, members: dict[str, list[str]], report: ServerlessReport) -> None:
    settings = ctx.settings
    tz = settings.quota.timezone
    today = acc.local_day(now, tz)
    report.standings = standings(settings, today, members)
    spent = {s.group: s for s in report.standings if s.spent}
    active = ledger.serverless_blocks()
    lifting = [g for g in active if g not in spent]
    for s in report.standings:
        logger.log(logging.INFO if s.spent else logging.DEBUG,
                   "serverless group=%s today %.4f week %.4f semester %.4f DBU%s", s.group, s.today, s.week,
                   s.semester, f": {s.spent} cap spent ({s.used:.4f}/{s.limit:g} DBU), off until "
                                   f"{s.returns_on or 'the end of the semester'}" if s.spent else "")
    objects = settings.workspace.serverless_objects
    if not objects:
        if spent:
            report.problems.append(
                "serverless allowance spent by " + ", ".join(sorted(spent)) + ", but SERVERLESS_INTERACTIVE_COMPUTE_ID "
                "and SERVERLESS_AUTOMATED_COMPUTE_ID are not set, so nothing can be switched off: set them (README, "
                "'Serverless')")
            logger.error("%s", report.problems[-1])
        return
    revoke = [("group_name", g) for g in sorted(spent)]
    revoke += [("user_name", u) for g in sorted(spent) for u in members.get(g, [])]  # a direct grant too
    grant = [("group_name", g) for g in sorted(lifting)]
    changed: dict[str, set[str]] = {"revoked": set(), "granted": set()}
    ok = True

    def change(obj: tuple[str, str]):
        return ctx.workspace.change_serverless_acl(obj[1], grant=grant, revoke=revoke)

    for (label, oid), result in ctx.parallel(change, objects):
        if isinstance(result, Failed):
            ok = False
            report.failures.append((f"(serverless compute for {label}, {oid})", result))
            logger.error("serverless compute %s (%s): its permissions could not be changed (%s); the next run "
                         "tries again", label, oid, result)
            continue
        granted, revoked, holders = result
        changed["granted"] |= {n for _, n in granted}
        changed["revoked"] |= {n for _, n in revoked}
        if spent and ("group_name", "users") in holders:
            report.problems.append(f"group users (every workspace user) holds CAN_USE on serverless compute for "
                                   f"{label} ({oid}), so taking it from " + ", ".join(sorted(spent)) + " changes "
                                   "nothing: run --create_from_csv, or remove it in Settings > Compute > Serverless "
                                   "compute > Permissions")
            logger.error("%s", report.problems[-1])
    with ledger.transaction():
        for g, s in sorted(spent.items()):
            if g in active and g in changed["revoked"]:
                report.reapplied.append(g)
                logger.warning("serverless group=%s: CAN_USE was given back outside the lab while its %s allowance "
                               "is spent; taken away again", g, s.spent)
            if not ok and g not in active:
                continue  # recorded once every object is closed to it
            if g not in active:
                report.blocked.append(g)
                logger.info("serverless group=%s blocked: %s cap %.4f/%g DBU; access returns %s", g, s.spent,
                            s.used, s.limit, s.returns_on or "after the semester")
            ledger.mark_serverless_blocked(g, s.spent, s.used, s.limit, s.returns_on, now)
            _tell(ctx, g, s, now)
        for g in lifting:
            if ok:
                ledger.mark_serverless_lifted(g, now)
                report.lifted.append(g)
                logger.info("serverless group=%s: its allowance refilled; CAN_USE given back", g)


def _tell(ctx: JobContext, group: str, s: Standing, now: datetime) -> None:
    """Once per group, cap and period (the key), with the members in To and the admin in copy."""
    from databricks.teachinglab.adapters.mail.outbox import enqueue
    from databricks.teachinglab.adapters.mail.render import render
    from databricks.teachinglab.services.status import status_link
    tz = ctx.settings.quota.timezone
    today = acc.local_day(now, tz)
    period_start = {"daily": today, "weekly": week_start(today),
                    "semester": semester_bounds(ctx.settings)[0] or today}[s.spent]
    key = dedupe_key("serverless_blocked", group, f"{s.spent}:{period_start}")
    if ledger.message_exists(key):
        return
    try:
        found = ctx.workspace.group(group)
        to = [p.email for p in found.members] if found else []
    except Exception as err:  # noqa: BLE001 - the admin is told instead; the block holds
        logger.error("serverless group=%s: its members could not be read for the notice (%s); the admin is told",
                     group, err)
        to = []
    admin = [ctx.settings.mail.admin_email] if ctx.settings.mail.admin_email else []
    period = {"daily": "today", "weekly": f"this week (since {week_start(today):%A %d %b})",
              "semester": "this semester"}[s.spent]
    returns = (acc.day_start(s.returns_on, tz).astimezone(tz).strftime("%A %d %b %Y, %H:%M %Z") + f" ({tz.key})"
               if s.returns_on else "the end of the semester")
    context = {"group": group, "cap": s.spent, "used": f"{s.used:.2f}", "limit": f"{s.limit:g}", "period": period,
               "returns": returns, "freshness": freshness().describe(tz), "course": ctx.settings.course_label,
               "contact": ctx.settings.mail.admin_email or "your course staff", "tz_name": tz.key,
               "status_url": status_link(ctx.settings, group, now)}
    rendered = render("serverless_blocked", context, templates_dir=ctx.settings.mail.templates_dir)
    enqueue(kind="serverless_blocked", key=key, to=to or admin, cc=admin if to else [], rendered=rendered, now=now)


def provision_access(ctx: JobContext, groups: list[str], *, blocked: set[str], dry_run: bool) -> list[str]:
    """--create_from_csv: CAN_USE on each serverless compute object for the course groups (a group
    whose allowance is spent, `blocked`, stays off), none for `users`; lab principals keep theirs."""
    objects = ctx.settings.workspace.serverless_objects
    if not objects:
        return []
    wanted = [("group_name", g) for g in groups if g not in blocked]
    lines = []
    for label, oid in objects:
        acl = ctx.workspace.serverless_acl(oid)
        held = {(e.principal_type, e.principal) for e in acl if not e.inherited and e.level == "CAN_USE"}
        grant = [p for p in wanted if p not in held]
        revoke = [("group_name", "users")] if ("group_name", "users") in held else []
        for _, g in grant:
            lines.append(f"{'would grant' if dry_run else 'granted'} CAN_USE on serverless compute for {label} "
                         f"({oid}) to {g}")
        if revoke:
            lines.append(f"{'would remove' if dry_run else 'removed'} CAN_USE on serverless compute for {label} "
                         f"({oid}) from users (every workspace user)")
        if not dry_run and (grant or revoke):
            ctx.workspace.change_serverless_acl(oid, grant=grant, revoke=revoke)  # PUT of the rest: idempotent
    return lines



def serverless_job(ctx: JobContext, now: datetime, job: str) -> ServerlessReport:
    """The check as a job's step: whatever fails is the admin's alert, never the job's end."""
    import traceback
    from databricks.teachinglab.core.errors import Expected
    from databricks.teachinglab.services.alerts import queue_failure_alert
    try:
        report = check_serverless(ctx, now)
    except Exception as err:  # noqa: BLE001 - a deadline, the ledger's members query: said, retried next run
        logger.error("serverless check failed (%s: %s); the next run tries again", type(err).__name__, err)
        report = ServerlessReport(error=f"{type(err).__name__}: {err}")
        report.failures.append(("(the serverless check)", Failed(err, traceback.format_exc())))
    items = report.failures + [("(serverless compute)", Failed(Expected(p))) for p in report.problems]
    if items:
        with ledger.transaction():
            queue_failure_alert(ctx, job, items, now)
    return report


def plan(settings: Settings, now: datetime) -> list[str]:
    """What the check would do from what the ledger knows (the bill is not read: --dry-run)."""
    today = acc.local_day(now, settings.quota.timezone)
    active = ledger.serverless_blocks()
    lines = []
    if settings.workspace.warehouse_id:
        lines.append(f"would read serverless use from system.billing.usage (warehouse {settings.workspace.warehouse_id}) "
                     f"ingested since {ledger.serverless_since() or 'the semester start'}; from what is booked already:")
    for s in standings(settings, today):
        if s.spent and s.group not in active:
            lines.append(f"  would switch serverless off for {s.group}: {s.spent} cap {s.used:.2f}/{s.limit:g} DBU")
        elif s.spent:
            lines.append(f"  would keep serverless off for {s.group} ({s.spent} cap) and take back any CAN_USE given "
                         "outside the lab")
        elif s.group in active:
            lines.append(f"  would give serverless back to {s.group}: its {active[s.group].cap} allowance refilled")
    return lines
