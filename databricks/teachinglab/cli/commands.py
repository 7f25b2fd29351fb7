"""The admin CLI's ledger, mail and workspace-view commands. Each declares itself to the
registry; the dispatcher (cli/admin.py) has read the clock and wires what it declared."""
from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import sys
from datetime import date
from pathlib import Path

from databricks.teachinglab.adapters.ledger import repository as ledger
from databricks.teachinglab.adapters.mail.outbox import retry as requeue
from databricks.teachinglab.adapters.report_files import queue_report, report_day_default, write_files
from databricks.teachinglab.cli.config import EMAIL_RE, REPO_ROOT, machine_timezone
from databricks.teachinglab.cli.registry import Invocation, command
from databricks.teachinglab.cli.wiring import open_ledger_for
from databricks.teachinglab.core.accounting import local_day
from databricks.teachinglab.core.errors import AdminError
from databricks.teachinglab.services import grants as admin
from databricks.teachinglab.services import trust
from databricks.teachinglab.services.audit import audit_workspace as audit
from databricks.teachinglab.services.poll import BLOCKED_LEVEL, RESTORED_LEVEL, run_poll
from databricks.teachinglab.services.reports import daily_report, preview_report

logger = logging.getLogger(__name__)


def table(headers: list[str], rows: list[list], out=None) -> None:
    out = out or sys.stdout
    cells = [[str(h) for h in headers]] + [["-" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip(), file=out)
        if n == 0:
            print("  ".join("-" * w for w in widths), file=out)


def _json(data) -> None:
    json.dump(data, sys.stdout, indent=2, ensure_ascii=False)
    print()


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _quota(text: str) -> tuple[float, float] | str:
    if text.strip().lower() == "exempt":
        return "exempt"
    try:
        warn, hard = (float(x) for x in text.split(":"))
        return warn, hard
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not WARN:MAX in the quota unit, e.g. 300:360 "
                                         "(minutes) or 4:6 (DBU), nor exempt") from None


def _amount(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number in the quota unit, e.g. 30 (minutes) "
                                         "or 1.5 (DBU)") from None


