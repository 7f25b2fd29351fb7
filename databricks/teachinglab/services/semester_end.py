"""The end of a semester, in order: the final report, the notebook export, the handoff record,
the teardown, and what still costs money. Each step is safe to repeat (the export resumes, the
teardown finds nothing left to delete) and can be skipped; the teardown runs only once an export
is there (its manifest), so nothing of the students' work is deleted before it is saved.

The teardown is the course's, never the workspace's: its clusters (lab clusters tagged with the
course, and clusters its students made), its students (members of <course>-students, never a lab
principal), its groups, and with --drop_data its Unity Catalog schemas (those the lab made for
the course; the catalog itself stays)."""
from __future__ import annotations

import logging
from dataclasses import dataclass

from databricks.teachinglab.services import teardown

logger = logging.getLogger(__name__)
STEPS = ("report", "export", "handoff", "teardown", "costs")


@dataclass(frozen=True)
class StillCosting:
    what: str
    why: str
    how: str      # the admin-console steps that delete it


def course_teardown(gateway, settings, *, keep: dict[str, str], principals, roster_groups: list[str],
                    drop_data: bool, dry_run: bool, progress=None) -> list[teardown.Summary]:
    """Clusters, students, groups and (drop_data) schemas of the course. The groups are found
    before anything is deleted: the clusters' tags and the students group name them."""
    course = settings.cluster.course
    groups = sorted(teardown.course_groups(gateway, course=course, principals=principals,
                                           roster_groups=roster_groups))
    out = [teardown.purge_clusters(gateway, principals=principals, course=course, dry_run=dry_run,
                                   progress=progress),
           teardown.delete_course_users(gateway, course=course, keep=keep, dry_run=dry_run, progress=progress),
           teardown.delete_all_groups(gateway, principals=principals, course=course, roster_groups=groups,
                                      dry_run=dry_run, progress=progress)]
    if drop_data and settings.content.catalog:
        from databricks.teachinglab.services.catalog import drop_schemas
        out.append(drop_schemas(gateway, settings.content, course=course, principals=principals, dry_run=dry_run,
                                progress=progress))
    return out


def still_costing(gateway, settings, *, schemas_dropped: bool) -> list[StillCosting]:
    """What keeps billing once the course is gone, each with how to delete it. Read from the
    workspace where an API shows it (clusters, SQL warehouses, the catalog); the Azure resources
    no workspace API shows (the workspace itself, its managed storage, this VM) are always listed."""
    items: list[StillCosting] = []
    for c in sorted(gateway.list_clusters(), key=lambda c: c.name):
        items.append(StillCosting(
            f"cluster {c.name} ({c.state})", "its VMs and DBUs bill whenever it runs; a pinned or running one is "
            "easy to forget", f"Compute > {c.name} > More > Delete (or --purge_clusters --course NAME)"))
    try:
        warehouses = gateway.warehouses()
    except Exception as err:  # noqa: BLE001 - listed as unknown, never left out
        logger.warning("SQL warehouses could not be listed: %s", err)
        items.append(StillCosting("SQL warehouses (they could not be listed: "
                                  f"{type(err).__name__})", "each bills while it runs",
                                  "SQL Warehouses: delete the course's"))
        warehouses = []
    for w in warehouses:
        items.append(StillCosting(
            f"SQL warehouse {w[1]} ({w[2]})", "bills while it runs, and anything scheduled starts it again",
            f"SQL Warehouses > {w[1]} > More > Delete"))
    catalog = settings.content.catalog
    if catalog and gateway.catalog(catalog) is not None:
        left = "its schemas' tables" if not schemas_dropped else "whatever other courses keep in it"
        items.append(StillCosting(
            f"Unity Catalog catalog {catalog}", f"{left} stay in managed storage, billed by the storage account",
            f"Catalog Explorer > {catalog} > More > Delete (after --end_semester --drop_data for the course's "
            "schemas); then empty its managed location"))
    items += [
        StillCosting(f"the Azure Databricks workspace {gateway.host}",
                     "an idle workspace still bills: its managed resource group (NAT gateway, storage, network); the "
                     "original lab's notes put it at about 700 USD a month",
                     "Azure portal > the Azure Databricks resource > Delete (export what you keep first)"),
        StillCosting("the workspace's managed storage (the storage account in its managed resource group, "
                     "databricks-rg-...)", "holds the DBFS root and managed tables; billed per GB until it is gone",
                     "deleted with the workspace: afterwards check Azure portal > Resource groups that "
                     "databricks-rg-<workspace>-... is gone"),
        StillCosting("this VM (cron, the ledger, the status page)",
                     "bills while allocated; its disk and public IP bill even when stopped",
                     "copy the ledger and its backups off it (--migrate_ledger or the backups/ folder), then Azure "
                     "portal > Virtual machines > this VM > Delete, with its disk, network interface and public IP"),
    ]
    return items
