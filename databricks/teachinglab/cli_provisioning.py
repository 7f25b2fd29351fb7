"""CLI commands of provisioning and semester end: convert, reconcile, teardown, notebooks."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

from . import teardown
from .errors import AdminError

logger = logging.getLogger(__name__)


def _progress(desc: str):
    from tqdm import tqdm

    def wrap(items):
        return tqdm(items, desc=desc, unit="item", file=sys.stderr, disable=not items or not sys.stderr.isatty())
    return wrap


def _gateway(settings):
    from .workspace_gateway import WorkspaceGateway
    return WorkspaceGateway.connect(host=settings.host, token=settings.token, profile=settings.profile)


def convert_moodle(args) -> int:
    """Needs no settings at all: a file in, a file out."""
    from .roster import RosterError, parse_roster, write_users_csv
    src = Path(args.convert_moodle)
    try:
        roster = parse_roster(src.read_bytes(), str(src))
    except OSError as err:
        print(f"error: cannot read {src}: {err.strerror}", file=sys.stderr)
        return 2
    except RosterError as err:
        for problem in err.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    for problem in roster.problems:
        print(f"{'error' if args.strict else 'warning'}: {problem}", file=sys.stderr)
    if roster.problems and args.strict:
        print(f"{len(roster.problems)} problem(s); nothing written (--strict)", file=sys.stderr)
        return 2
    out = Path(args.output)
    if args.dry_run:
        print(f"would write {out}: {len(roster.groups)} groups, {len(roster.memberships())} students; "
              "nothing written (--dry-run)")
        return 0
    rows = write_users_csv(roster, out)
    print(f"{out}: {len(roster.groups)} groups, {len(roster.memberships())} students, {rows} rows"
          + (f"; {len(roster.problems)} problem(s) above" if roster.problems else ""))
    return 0


def create_from_csv(settings, args) -> int:
    from .provisioning import apply, plan
    from .roster import RosterError, read_users_csv
    if not settings.course_given:
        raise AdminError("COURSE_NAME is not set: it names the clusters (<course>-<group_key>), their course "
                         "tag and the <course>-students group. Set it in .env, e.g. COURSE_NAME=bigdata.")
    try:
        roster = read_users_csv(Path(args.create_from_csv))
    except RosterError as err:
        for problem in err.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    if roster.problems:
        for problem in roster.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    gateway = _gateway(settings)
    cs = settings.cluster
    account = None
    if settings.account_id:
        from .workspace_gateway import AccountDirectory
        account = AccountDirectory.connect(host=settings.account_host, account_id=settings.account_id,
                                           token=settings.account_token, profile=settings.account_profile,
                                           gateway=gateway)
    p = plan(gateway, roster, cs, prune=args.prune, protected={settings.admin_email or "", gateway.me()},
             account=account)
    for line in p.drift:
        print(f"drift: {line}")
    if not p.changes:
        print(f"nothing to change: the workspace matches {args.create_from_csv}")
        return 0
    for change in p.changes:
        print(("would " if args.dry_run else "") + str(change))
    if args.dry_run:
        print(f"{len(p.changes)} change(s) planned; nothing done (--dry-run)")
        return 0
    outcome = apply(p, progress=_progress("provisioning"))
    print(f"{len(outcome.done)} change(s) made, {len(outcome.failed)} failed")
    for change, err in outcome.failed:
        print(f"  FAILED {change}: {err}", file=sys.stderr)
    if outcome.failed:
        # Creates are never retried (a retry could make a second cluster); the reconcile is.
        print(f"Run --create_from_csv {args.create_from_csv} again: it makes only what is still missing "
              "(wait a minute first if the workspace was throttling requests).", file=sys.stderr)
    return 1 if outcome.failed else 0


def _confirm(settings, args, what: str, host: str, *, always: bool = False) -> None:
    """Typing the workspace host confirms; --yes skips it, except where `always` (--all) asks."""
    if args.dry_run or (args.yes and not always):
        return
    if not sys.stdin.isatty():
        raise AdminError(f"{what} needs confirmation: run it in a terminal"
                         + (" (--all always asks)" if always else ", or add --yes"))
    answer = input(f"This will {what} in {host}.\nType the workspace host to confirm: ").strip()
    if answer.rstrip("/") not in (host.rstrip("/"), host.split("://", 1)[-1].rstrip("/")):
        raise AdminError("confirmation did not match the workspace host; nothing deleted")


def _teardown(settings, args, what: str, run, *, always_confirm: bool = False) -> int:
    gateway = _gateway(settings)
    _confirm(settings, args, what, gateway.host, always=always_confirm)
    summary = run(gateway)
    for line in summary.lines():
        print(("(dry run) " if args.dry_run else "") + line)
    return 1 if summary.failed else 0


def delete_all_users(settings, args) -> int:
    return _teardown(settings, args, "delete every user except the admins", lambda g: teardown.delete_all_users(
        g, protect=[settings.admin_email or "", g.me()], dry_run=args.dry_run, progress=_progress("users")))


def delete_all_groups(settings, args) -> int:
    if args.all:
        what = "delete EVERY group except the system groups, of every course"
        return _teardown(settings, args, what, lambda g: teardown.delete_all_groups(
            g, dry_run=args.dry_run, progress=_progress("groups")), always_confirm=True)
    course = settings.course_name
    roster = _roster_groups(args)
    return _teardown(settings, args, f"delete the groups of course {course}", lambda g: teardown.delete_all_groups(
        g, course=course, roster_groups=roster, dry_run=args.dry_run, progress=_progress("groups")))


def _roster_groups(args) -> list[str]:
    """Group names from the roster (--roster, or the converter's default output if it exists)."""
    from .roster import RosterError, read_users_csv
    path = Path(args.roster) if args.roster else Path(args.output)
    if not path.exists():
        if args.roster:
            raise AdminError(f"--roster {path}: no such file")
        return []
    try:
        return [g.name for g in read_users_csv(path).groups]
    except RosterError as err:
        raise AdminError(f"--roster {path}: " + "; ".join(err.problems)) from None


def purge_clusters(settings, args) -> int:
    what = f"permanently delete every cluster{' of course ' + args.course if args.course else ''}"
    return _teardown(settings, args, what, lambda g: teardown.purge_clusters(
        g, course=args.course, dry_run=args.dry_run, progress=_progress("clusters")))


def terminate_clusters(settings, args) -> int:
    """Stop the course's clusters (after Terraform created them and installed libraries)."""
    gateway = _gateway(settings)
    failed = 0
    for c in gateway.list_clusters():
        if args.course and c.custom_tags.get("course") != args.course:
            continue
        if c.state in ("PENDING", "RUNNING", "RESTARTING", "RESIZING"):
            if args.dry_run:
                print(f"would terminate {c.name} ({c.cluster_id}, {c.state})")
                continue
            try:
                gateway.terminate(c.cluster_id)
                print(f"terminated {c.name}")
            except Exception as err:  # noqa: BLE001
                failed += 1
                print(f"FAILED {c.name}: {err}", file=sys.stderr)
    return 1 if failed else 0


def export_notebooks(settings, args) -> int:
    from .notebooks import export_all
    result = export_all(_gateway(settings), Path(args.export_notebooks), fmt=args.format,
                        progress=_progress("export"), dry_run=args.dry_run)
    if args.dry_run:
        print(f"would export {result.exported}, already there {result.skipped}, would skip "
              f"{len(result.not_exported)}; nothing written (--dry-run)")
        return 0
    print(f"exported {result.exported}, already there {result.skipped}, skipped {len(result.not_exported)}, "
          f"failed {len(result.failed)} -> {Path(args.export_notebooks) / 'manifest.json'}")
    for path, why in result.not_exported:
        print(f"  skipped {path}: {why}", file=sys.stderr)
    for path, err in result.failed:
        print(f"  FAILED {path}: {err}", file=sys.stderr)
    return 1 if result.failed else 0


def import_notebooks(settings, args) -> int:
    from .notebooks import import_all
    try:
        result = import_all(_gateway(settings), Path(args.import_notebooks), user=args.user,
                            progress=_progress("import"), dry_run=args.dry_run)
    except FileNotFoundError as err:
        raise AdminError(str(err)) from None
    if args.dry_run:
        print(f"would import {result.imported}, failed checks {len(result.failed)}; nothing changed (--dry-run)")
    else:
        print(f"imported {result.imported}, failed {len(result.failed)}")
    for path, err in result.failed:
        print(f"  FAILED {path}: {err}", file=sys.stderr)
    return 1 if result.failed else 0


