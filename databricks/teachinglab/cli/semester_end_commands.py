"""--end_semester: the final report, the notebook export, the handoff record, the teardown and
what still costs money, in that order, into one folder (--out, default semester-end/<course>)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from databricks.teachinglab.cli.provisioning_commands import (_confirm, _progress, handoff_file, record_handoff,
                                                              roster_groups)
from databricks.teachinglab.cli.registry import Invocation, command
from databricks.teachinglab.core.errors import AdminError
from databricks.teachinglab.services.semester_end import STEPS


def _skipped(args) -> set[str]:
    names = {s.strip() for s in (args.skip or "").split(",") if s.strip()}
    unknown = names - set(STEPS)
    if unknown:
        raise AdminError(f"--skip {', '.join(sorted(unknown))}: not a step; the steps are {', '.join(STEPS)}")
    return names


@command("end_semester", "end the semester in order, each step skippable (--skip report,export,...) and safe to "
         "repeat: the final report, the notebook export and its manifest, the handoff record, the course's teardown "
         "(typed confirmation; --drop_data also drops its schemas) and what still costs money, into --out",
         changes=True, workspace=True)
def end_semester(inv: Invocation) -> int:
    settings, args = inv.settings, inv.args
    skip = _skipped(args)
    if not settings.course_given:
        raise AdminError("COURSE_NAME is not set: the teardown deletes that course's clusters, students and groups")
    if args.drop_data and not settings.content.catalog:
        raise AdminError("--drop_data drops the course's schemas in UC_CATALOG, which is not set")
    out = Path(args.out or Path("semester-end") / settings.course_label)
    dry = args.dry_run
    verb = "would " if dry else ""
    failed: list[str] = []
    print(f"end of semester for course {settings.course_label}{' (dry run: nothing changes)' if dry else ''}; "
          f"files in {out}")

    if "report" not in skip:
        _report_step(inv, out / "report", failed)
    export_dir = out / "notebooks"
    if "export" not in skip:
        from databricks.teachinglab.services.notebooks import export_all
        result = export_all(inv.context().workspace, export_dir, fmt=args.format, progress=_progress("export"),
                            dry_run=dry)
        print(f"[export] {verb}export {result.exported}, already there {result.skipped}, not exportable "
              f"{len(result.not_exported)}, failed {len(result.failed)} -> {export_dir / 'manifest.json'}")
        for path, err in result.failed:
            print(f"  FAILED {path}: {err}", file=sys.stderr)
        if result.failed:
            failed.append("export")
    if "handoff" not in skip:
        if dry:
            print(f"[handoff] would write {handoff_file(settings)} and a copy in {out / 'handoff.json'}")
        else:
            record_handoff(inv, "end of semester")
            _copy(handoff_file(settings), out / "handoff.json")
    schemas_dropped = False
    if "teardown" not in skip:
        # a dry run exports nothing to look at: a planned export counts as done
        schemas_dropped = _teardown_step(inv, export_dir, failed, export_planned=dry and "export" not in skip)
    if "costs" not in skip:
        _costs_step(inv, out, schemas_dropped)
    if failed:
        print(f"not finished: {', '.join(failed)} failed (see above); run --end_semester again, it repeats safely",
              file=sys.stderr)
        return 1
    return 0


def _report_step(inv: Invocation, folder: Path, failed: list[str]) -> None:
    from databricks.teachinglab.adapters.ledger import repository as ledger
    from databricks.teachinglab.adapters.report_files import write_files
    from databricks.teachinglab.cli.wiring import open_existing_ledger
    from databricks.teachinglab.services.reports import daily_report
    if not open_existing_ledger(inv.settings, inv.now):
        print("[report] no ledger here: no semester report (skipped)")
        return
    days = sorted(ledger.closed_days())
    if not days:
        print("[report] no closed day in the ledger yet: no semester report (skipped)")
        return
    if inv.args.dry_run:
        print(f"[report] would write the report of {days[-1]} (with the semester's totals) into {folder}")
        return
    try:
        paths = write_files(daily_report(days[-1], inv.settings), inv.settings, inv.now, folder)
    except Exception as err:  # noqa: BLE001 - said; the other steps go on
        print(f"[report] FAILED: {type(err).__name__}: {err}", file=sys.stderr)
        failed.append("report")
        return
    print(f"[report] the last closed day, {days[-1]}, with the semester's totals: " + ", ".join(map(str, paths)))


def _teardown_step(inv: Invocation, export_dir: Path, failed: list[str], *, export_planned: bool) -> bool:
    """True when the course's schemas were dropped."""
    from databricks.teachinglab.core.trust import LabPrincipals
    from databricks.teachinglab.services.semester_end import course_teardown
    from databricks.teachinglab.services.trust import keepers
    settings, args = inv.settings, inv.args
    if "export" in failed or not ((export_dir / "manifest.json").exists() or export_planned):
        print(f"[teardown] not run: the notebooks are not exported yet ({export_dir / 'manifest.json'} is missing "
              "or the export failed); run --end_semester again without --skip export", file=sys.stderr)
        if not args.dry_run:
            failed.append("teardown")
        return False
    gateway = inv.context().workspace
    course = settings.cluster.course
    _confirm(args, f"delete course {course}'s clusters, students and groups", gateway.host)
    if args.drop_data:
        _confirm_drop(args, settings.content.catalog, course)
    keep = keepers(gateway, settings)
    summaries = course_teardown(gateway, settings, keep=keep, principals=LabPrincipals.of(keep),
                                roster_groups=roster_groups(args), drop_data=args.drop_data, dry_run=args.dry_run,
                                progress=_progress("teardown"))
    for summary in summaries:
        for line in summary.lines():
            print(("[teardown] (dry run) " if args.dry_run else "[teardown] ") + line)
    if any(s.failed for s in summaries):
        failed.append("teardown")
    if not args.dry_run:
        record_handoff(inv, "teardown: end_semester")
    return bool(args.drop_data and not args.dry_run and not any(s.failed for s in summaries if s.what == "schemas"))


