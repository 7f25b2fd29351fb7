"""CLI commands of provisioning and semester end: convert, reconcile, teardown, notebooks."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

from databricks.teachinglab.adapters.roster_files import read_users_csv, write_users_csv
from databricks.teachinglab.cli.registry import Invocation, command
from databricks.teachinglab.cli.wiring import connect_account
from databricks.teachinglab.core.errors import AdminError
from databricks.teachinglab.core.roster import RosterError, parse_roster
from databricks.teachinglab.services import teardown
from databricks.teachinglab.services.trust import keepers
from databricks.teachinglab.core.trust import LabPrincipals
from databricks.teachinglab.services.notebooks import export_all, import_all
from databricks.teachinglab.services.provisioning import apply, plan

logger = logging.getLogger(__name__)


def _progress(desc: str):
    from tqdm import tqdm

    def wrap(items):
        return tqdm(items, desc=desc, unit="item", file=sys.stderr, disable=not items or not sys.stderr.isatty())
    return wrap


DEFAULT_ROSTER = "terraform/environments/prod/users.csv"


def tool_version() -> str:
    from importlib import metadata
    try:
        return metadata.version("teachinglab")
    except metadata.PackageNotFoundError:
        return "unknown (not installed as a package)"


def lab_file(settings, name: str) -> Path:
    """One of the lab's own files (handoff.json, course_notebooks.json) beside the ledger."""
    import os
    from databricks.teachinglab.cli.config import data_home
    from databricks.teachinglab.services.handoff import state_path
    return state_path(settings, data_home(dict(os.environ)), name)


def handoff_file(settings) -> Path:
    return lab_file(settings, "handoff.json")


def record_handoff(inv: Invocation, event: str) -> None:
    """The handoff record, after provisioning or a teardown (never on a dry run)."""
    if inv.args.dry_run:
        return
    from databricks.teachinglab.services.handoff import write_record
    path = handoff_file(inv.settings)
    if write_record(inv.context(), inv.now, event, path, version=tool_version()):
        print(f"handoff record: {path} (python -m databricks.main --handoff)")


@command("handoff", "print the handoff record (handoff.json next to the ledger): what the semester created, where, "
         "how the lab signs in (no secrets); -o FILE also writes a copy, --json prints it as is", changes=True)
def handoff(inv: Invocation) -> int:
    import json
    from databricks.teachinglab.adapters.files import write_private
    from databricks.teachinglab.services.handoff import read_record
    path = handoff_file(inv.settings)
    record = read_record(path)
    if record is None:
        raise AdminError(f"no handoff record at {path} yet: --create_from_csv writes it after provisioning, and "
                         "each teardown command updates it")
    if inv.args.output:
        if inv.args.dry_run:
            print(f"would write a copy to {inv.args.output} (--dry-run)")
        else:
            write_private(Path(inv.args.output), (json.dumps(record, indent=2, ensure_ascii=False) + "\n").encode())
            print(f"written to {inv.args.output} (mode 600)", file=sys.stderr)
    if inv.args.json:
        print(json.dumps(record, indent=2, ensure_ascii=False))
        return 0
    created = record.get("created", {})
    print(f"course {record.get('course')} on {record.get('workspace', {}).get('host')} "
          f"(workspace {record.get('workspace', {}).get('id')}, {record.get('cloud')})")
    print(f"signs in as {record.get('auth', {}).get('principal')} ({record.get('auth', {}).get('method')})")
    print(f"groups: {len(created.get('groups', []))}, clusters: {len(created.get('clusters', []))}; status page: "
          f"{record.get('status_page_url') or 'not set'}; policy: {record.get('policy', {}).get('source')}")
    print(f"created {record.get('created_at')}, updated {record.get('updated_at')}; events: "
          + ", ".join(e["event"] for e in record.get("events", [])))
    return 0


@command("convert_moodle", "convert a Moodle group export to users.csv (-o), reporting file:line problems",
         flag={"metavar": "MOODLE_CSV"}, changes=True, settings=False)
