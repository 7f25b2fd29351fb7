"""A Unity Catalog home for every group (UC_CATALOG): the course catalog, created if missing, one
schema per group (`<catalog>.<group_key>`) where the group may create and modify, and `shared`,
which every course group may read. Grants go to the (account) groups by name; what exists is
reused and never replaced, and a grant is only ever added, so other principals keep theirs.

The schemas the lab creates carry the property `teachinglab.course=<course>`: only those, owned by
a lab principal, are ever dropped (teardown with --drop_data). Students cannot set a schema's
properties (that needs ownership) nor create schemas in the catalog (no CREATE_SCHEMA)."""
from __future__ import annotations

import logging

from databricks.teachinglab.core.errors import AdminError
from databricks.teachinglab.core.roster import Roster
from databricks.teachinglab.core.settings import ContentSettings
from databricks.teachinglab.services.provisioning import Change, NotCreated

logger = logging.getLogger(__name__)
COURSE_PROPERTY = "teachinglab.course"
SHARED = "shared"
# What a group may do in its own schema: make and change tables, views, volumes and functions.
GROUP_PRIVILEGES = ("USE_SCHEMA", "CREATE_TABLE", "CREATE_VOLUME", "CREATE_FUNCTION", "CREATE_MATERIALIZED_VIEW",
                    "SELECT", "MODIFY", "READ_VOLUME", "WRITE_VOLUME", "EXECUTE")
SHARED_PRIVILEGES = ("USE_SCHEMA", "SELECT", "READ_VOLUME", "EXECUTE")   # read what the staff put there
CATALOG_PRIVILEGES = ("USE_CATALOG",)                                    # to reach either


def wanted_schemas(content: ContentSettings, roster: Roster, students_group: str) -> dict[str, tuple[str, tuple]]:
    """full schema name -> (the principal, its privileges)."""
    clash = [g.name for g in roster.groups if g.key.lower() == SHARED]
    if clash:
        raise AdminError(f"group {clash[0]!r} has the key {SHARED!r}, which is the name of the course's shared "
                         f"schema in {content.catalog}: give it another group_key in the roster; nothing created")
    out = {content.group_schema(g.key): (g.name, GROUP_PRIVILEGES) for g in roster.groups}
    out[content.shared_schema] = (students_group, SHARED_PRIVILEGES)
    return out


def plan_catalog(gateway, content: ContentSettings, roster: Roster, *, course: str,
                 students_group: str) -> tuple[list[Change], list[str]]:
    """The changes that make the catalog, schemas and grants match the roster, and the drift
    it will not touch (a schema of that name that is not this course's)."""
    name = content.catalog
    changes: list[Change] = []
    drift: list[str] = []
    made: set[str] = set()   # created by an earlier change of this plan
    catalog = gateway.catalog(name)
    if catalog is None:
        def create_catalog():
            try:
                gateway.create_catalog(name, comment=f"Course {course} (teachinglab)",
                                       properties={COURSE_PROPERTY: course}, storage_root=content.storage_root)
            except Exception as err:
                hint = "" if content.storage_root else (
                    "; if the metastore has no storage of its own, set UC_CATALOG_STORAGE_ROOT to a managed location "
                    "(abfss://...) covered by an external location, or create the catalog in Catalog Explorer")
                raise NotCreated(f"{type(err).__name__}: {err}{hint}") from err
            made.add(name)
        changes.append(Change("create_catalog", name, f"for course {course}"
                              + (f", stored at {content.storage_root}" if content.storage_root else ""),
                              run=create_catalog))

    def needs(where: str, granted: dict[str, set[str]], principal: str, privileges: tuple) -> None:
        held = granted.get(principal, set())
        missing = [p for p in privileges if p not in held and "ALL_PRIVILEGES" not in held]
        if not missing:
            return
        kind, full = where.split(" ", 1)

        def grant():
            if kind == "catalog" and catalog is None and name not in made:
                raise NotCreated(f"catalog {name} was not created (see above)")
            if kind == "schema" and full not in made and gateway.schema(full) is None:
                raise NotCreated(f"schema {full} was not created (see above)")
            gateway.grant_privileges(kind, full, principal, missing)
        changes.append(Change("grant", where, f"{', '.join(missing)} to {principal}", run=grant))

    needs(f"catalog {name}", gateway.grants("catalog", name) if catalog else {}, students_group, CATALOG_PRIVILEGES)
    for full, (principal, privileges) in sorted(wanted_schemas(content, roster, students_group).items()):
        existing = gateway.schema(full) if catalog is not None else None
        if existing is None:
            def create_schema(full=full, principal=principal):
                if catalog is None and name not in made:
                    raise NotCreated(f"catalog {name} was not created (see above)")
                gateway.create_schema(name, full.split(".", 1)[1], comment=f"{principal} in course {course}",
                                      properties={COURSE_PROPERTY: course})
                made.add(full)
            changes.append(Change("create_schema", full, f"for {principal}", run=create_schema))
        elif existing.properties.get(COURSE_PROPERTY) != course:
            drift.append(f"schema {full} exists and was not made for course {course}: reused as it is (never "
                         "replaced), and never dropped by --drop_data")
        needs(f"schema {full}", gateway.grants("schema", full) if existing is not None else {}, principal, privileges)
    return changes, drift


def course_schemas(gateway, content: ContentSettings, *, course: str, principals) -> tuple[list, list[tuple]]:
    """(the schemas --drop_data may drop, [(schema, why kept)]): in UC_CATALOG, made by the lab for
    this course (its property) and owned by a lab principal."""
    if gateway.catalog(content.catalog) is None:
        return [], []
    mine, kept = [], []
    for s in gateway.schemas(content.catalog):
        if s.full_name.split(".")[-1] in ("information_schema", "default"):
            continue
        if s.properties.get(COURSE_PROPERTY) != course:
            kept.append((s.full_name, f"not made by the lab for course {course}"))
        elif not principals.trusts(s.owner):
            kept.append((s.full_name, f"owned by {s.owner}, not a lab principal"))
        else:
            mine.append(s)
    return mine, kept


def drop_schemas(gateway, content: ContentSettings, *, course: str, principals, dry_run: bool = False,
                 progress=None):
    """Drop the course's schemas with their tables and volumes (the catalog stays: it may hold
    more than the course, and dropping it is one click in Catalog Explorer)."""
    from databricks.teachinglab.services.teardown import Summary, run_deletes
    mine, kept = course_schemas(gateway, content, course=course, principals=principals)
    summary = Summary("schemas", dry_run, kept=list(kept))
    return run_deletes(summary, [(s.full_name, (lambda: None) if dry_run else
                                  (lambda full=s.full_name: gateway.delete_schema(full))) for s in mine], progress)