def _confirm_drop(args, catalog: str, course: str) -> None:
    """Dropping data is asked every time, --yes or not: the schemas' tables go with them."""
    if args.dry_run:
        return
    if not sys.stdin.isatty():
        raise AdminError("--drop_data needs its typed confirmation in a terminal (--yes does not cover it)")
    answer = input(f"This drops course {course}'s schemas in {catalog} with every table and volume in them.\n"
                   f"Type the catalog name ({catalog}) to drop them: ").strip()
    if answer != catalog:
        raise AdminError("the catalog name did not match; nothing dropped")


def _costs_step(inv: Invocation, out: Path, schemas_dropped: bool) -> None:
    from databricks.teachinglab.adapters.files import write_private
    from databricks.teachinglab.services.semester_end import still_costing
    items = still_costing(inv.context().workspace, inv.settings, schemas_dropped=schemas_dropped)
    print(f"[costs] what still costs money ({len(items)}), and how to delete each:")
    for item in items:
        print(f"  - {item.what}: {item.why}.\n      delete: {item.how}")
    if not inv.args.dry_run:
        path = out / "still-costs-money.json"
        write_private(path, (json.dumps([item.__dict__ for item in items], indent=1, ensure_ascii=False) + "\n")
                      .encode("utf-8"))
        print(f"  (also in {path})")


def _copy(src: Path, dst: Path) -> None:
    from databricks.teachinglab.adapters.files import write_private
    if src.exists():
        write_private(dst, src.read_bytes())
        print(f"[handoff] {src} (a copy in {dst}); --handoff prints it")
    else:
        print(f"[handoff] {src} could not be written (see the log); --handoff tells why", file=sys.stderr)