def convert_moodle(inv: Invocation) -> int:
    """Needs no settings at all: a file in, a file out."""
    args = inv.args
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
    out = Path(args.output or DEFAULT_ROSTER)
    if args.dry_run:
        print(f"would write {out}: {len(roster.groups)} groups, {len(roster.memberships())} students; "
              "nothing written (--dry-run)")
        return 0
    rows = write_users_csv(roster, out)
    print(f"{out}: {len(roster.groups)} groups, {len(roster.memberships())} students, {rows} rows"
          + (f"; {len(roster.problems)} problem(s) above" if roster.problems else ""))
    return 0


@command("create_from_csv", "create missing users, groups, memberships, clusters and permissions "
         "(--dry-run shows the plan; --prune also deletes what the roster lacks)", flag={"metavar": "USERS_CSV"},
         changes=True, workspace=True)
def create_from_csv(inv: Invocation) -> int:
    from databricks.teachinglab.cli.plan_commands import read_roster
    from databricks.teachinglab.services.serverless import provision_access
    settings, args = inv.settings, inv.args
    if not settings.course_given:
        raise AdminError("COURSE_NAME is not set: it names the clusters (<course>-<group_key>), their course "
                         "tag and the <course>-students group. Set it in .env, e.g. COURSE_NAME=bigdata.")
    roster = read_roster(args.create_from_csv)
    if roster is None:
        return 2
    if settings.quota.budget_usd is not None and settings.quota.prices and settings.quota.prices.node_types:
        from databricks.teachinglab.services.plan import course_plan
        budget = course_plan(settings, roster, budget_usd=settings.quota.budget_usd)
        if not budget.within_budget and not args.over_budget:
            print(f"error: the semester's worst case is {budget.worst_usd:.2f} USD, over COURSE_BUDGET_USD="
                  f"{budget.budget_usd:g}: nothing created. See --plan_course {args.create_from_csv} --budget "
                  f"{budget.budget_usd:g} for the largest quota that fits; lower the quota or the node type, or add "
                  "--over_budget to provision anyway.", file=sys.stderr)
            return 1
        print(f"note: the semester's worst case is {budget.worst_usd:.2f} USD, "
              + ("within" if budget.within_budget else "OVER (--over_budget)") + f" COURSE_BUDGET_USD={budget.budget_usd:g}")
    gateway = inv.context().workspace
    check_access_mode(settings, gateway, roster)
    keep = keepers(gateway, settings)
    p = plan(gateway, roster, settings.cluster, prune=args.prune, protected=keep,
             principals=LabPrincipals.of(keep), account=connect_account(settings, gateway))
    groups = sorted(r.name for r in roster.groups)
    from databricks.teachinglab.cli.content_commands import content_plan
    content_plan(inv, gateway, roster, p, groups)
    for line in p.drift:
        print(f"drift: {line}")
    serverless = serverless_plan(inv, groups) if settings.workspace.serverless_objects else None
    if not settings.workspace.serverless_objects:
        print("note: SERVERLESS_INTERACTIVE_COMPUTE_ID and SERVERLESS_AUTOMATED_COMPUTE_ID are not set: serverless "
              "compute stays open to every workspace user, outside the quota (README, 'Serverless')")
    if not p.changes and not (serverless and serverless[1]):
        print(f"nothing to change: the workspace matches {args.create_from_csv}")
        return 0
    for change in p.changes:
        print(("would " if args.dry_run else "") + str(change))
    if args.dry_run:
        for line in serverless[1] if serverless else []:
            print(line)
        print(f"{len(p.changes) + len(serverless[1] if serverless else [])} change(s) planned; nothing done (--dry-run)")
        return 0
    outcome = apply(p, progress=_progress("provisioning"))
    if serverless:
        try:
            for line in provision_access(inv.context(), groups, blocked=serverless[0], dry_run=False):
                print(line)
        except Exception as err:  # noqa: BLE001 - said, and the exit code says so; a rerun finishes it
            outcome.failed.append(("serverless compute access", err))
    print(f"{len(outcome.done)} change(s) made, {len(outcome.failed)} failed")
    record_handoff(inv, "provisioned")
    for change, err in outcome.failed:
        print(f"  FAILED {change}: {err}", file=sys.stderr)
    if outcome.failed:
        # Creates are never retried (a retry could make a second cluster); the reconcile is.
        print(f"Run --create_from_csv {args.create_from_csv} again: it makes only what is still missing "
              "(wait a minute first if the workspace was throttling requests).", file=sys.stderr)
    return 1 if outcome.failed else 0


