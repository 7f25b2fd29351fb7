"""What each group works with beyond its cluster: the Unity Catalog home (UC_CATALOG) and the
course's notebooks (COURSE_NOTEBOOKS_DIR), planned with --create_from_csv and, for the notebooks,
week by week with --deploy_notebooks."""
from __future__ import annotations

import sys

from databricks.teachinglab.cli.provisioning_commands import _progress, lab_file
from databricks.teachinglab.cli.registry import Invocation, command
from databricks.teachinglab.core.errors import AdminError
from databricks.teachinglab.services.provisioning import apply


def content_plan(inv: Invocation, gateway, roster, p, groups: list[str]) -> None:
    """Add to the provisioning plan what UC_CATALOG and COURSE_NOTEBOOKS_DIR ask for (after the
    groups and clusters: grants name groups the plan may create first)."""
    settings = inv.settings
    content, cs = settings.content, settings.cluster
    if content.catalog:
        from databricks.teachinglab.services.catalog import plan_catalog
        if not settings.workspace.account_id:
            raise AdminError(f"UC_CATALOG={content.catalog} needs account groups: Unity Catalog grants only go to "
                             "account groups, and without DATABRICKS_ACCOUNT_ID this tool makes workspace-local ones. "
                             "Set DATABRICKS_ACCOUNT_ID and account auth (README, Unity Catalog), or unset UC_CATALOG; "
                             "nothing created")
        changes, drift = plan_catalog(gateway, content, roster, course=cs.course, students_group=cs.students_group)
        p.changes += changes
        p.drift += drift
    if content.notebooks_dir:
        notebook_changes(inv, gateway, groups, p)


def notebook_changes(inv: Invocation, gateway, groups: list[str], p) -> None:
    from databricks.teachinglab.services.course_notebooks import STATE_FILE, plan_notebooks
    settings = inv.settings
    folder = settings.content.notebooks_dir
    if not folder.is_dir():
        raise AdminError(f"COURSE_NOTEBOOKS_DIR={folder} is not a folder: set it to the course's notebooks in "
                         "source format (.py, .sql, .scala, .r, .ipynb); nothing changed")
    planned = {c.target for c in p.changes if c.action == "group_folder"}
    changes, notes = plan_notebooks(gateway, settings.content.notebooks_dir, settings.cluster, groups,
                                    shared=settings.content.notebooks_shared,
                                    state_path=lab_file(settings, STATE_FILE), planned_folders=planned)
    p.changes += changes
    p.drift += [f"notebooks: {n}" for n in notes]


@command("deploy_notebooks", "deploy COURSE_NOTEBOOKS_DIR to the roster's groups (USERS_CSV): only what changed "
         "since the last deploy, never over a copy a group edited", flag={"metavar": "USERS_CSV"}, changes=True,
         workspace=True)
def deploy_notebooks(inv: Invocation) -> int:
    from databricks.teachinglab.cli.plan_commands import read_roster
    from databricks.teachinglab.services.provisioning import Plan
    settings, args = inv.settings, inv.args
    if not settings.content.notebooks_dir:
        raise AdminError("COURSE_NOTEBOOKS_DIR is not set: set it to the folder of the course's notebooks "
                         "(.py, .sql, .scala, .r in source format, or .ipynb)")
    roster = read_roster(args.deploy_notebooks)
    if roster is None:
        return 2
    p = Plan([], [])
    notebook_changes(inv, inv.context().workspace, sorted(g.name for g in roster.groups), p)
    for line in p.drift:
        print(f"note: {line}")
    if not p.changes:
        print(f"nothing to deploy: every destination has the notebooks of {settings.content.notebooks_dir}")
        return 0
    for change in p.changes:
        print(("would " if args.dry_run else "") + str(change))
    if args.dry_run:
        print(f"{len(p.changes)} change(s) planned; nothing done (--dry-run)")
        return 0
    outcome = apply(p, progress=_progress("notebooks"))
    print(f"{len(outcome.done)} change(s) made, {len(outcome.failed)} failed")
    for change, err in outcome.failed:
        print(f"  FAILED {change}: {err}", file=sys.stderr)
    return 1 if outcome.failed else 0
