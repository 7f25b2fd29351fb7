"""The admin CLI's commands: each reads the clock once, wires what it needs and prints."""
from __future__ import annotations

import getpass
import json
import logging
import sys

from . import admin
from .lab import Lab
from .ledger import open_ledger
from .runtime import run_locked, utcnow

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


def _ledger(settings):
    now = utcnow()
    open_ledger(db_path=settings.db_path, database_url=settings.database_url, now=now,
                guard=settings.ledger_guard())
    return now


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


# -- workspace views ---------------------------------------------------------------------------
def print_clusters(settings, args) -> int:
    now = utcnow()
    lab = Lab.open(settings, now)
    from .usage_sync import resolve_group
    clusters = lab.gateway.list_clusters()
    usage = {u.cluster_id: u for u in admin.cluster_usage(settings, now)}
    rows = []
    for c in sorted(clusters, key=lambda c: c.name):
        group, source = resolve_group(c, None, None)
        known = usage.get(c.cluster_id)
        rows.append({"cluster_id": c.cluster_id, "cluster_name": c.name, "state": c.state,
                     "group": (known.group if known else None) or group,
                     "exempt": c.exempt, "tags": c.custom_tags,
                     "used_minutes_today": known.used_seconds // 60 if known else None})
    if args.json:
        _json(rows)
    else:
        table(["cluster", "id", "state", "group", "used today (min)", "tags"],
              [[r["cluster_name"], r["cluster_id"], r["state"], r["group"], r["used_minutes_today"],
                ",".join(f"{k}={v}" for k, v in sorted(r["tags"].items()))] for r in rows])
    return 0


def print_user_groups(settings, args) -> int:
    lab = Lab.open(settings, utcnow())
    groups = sorted(lab.gateway.groups(), key=lambda g: g.name)
    if args.json:
        _json([{"group": g.name, "id": g.group_id,
                "members": [{"user_name": p.user_name, "email": p.email} for p in g.members]}
               for g in groups])
        return 0
    for g in groups:
        print(f"{g.name} ({len(g.members)} member{'s' if len(g.members) != 1 else ''})")
        for p in g.members:
            print(f"    {p.email}")
    return 0


def audit_workspace(settings, args) -> int:
    """Exit 0 when nothing was found, 1 when something was (2 is bad configuration)."""
    from .audit import audit_workspace as audit, known_home_clusters
    lab = Lab.open(settings, utcnow())
    findings = audit(lab, known_home=known_home_clusters())
    if args.json:
        _json([f.as_json() for f in findings])
    elif findings:
        table(["kind", "principal", "object", "fix"], [[f.kind, f.principal, f.object, f.fix] for f in findings])
        print(f"\n{len(findings)} way(s) to run compute outside the quota; each line says what closes it.")
    else:
        print("nothing found: students can run compute only on the clusters the quota controls")
    return 1 if findings else 0


# -- ledger views ------------------------------------------------------------------------------
def cluster_usage(settings, args) -> int:
    now = _ledger(settings)
    lines = admin.cluster_usage(settings, now)
    if args.json:
        _json([line.as_json() for line in lines])
        return 0
    table(["cluster", "group", "used (min)", "warn", "max", "flags", "as of"],
          [[u.cluster_name, u.group, f"{u.used_seconds / 60:.1f}", u.warn_minutes, u.max_minutes,
            ",".join(n for n, on in (("warned", u.warned), ("blocked", u.blocked),
                                     ("estimate", u.estimated)) if on) or "", u.as_of]
           for u in lines])
    if not lines:
        print("(no clusters in the ledger yet: run python -m databricks.poll_clusters)")
    return 0


def init_ledger(settings, args) -> int:
    if settings.database_url:
        raise admin.AdminError("--init_ledger is for the SQLite ledger (CLUSTER_UPTIMES_DB); DATABASE_URL is set")
    path = settings.db_path
    if path.exists() and path.stat().st_size > 0:
        raise admin.AdminError(f"{path} exists: nothing done. To start over, move it away first "
                               f"(mv {path} {path}.old), then run --init_ledger again.")
    if args.dry_run:
        print(f"would create a new, empty ledger at {path}; nothing done (--dry-run)")
        return 0
    open_ledger(db_path=path, database_url=None, now=utcnow(), guard=settings.ledger_guard(init=True)).close()
    print(f"created a new, empty ledger at {path} (mode 600)")
    return 0


def history(settings, args) -> int:
    _ledger(settings)
    rows = admin.history(settings, args.date_from, args.date_to)
    if args.json:
        _json(rows)
        return 0
    table(["date", "cluster", "group", "used (min)", "max", "sessions", "flags"],
          [[r["date"], r["cluster_name"], r["group"], f"{r['used_seconds'] / 60:.1f}", r["max_minutes"],
            r["sessions"], ",".join(k for k in ("warned", "terminated", "blocked", "estimated") if r[k])]
           for r in rows])
    return 0


def outbox(settings, args) -> int:
    _ledger(settings)
    tz = settings.timezone
    rows = admin.outbox_lines()
    if args.json:
        _json([{"id": m.id, "status": m.status, "event": m.event, "to": m.to_addrs, "subject": m.subject,
                "attempts": m.attempts, "created_at": m.created_at.astimezone(tz).isoformat(),
                "last_error": m.last_error} for m in rows])
        return 0
    table(["id", "status", "event", "to", "attempts", "created", "subject / error"],
          [[m.id, m.status, m.event, m.to_addrs[:40], m.attempts,
            m.created_at.astimezone(tz).strftime("%m-%d %H:%M"),
            (m.last_error if m.status == "failed" else m.subject)[:70]] for m in rows])
    return 0


# -- changes -----------------------------------------------------------------------------------
def retry(settings, args) -> int:
    from .outbox import retry as retry_failed
    now = utcnow()
    ids = None
    if args.retry != "all":
        try:
            ids = [int(x) for x in args.retry.split(",")]
        except ValueError:
            raise admin.AdminError(f"--retry {args.retry!r}: give a message id from --outbox, or 'all'") from None

    def body() -> int:
        lab = Lab.open(settings, now, gateway=_NoWorkspace())
        if args.dry_run:
            from .ledger import OutboxMessage
            failed = OutboxMessage.select().where(OutboxMessage.status == "failed")
            failed = [m for m in failed if ids is None or m.id in ids]
            for m in failed:
                print(f"would queue again: #{m.id} {m.event} to {m.to_addrs}: {m.subject}")
            print(f"{len(failed)} message(s) would be queued again and sent; nothing done (--dry-run)")
            return 0
        count = retry_failed(ids, now)
        print(f"{count} message(s) queued again")
        result = lab.deliver(now)
        print(f"sent {result.sent}, still failing {result.retrying + result.failed}")
        return 0 if not result.failed else 1

    return run_locked(settings, "retry", body)


def test_email(settings, args) -> int:
    from .config import EMAIL_RE
    to = args.test_email or settings.admin_email
    if not to:
        raise admin.AdminError("--test_email needs an ADDRESS, or ADMIN_EMAIL set.")
    if not EMAIL_RE.match(to):
        raise admin.AdminError(f"--test_email {to!r} is not an email address (e.g. --test_email you@university.edu).")
    now = utcnow()
    if args.dry_run:
        print(f"would send a test message to {to} via {settings.email_transport} from {settings.sender}; "
              "nothing sent (--dry-run)")
        return 0
    lab = Lab.open(settings, now, gateway=_NoWorkspace())
    with lab.db.atomic():
        key = admin.queue_test_email(settings, to, settings.email_transport, now)
    result = lab.deliver(now)
    print(f"test message {key} to {to} via {settings.email_transport}: "
          f"{'sent' if result.sent else 'NOT sent, see --outbox'}")
    return 0 if result.sent else 1


def grant(settings, args) -> int:
    now = utcnow()

    def body() -> int:
        from .enforcement import run_poll
        lab = Lab.open(settings, now)
        cluster = admin.find_cluster(args.cluster)
        if args.dry_run:
            print(f"would grant {args.grant} minute(s) today to {cluster.name}; nothing changed")
            return 0
        with lab.db.atomic():
            admin.grant(settings, cluster, args.grant, _who(), args.reason, now)
        report = run_poll(lab, now)
        line = next(u for u in admin.cluster_usage(settings, now) if u.cluster_id == cluster.cluster_id)
        print(f"{cluster.name}: limit today is now {line.max_minutes} min, used "
              f"{line.used_seconds / 60:.1f} min, {'still blocked' if line.blocked else 'not blocked'}")
        return 1 if report.failures else 0

    return run_locked(settings, "grant", body)


def set_quota(settings, args) -> int:
    now = _ledger(settings)
    cluster = admin.find_cluster(args.cluster)
    warn, hard = args.set_quota
    if args.dry_run:
        print(f"would set {cluster.name}'s quota to warn {warn} / max {hard} minutes; nothing changed")
        return 0
    admin.set_quota(cluster, warn, hard, _who(), now)
    print(f"{cluster.name}: warn at {warn} min, stop at {hard} min per day (from the next poll)")
    return 0


def clear_quota(settings, args) -> int:
    _ledger(settings)
    cluster = admin.find_cluster(args.cluster)
    removed = 0 if args.dry_run else admin.clear_quota(cluster)
    print(f"{cluster.name}: {'own quota removed' if removed else 'had no own quota'}; defaults apply"
          + (" (dry run)" if args.dry_run else ""))
    return 0


def report(settings, args) -> int:
    from pathlib import Path
    from .ledger import ClosedDay
    from .report import build_report
    from .report_files import queue_report, report_day_default, write_files
    now = utcnow()
    lab = Lab.open(settings, now, gateway=_NoWorkspace())
    day = args.report_date or report_day_default(now, settings.timezone)
    if ClosedDay.get_or_none(ClosedDay.day == day) is None:
        raise admin.AdminError(f"{day} is not closed yet: run python -m databricks.end_of_day_operations "
                               "(days close after their midnight), or pick another --date.")
    built = build_report(day, semester_start=settings.semester_start, prices=settings.prices())
    if args.dry_run:
        print(f"would write report.html, report.csv and report.png for {day} into {args.out}"
              + (f" and email them to {settings.report_recipient}" if args.send else "")
              + "; nothing done (--dry-run)")
        return 0
    for path in write_files(built, settings, now, Path(args.out)):
        print(path)
    if args.send:
        with lab.db.atomic():
            queue_report(built, settings, now, subject_id=f"resend-{now.isoformat()}")
        result = lab.deliver(now)
        print(f"report for {day} to {settings.report_recipient}: {'sent' if result.sent else 'queued, see --outbox'}")
        return 0 if result.sent else 1
    return 0


class _NoWorkspace:
    """For ledger-and-mail commands that must not need workspace credentials."""

    def __getattr__(self, name):
        raise admin.AdminError("this command does not talk to the workspace")