def serverless_plan(inv: Invocation, groups: list[str]) -> tuple[set[str], list[str]]:
    """(groups whose serverless allowance is spent, what --create_from_csv would change): those
    groups stay without CAN_USE. The ledger is read only when it exists already."""
    from databricks.teachinglab.services.serverless import provision_access
    settings = inv.settings
    blocked: set[str] = set()
    try:
        from databricks.teachinglab.adapters.ledger import repository as ledger
        from databricks.teachinglab.cli.wiring import open_existing_ledger
        if open_existing_ledger(settings, inv.now):
            blocked = set(ledger.serverless_blocks())
    except Exception as err:  # noqa: BLE001 - said; the next serverless check re-applies any block
        print(f"note: the ledger could not be read ({type(err).__name__}: {err}); groups whose serverless "
              "allowance is spent get CAN_USE now and lose it again at the next serverless check")
    return blocked, provision_access(inv.context(), groups, blocked=blocked, dry_run=True)


DEDICATED_SETTING = ("the workspace setting \"Dedicated group clusters\" (a workspace admin turns it on in the "
                     "workspace's admin settings, under Compute)")


def check_access_mode(settings, gateway, roster) -> None:
    """What the API can show, checked before anything is created: dedicated group clusters need
    account groups (a workspace-local group cannot be granted Unity Catalog data) and a runtime
    the workspace offers, 15.4 or later (config checked the number)."""
    cs = settings.cluster
    if cs.access_mode == "dedicated" and not settings.workspace.account_id:
        raise AdminError("CLUSTER_ACCESS_MODE=dedicated needs account groups: a dedicated group cluster runs with its "
                         "group's permissions, and a workspace-local group (what this tool creates without "
                         "DATABRICKS_ACCOUNT_ID) cannot be granted access to Unity Catalog data. Set "
                         "DATABRICKS_ACCOUNT_ID and account auth (README, Unity Catalog), or CLUSTER_ACCESS_MODE=standard. "
                         f"Dedicated group clusters also need {DEDICATED_SETTING}.")
    if not cs.access_mode_given:
        print(f"note: CLUSTER_ACCESS_MODE is not set: clusters are {cs.access_mode}" +
              (" (each dedicated to its account group; it needs " + DEDICATED_SETTING + ")"
               if cs.access_mode == "dedicated" else
               " (shared, Unity Catalog), since without DATABRICKS_ACCOUNT_ID the groups are workspace-local and "
               "cannot own a dedicated Unity Catalog cluster"))
    offered = gateway.spark_versions()
    if offered and cs.spark_version not in offered:
        newer = sorted(v for v in offered if "lts" in offered[v].lower())[-3:]
        raise AdminError(f"CLUSTER_SPARK_VERSION={cs.spark_version} is not a runtime this workspace offers: pick one "
                         f"of its keys (e.g. {', '.join(newer) or ', '.join(sorted(offered)[-3:])}); nothing created")
    if cs.access_mode == "dedicated":
        local = sorted(g.name for g in gateway.groups() if not g.account and g.name in {r.name for r in roster.groups})
        if local:
            raise AdminError(f"{', '.join(local)}: workspace-local group(s) of the roster's names; a dedicated group "
                             "cluster needs the account group. Delete or rename them, then run again; nothing created")


def _confirm(args, what: str, host: str, *, always: bool = False) -> None:
    """Typing the workspace host confirms; --yes skips it, except where `always` (--all) asks."""
    if args.dry_run or (args.yes and not always):
        return
    if not sys.stdin.isatty():
        raise AdminError(f"{what} needs confirmation: run it in a terminal"
                         + (" (--all always asks)" if always else ", or add --yes"))
    answer = input(f"This will {what} in {host}.\nType the workspace host to confirm: ").strip()
    if answer.rstrip("/") not in (host.rstrip("/"), host.split("://", 1)[-1].rstrip("/")):
        raise AdminError("confirmation did not match the workspace host; nothing deleted")