# -- workspace views ---------------------------------------------------------------------------
@command("print_clusters", "list clusters with state and group", workspace=True, ledger=True)
def print_clusters(inv: Invocation) -> int:
    ctx = inv.context()
    clusters = ctx.workspace.list_clusters()
    usage = {u.cluster_id: u for u in admin.cluster_usage(inv.settings, inv.now)}
    rows = []
    for c in sorted(clusters, key=lambda c: c.name):
        known = usage.get(c.cluster_id)  # who it counts to is the ledger's word (a poll decides it)
        rows.append({"cluster_id": c.cluster_id, "cluster_name": c.name, "state": c.state,
                     "group": known.group if known else None, "exempt": bool(known and known.exempt),
                     "creator": c.creator, "cluster_kind": known.cluster_kind if known else None,
                     "tags": c.custom_tags, "used_minutes_today": known.used_seconds // 60 if known else None})
    if inv.args.json:
        _json(rows)
    else:
        table(["cluster", "id", "state", "group", "used today (min)", "tags"],
              [[r["cluster_name"], r["cluster_id"], r["state"], r["group"], r["used_minutes_today"],
                ",".join(f"{k}={v}" for k, v in sorted(r["tags"].items()))] for r in rows])
    return 0


@command("print_user_groups", "list groups and their members", workspace=True, ledger=True)
def print_user_groups(inv: Invocation) -> int:
    groups = sorted(inv.context().workspace.groups(), key=lambda g: g.name)
    if inv.args.json:
        _json([{"group": g.name, "id": g.group_id,
                "members": [{"user_name": p.user_name, "email": p.email} for p in g.members]}
               for g in groups])
        return 0
    for g in groups:
        print(f"{g.name} ({len(g.members)} member{'s' if len(g.members) != 1 else ''})")
        for p in g.members:
            print(f"    {p.email}")
    return 0


@command("audit_workspace", "list every way a student can run compute outside the quota (policies, "
         "entitlements, cluster permissions, their own clusters, serverless), with the setting that closes "
         "each; exit 1 if any (--json for a JSON array)", workspace=True, ledger=True)
def audit_workspace(inv: Invocation) -> int:
    """Exit 0 when nothing was found, 1 when something was (2 is bad configuration)."""
    findings = audit(inv.context(), inv.now, known_home=ledger.home_clusters())
    if inv.args.json:
        _json([f.as_json() for f in findings])
    elif findings:
        table(["kind", "principal", "object", "fix"], [[f.kind, f.principal, f.object, f.fix] for f in findings])
        print(f"\n{len(findings)} way(s) to run compute outside the quota; each line says what closes it.")
    else:
        print("nothing found: students can run compute only on the clusters the quota controls")
    return 1 if findings else 0


# -- ledger views ------------------------------------------------------------------------------
@command("cluster_usage", "today's usage per cluster as of the last poll (a table, or --json)", ledger=True)
def cluster_usage(inv: Invocation) -> int:
    inv.context()
    lines = admin.cluster_usage(inv.settings, inv.now)
    if inv.args.json:
        _json([{"course": inv.settings.course_label, **line.as_json()} for line in lines])
        return 0
    unit = inv.settings.quota.unit
    quota_columns = [] if unit.name == "minutes" else [f"group ({unit.symbol})"]
    table(["cluster", "group", "used (min)", *quota_columns, f"warn ({unit.symbol})", f"max ({unit.symbol})",
           "stops at", "flags", "as of"],
          [[u.cluster_name, u.group, f"{u.used_seconds / 60:.1f}",
            *([] if unit.name == "minutes" else [f"{u.group_used:.2f}"]), f"{u.warn_limit:g}", f"{u.max_limit:g}",
            u.limit_at[11:16] if u.limit_at else None,
            ",".join(n for n, on in (("exempt", u.exempt), ("warned", u.warned), ("blocked", u.blocked),
                                     ("estimate", u.estimated)) if on) or "", u.as_of]
           for u in lines])
    if not lines:
        print("(no clusters in the ledger yet: run python -m databricks.poll_clusters)")
    return 0


@command("history", "archived usage per cluster and closed day (--from, --to, --json)", ledger=True)
def history(inv: Invocation) -> int:
    inv.context()
    rows = admin.history(inv.args.date_from, inv.args.date_to)
    if inv.args.json:
        _json([{"course": inv.settings.course_label, **row} for row in rows])
        return 0
    table(["date", "cluster", "group", "used (min)", "max", "sessions", "flags"],
          [[r["date"], r["cluster_name"], r["group"], f"{r['used_seconds'] / 60:.1f}",
            r["max_minutes"] if r["quota_unit"] == "minutes" else f"{r['max_limit']:g} {r['quota_unit'].upper()}",
            r["sessions"], ",".join(k for k in ("exempt", "warned", "terminated", "blocked", "estimated") if r[k])]
           for r in rows])
    return 0


@command("serverless_usage", "serverless DBUs per course group and local day, as billing has shown them, with "
         "when each became known, the allowance and any block (--from, --to, --json)", ledger=True)
def serverless_usage(inv: Invocation) -> int:
    from databricks.teachinglab.services import serverless
    inv.context()
    tz = inv.settings.quota.timezone
    rows = ledger.serverless_days(inv.args.date_from, inv.args.date_to)
    if inv.args.json:
        _json([{"course": inv.settings.course_label, "group": d.group_name, "date": d.day.isoformat(),
                "dbu": d.dbu, "usd": d.usd, "known_at": d.known_at.astimezone(tz).isoformat(),
                "records": d.records} for d in rows])
        return 0
    print(serverless.freshness().describe(tz))
    table(["date", "group", "DBU", "USD", "known at", "records"],
          [[d.day, d.group_name or "(no course group)", f"{d.dbu:.3f}", "" if d.usd is None else f"{d.usd:.2f}",
            d.known_at.astimezone(tz).strftime("%m-%d %H:%M"), d.records] for d in rows])
    today = local_day(inv.now, tz)
    blocks = ledger.serverless_blocks()
    for s in serverless.standings(inv.settings, today):
        block = blocks.get(s.group)
        print(f"{s.group}: today {s.today:.3f}, this week {s.week:.3f}, this semester {s.semester:.3f} DBU"
              + (f"; serverless off since {block.blocked_at.astimezone(tz):%m-%d %H:%M} ({block.cap} cap "
                 f"{block.used:.2f}/{block.limit:g} DBU), back {block.returns_on or 'after the semester'}"
                 if block else ""))
    return 0


@command("outbox", "list queued, sent and failed messages", ledger=True)
def outbox(inv: Invocation) -> int:
    inv.context()
    tz = inv.settings.quota.timezone
    rows = admin.outbox_lines()
    if inv.args.json:
        _json([{"id": m.id, "status": m.status, "event": m.event, "to": m.to_addrs, "subject": m.subject,
                "attempts": m.attempts, "created_at": m.created_at.astimezone(tz).isoformat(),
                "last_error": m.last_error} for m in rows])
        return 0
    table(["id", "status", "event", "to", "attempts", "created", "subject / error"],
          [[m.id, m.status, m.event, m.to_addrs[:40], m.attempts,
            m.created_at.astimezone(tz).strftime("%m-%d %H:%M"),
            (m.last_error if m.status == "failed" else m.subject)[:70]] for m in rows])
    return 0


def crontab_lines(tz_name: str, root: Path, machine_tz: str, interval_minutes: int = 1,
                  zones: tuple[str, ...] = ()) -> list[str]:
    """The lab's cron lines: days are local days in QUOTA_TIMEZONE, so cron runs in that zone.
    Courses in several zones (`zones`) have no one 00:07: the close then runs at :07 every hour,
    and closes each course's day in the first run after that course's local midnight (a run
    with nothing to close only brings usage up to date, like a poll)."""
    if len(zones) > 1:
        return ["# Generated by: python -m databricks.main --crontab (courses in " + ", ".join(zones) + ");",
                "#   install with: python -m databricks.main --crontab | crontab -",
                "# The courses' days end at different times, so the close runs at :07 every hour and closes each",
                "# course's day in the first run after that course's local midnight (at most 67 minutes late).",
                *_poll_lines(interval_minutes, root),
                f"7 * * * *    {root / 'scripts' / 'end_of_day_ops.sh'}"]
    lines = [f"# Generated by: python -m databricks.main --crontab (QUOTA_TIMEZONE={tz_name}); install with",
             "#   python -m databricks.main --crontab | crontab -",
             "# CRON_TZ makes cronie run these lines in the course's zone. Debian's and Ubuntu's cron ignore",
             f"# it: there, give the VM the same zone (sudo timedatectl set-timezone {tz_name}). If the close",
             "# runs late anyway, the first poll of a new local day lifts yesterday's blocks.",
             f"CRON_TZ={tz_name}",
             *_poll_lines(interval_minutes, root),
             f"# Close the day at 00:07 {tz_name} time, after the midnight poll.",
             f"7 0 * * *    {root / 'scripts' / 'end_of_day_ops.sh'}"]
    if machine_tz != tz_name:
        lines.insert(5, f"# NOTE: this machine's zone is {machine_tz}, not {tz_name}.")
    return lines


def _poll_lines(interval_minutes: int, root: Path) -> list[str]:
    poll = root / "scripts" / "periodic_poll.sh"
    if interval_minutes == 1:
        return ["# Poll every minute (POLL_INTERVAL_MINUTES=1): a group is stopped within a minute of its quota;",
                "# a run reads events only for clusters that changed or may cross a quota, so most runs make one",
                "# API call. The wrapper stops a poll after 30 s (its own deadline is 25 s).",
                f"* * * * *    {poll}"]
    return [f"# Poll every {interval_minutes} minutes (POLL_INTERVAL_MINUTES); the wrapper stops a poll after 30 s.",
            f"*/{interval_minutes} * * * * {poll}"]


@command("crontab", "print the cron lines for this checkout, in QUOTA_TIMEZONE (| crontab - installs them)")
def crontab(inv: Invocation) -> int:
    for line in crontab_lines(inv.settings.quota.tz_name, REPO_ROOT, machine_timezone(os.environ),
                              inv.settings.workspace.poll_interval_seconds // 60, zones=inv.zones):
        print(line)
    return 0


# -- changes -----------------------------------------------------------------------------------
@command("test_email", "send a test message (default: ADMIN_EMAIL) through EMAIL_TRANSPORT",
         flag={"nargs": "?", "const": "", "metavar": "ADDRESS"}, changes=True, ledger=True)
def test_email(inv: Invocation) -> int:
    mail = inv.settings.mail
    to = inv.args.test_email or mail.admin_email
    if not to:
        raise AdminError("--test_email needs an ADDRESS, or ADMIN_EMAIL set.")
    if not EMAIL_RE.match(to):
        raise AdminError(f"--test_email {to!r} is not an email address (e.g. --test_email you@university.edu).")
    if inv.args.dry_run:
        print(f"would send a test message to {to} via {mail.transport} from {mail.sender}; "
              "nothing sent (--dry-run)")
        return 0
    ctx = inv.context()
    with ledger.transaction():
        key = admin.queue_test_email(inv.settings, to, inv.now)
    result = ctx.deliver(inv.now)
    print(f"test message {key} to {to} via {mail.transport}: "
          f"{'sent' if result.sent else 'NOT sent, see --outbox'}")
    return 0 if result.sent else 1


@command("grant", "extra quota today for --cluster, in QUOTA_UNIT (minutes, DBU or USD); unblocks it if "
         "the new limit allows; with --until DATE, a top-up to the group's bank usable until that day", flag={"type": _amount, "metavar": "AMOUNT"}, changes=True, workspace=True, ledger=True, locked=True,
         needs=("cluster",))
def grant(inv: Invocation) -> int:
    args, now = inv.args, inv.now
    ctx = inv.context()
    cluster = admin.find_cluster(args.cluster)
    what = "today" if args.until is None else f"to the bank of {cluster.group_name or cluster.name}, usable until {args.until}"
    if args.dry_run:
        print(f"would grant {args.grant:g} {inv.settings.quota.unit.symbol} {what} via {cluster.name}; nothing changed")
        return 0
    with ledger.transaction():
        admin.grant(inv.settings, cluster, args.grant, _who(), args.reason, now, until=args.until)
    report = run_poll(ctx, now)
    line = next(u for u in admin.cluster_usage(inv.settings, now) if u.cluster_id == cluster.cluster_id)
    state = "still blocked" if line.blocked else "not blocked"
    if not line.blocked and cluster.group_name and cluster.group_source != "creator":
        # The ledger is not proof: check the cluster's real ACL, and lift a block it does not know.
        level = ctx.workspace.group_level(cluster.cluster_id, cluster.group_name)
        if level == BLOCKED_LEVEL:
            ctx.workspace.set_group_level(cluster.cluster_id, cluster.group_name, RESTORED_LEVEL)
            state = f"not blocked (the workspace had {cluster.group_name} at {level}, outside the ledger: " \
                    f"restored to {RESTORED_LEVEL})"
    unit = inv.settings.quota.unit
    print(f"{cluster.name}: limit today is now {line.max_limit:g} {unit.symbol}, used "
          f"{_used(line, unit)}, {state}")
    return 1 if report.failed else 0


def _used(line, unit) -> str:
    minutes = f"{line.used_seconds / 60:.1f} min"
    return minutes if unit.name == "minutes" else f"{line.group_used:.2f} {unit.symbol} by the group ({minutes} here)"


@command("set_quota", "a lasting per-cluster quota for --cluster, per day in QUOTA_UNIT (minutes, DBU or USD); "
         "'exempt' (with --reason) exempts the cluster from every quota, recorded with who and why",
         flag={"type": _quota, "metavar": "WARN:MAX|exempt"}, changes=True, ledger=True, needs=("cluster",))
def set_quota(inv: Invocation) -> int:
    inv.context()
    cluster = admin.find_cluster(inv.args.cluster)
    if inv.args.set_quota == "exempt":
        if inv.args.dry_run:
            print(f"would exempt {cluster.name} ({cluster.cluster_id}) from every quota; nothing changed")
            return 0
        admin.exempt(cluster, _who(), inv.args.reason, inv.now)
        print(f"{cluster.name}: exempt from every quota from the next poll (by {_who()}: {inv.args.reason.strip()}); "
              "--clear_quota ends it")
        return 0
    warn, hard = inv.args.set_quota
    symbol = inv.settings.quota.unit.symbol
    if inv.args.dry_run:
        print(f"would set {cluster.name}'s quota to warn {warn:g} / max {hard:g} {symbol}; nothing changed")
        return 0
    admin.set_quota(inv.settings, cluster, warn, hard, _who(), inv.now)
    print(f"{cluster.name}: warn at {warn:g} {symbol}, stop at {hard:g} {symbol} per day (from the next poll)")
    return 0


@command("clear_quota", "remove --cluster's own quota and its exemption", changes=True, ledger=True,
         needs=("cluster",))
def clear_quota(inv: Invocation) -> int:
    inv.context()
    cluster = admin.find_cluster(inv.args.cluster)
    removed = 0 if inv.args.dry_run else admin.clear_quota(cluster)
    print(f"{cluster.name}: {'own quota or exemption removed' if removed else 'had no own quota or exemption'}; "
          "defaults apply"
          + (" (dry run)" if inv.args.dry_run else ""))
    return 0


@command("accept_tags", "make a lab cluster's current group and quota tags the ones that decide (they are "
         "recorded when the cluster is first seen; a later change is only reported)", changes=True, workspace=True,
         ledger=True, locked=True, needs=("cluster",))
def accept_tags(inv: Invocation) -> int:
    ctx = inv.context()
    cluster = admin.find_cluster(inv.args.cluster)
    lines = trust.accept_tags(ctx, cluster, dry_run=inv.args.dry_run)
    for line in lines:
        print(("would change " if inv.args.dry_run else "") + line)
    print(f"{cluster.name}: " + ("nothing changed (--dry-run)" if inv.args.dry_run else
                                 "the tags as they are now decide from the next poll"))
    return 0


@command("init_ledger", "create a new, empty ledger at CLUSTER_UPTIMES_DB, deliberately (the jobs create one "
         "only on this account's first run, and refuse when a ledger in use disappears)", changes=True)
def init_ledger(inv: Invocation) -> int:
    settings = inv.settings
    if settings.ledger.database_url:
        raise AdminError("--init_ledger is for the SQLite ledger (CLUSTER_UPTIMES_DB); DATABASE_URL is set")
    path = settings.ledger.db_path
    if path.exists() and path.stat().st_size > 0:
        raise AdminError(f"{path} exists: nothing done. To start over, move it away first "
                         f"(mv {path} {path}.old), then run --init_ledger again.")
    if inv.args.dry_run:
        print(f"would create a new, empty ledger at {path}; nothing done (--dry-run)")
        return 0
    open_ledger_for(settings, inv.now, init=True).close()
    print(f"created a new, empty ledger at {path} (mode 600)")
    return 0


@command("retry", "send failed messages again", flag={"metavar": "ID|all"}, changes=True, ledger=True,
         locked=True)
def retry(inv: Invocation) -> int:
    ids = _message_ids("retry", inv.args.retry, "all")
    ctx = inv.context()
    if ids is not None:
        _check_retry_ids(ids)
    if inv.args.dry_run:
        failed = ledger.messages(ids, status="failed")
        for m in reversed(failed):
            print(f"would queue again: #{m.id} {m.event} to {m.to_addrs}: {m.subject}")
        print(f"{len(failed)} message(s) would be queued again and sent; nothing done (--dry-run)")
        return 0
    count = requeue(ids, inv.now)
    print(f"{count} message(s) queued again")
    result = ctx.deliver(inv.now)
    print(f"sent {result.sent}, still failing {result.retrying + result.failed}")
    return 0 if not result.failed else 1


@command("drop_message", "take a queued or failed message out of the outbox for good (ID, comma-separated IDs, or "
         "all-failed); it is never sent, and never queued again", flag={"metavar": "ID|all-failed"}, changes=True,
         ledger=True, locked=True)
def drop_message(inv: Invocation) -> int:
    ids = _message_ids("drop_message", inv.args.drop_message, "all-failed")
    inv.context()
    chosen = ledger.messages(ids) if ids is not None else ledger.messages(status="failed")
    if ids is not None:
        unknown = sorted(set(ids) - {m.id for m in chosen})
        if unknown:
            raise AdminError(f"--drop_message: no message {', '.join(map(str, unknown))} in the outbox; see --outbox")
        done = [f"#{m.id} ({m.status})" for m in chosen if m.status not in ("pending", "accepted", "failed")]
        if done:
            raise AdminError(f"--drop_message: {', '.join(done)} is not queued or failed; nothing to drop")
    for m in sorted(chosen, key=lambda m: m.id):
        print(f"{'would drop' if inv.args.dry_run else 'dropped'}: #{m.id} {m.status} {m.event} to {m.to_addrs}: "
              f"{m.subject[:80]}")
    if inv.args.dry_run:
        print(f"{len(chosen)} message(s) would be dropped; nothing done (--dry-run)")
        return 0
    count = ledger.drop_messages(ids)
    print(f"{count} message(s) dropped")
    return 0


def _message_ids(flag: str, text: str, every: str) -> list[int] | None:
    """Outbox ids from "3" or "3,4", or None for `every` (all of them)."""
    if text == every:
        return None
    try:
        return [int(x) for x in text.split(",")]
    except ValueError:
        raise AdminError(f"--{flag} {text!r}: give a message id from --outbox (or several, comma-separated), "
                         f"or {every}") from None


def _check_retry_ids(ids: list[int]) -> None:
    found = {m.id: m for m in ledger.messages(ids)}
    unknown = [i for i in ids if i not in found]
    if unknown:
        raise AdminError(f"--retry: no message {', '.join(map(str, unknown))} in the outbox; see --outbox")
    done = [f"#{m.id} ({m.status})" for m in sorted(found.values(), key=lambda m: m.id) if m.status != "failed"]
    if done:
        raise AdminError(f"--retry: {', '.join(done)} did not fail; only failed messages are sent again "
                         "(pending ones go out on the next run)")


@command("report", "write report.html, report.csv and report.png for a closed day (--date, default "
         "yesterday) into --out; --send also emails it", changes=True, ledger=True)
def report(inv: Invocation) -> int:
    args, settings, now = inv.args, inv.settings, inv.now
    ctx = inv.context()
    day: date = args.report_date or report_day_default(now, settings.quota.timezone)
    out = Path(args.out or "report-out")
    if settings.course_id:  # several courses: each its own folder (report-out/bigdata/...)
        out = out / settings.course_id
    if args.report_date is None and ledger.closed_day(day) is None:
        today = local_day(now, settings.quota.timezone)
        built = preview_report(today, settings)
        print(f"{day} is not closed (the nightly close closes a day after its midnight); this is a PREVIEW "
              f"of {today} as of the last poll")
        if args.dry_run or args.send:
            print("a preview is never emailed" if args.send else "would write the preview; nothing done (--dry-run)")
            return 0 if not args.send else 2
        for path in write_files(built, settings, now, out):
            print(path)
        return 0
    if ledger.closed_day(day) is None:
        raise AdminError(f"{day} is not closed yet: run python -m databricks.end_of_day_operations "
                         "(days close after their midnight), or pick another --date.")
    built = daily_report(day, settings)
    if args.dry_run:
        print(f"would write report.html, report.csv and report.png for {day} into {out}"
              + (f" and email them to {settings.mail.report_recipient}" if args.send else "")
              + "; nothing done (--dry-run)")
        return 0
    for path in write_files(built, settings, now, out):
        print(path)
    if args.send:
        with ledger.transaction():
            queue_report(built, settings, now, subject_id=f"resend-{now.isoformat()}")
        result = ctx.deliver(now)
        print(f"report for {day} to {settings.mail.report_recipient}: "
              f"{'sent' if result.sent else 'queued, see --outbox'}")
        return 0 if result.sent else 1
    return 0