def _teardown(inv: Invocation, what: str, run, *, always_confirm: bool = False) -> int:
    args = inv.args
    gateway = inv.context().workspace
    _confirm(args, what, gateway.host, always=always_confirm)
    summary = run(gateway)
    for line in summary.lines():
        print(("(dry run) " if args.dry_run else "") + line)
    record_handoff(inv, f"teardown: {inv.command.name}")
    return 1 if summary.failed else 0


@command("delete_all_users", "delete every user but the lab principals (the workspace admins, LAB_MANAGERS, "
         "ADMIN_EMAIL and the tool's own identity)", changes=True, workspace=True)
def delete_all_users(inv: Invocation) -> int:
    return _teardown(inv, "delete every user except the admins and lab managers", lambda g: teardown.delete_all_users(
        g, keep=keepers(g, inv.settings), dry_run=inv.args.dry_run, progress=_progress("users")))


@command("delete_all_groups", "delete the course's groups: those in the roster (--roster), those named by the "
         "group tag of clusters tagged course=COURSE_NAME, and COURSE_NAME-students (--all: every non-system "
         "group, always asking for the typed confirmation)", changes=True, workspace=True)
def delete_all_groups(inv: Invocation) -> int:
    args = inv.args
    if args.all:
        what = "delete EVERY group except the system groups, of every course"
        return _teardown(inv, what, lambda g: teardown.delete_all_groups(
            g, principals=LabPrincipals.of(keepers(g, inv.settings)), dry_run=args.dry_run,
            progress=_progress("groups")), always_confirm=True)
    course = inv.settings.cluster.course
    roster = roster_groups(args)
    return _teardown(inv, f"delete the groups of course {course}", lambda g: teardown.delete_all_groups(
        g, principals=LabPrincipals.of(keepers(g, inv.settings)), course=course, roster_groups=roster,
        dry_run=args.dry_run, progress=_progress("groups")))


def roster_groups(args) -> list[str]:
    """Group names from the roster (--roster, or the converter's default output if it exists)."""
    path = Path(args.roster) if args.roster else Path(args.output or DEFAULT_ROSTER)
    if not path.exists():
        if args.roster:
            raise AdminError(f"--roster {path}: no such file")
        return []
    try:
        return [g.name for g in read_users_csv(path).groups]
    except RosterError as err:
        raise AdminError(f"--roster {path}: " + "; ".join(map(str, err.problems))) from None


@command("purge_clusters", "permanently delete every cluster (or only --course's)", changes=True, workspace=True)
def purge_clusters(inv: Invocation) -> int:
    args = inv.args
    what = f"permanently delete every cluster{' of course ' + args.course if args.course else ''}"
    return _teardown(inv, what, lambda g: teardown.purge_clusters(
        g, principals=LabPrincipals.of(keepers(g, inv.settings)), course=args.course, dry_run=args.dry_run,
        progress=_progress("clusters")))


@command("terminate_clusters", "stop every running cluster (or only --course's), e.g. after libraries installed",
         changes=True, workspace=True)
def terminate_clusters(inv: Invocation) -> int:
    """Stop the course's clusters (after Terraform created them and installed libraries)."""
    args = inv.args
    gateway = inv.context().workspace
    failed = 0
    clusters = teardown.course_clusters(gateway, args.course, LabPrincipals.of(keepers(gateway, inv.settings)))[0] \
        if args.course else gateway.list_clusters()
    for c in clusters:
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


@command("export_notebooks", "back up every home folder and /Shared", flag={"metavar": "DIR"}, changes=True,
         workspace=True)
def export_notebooks(inv: Invocation) -> int:
    args = inv.args
    result = export_all(inv.context().workspace, Path(args.export_notebooks), fmt=args.format,
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


@command("import_notebooks", "restore a backup (all, or --user's)", flag={"metavar": "DIR"}, changes=True,
         workspace=True)
def import_notebooks(inv: Invocation) -> int:
    args = inv.args
    try:
        result = import_all(inv.context().workspace, Path(args.import_notebooks), user=args.user,
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


