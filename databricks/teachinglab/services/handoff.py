"""The handoff record (handoff.json next to the ledger): what a semester created, where, and how the
lab signs in (never a secret), so the next admin need not reconstruct it from the workspace.
Written after provisioning and after each teardown; `created_at` survives, `updated_at` and the
event list grow."""
from __future__ import annotations

import json
import logging
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

from databricks.teachinglab.adapters.files import write_private
from databricks.teachinglab.services.context import JobContext

logger = logging.getLogger(__name__)
TERRAFORM_ENVIRONMENTS = Path(__file__).resolve().parents[3] / "terraform" / "environments"


def state_path(settings, home: Path, name: str) -> Path:
    """A file of the lab's own next to the SQLite ledger; with PostgreSQL, in its state folder (`home`)."""
    db = settings.ledger.db_path
    return (db.parent if db is not None else (settings.ledger.state_dir or home)) / name


def handoff_path(settings, home: Path) -> Path:
    return state_path(settings, home, "handoff.json")


def read_record(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        logger.error("handoff record %s cannot be read (%s); a new one replaces it", path, err)
        return None


def terraform_output(root: Path) -> dict | None:
    """`terraform output -json` of the environment's root when the Terraform path ran there: it
    holds a local state (dev), or was initialised with a backend (prod's remote state)."""
    ran = (root / "terraform.tfstate").exists() or (root / ".terraform" / "terraform.tfstate").exists()
    if not ran or shutil.which("terraform") is None:
        return None
    try:
        done = subprocess.run(["terraform", f"-chdir={root}", "output", "-json"], capture_output=True, text=True,
                              timeout=60, check=True)
        return json.loads(done.stdout) or None
    except (subprocess.SubprocessError, ValueError, OSError) as err:
        logger.warning("terraform output -json failed (%s); the record goes without it", err)
        return None


def _schemas(gw, settings) -> list[dict] | None:
    """The course's schemas in UC_CATALOG (those the lab made for it), with their owners."""
    from databricks.teachinglab.services.catalog import COURSE_PROPERTY
    catalog = settings.content.catalog
    if not catalog:
        return []
    try:
        found = gw.schemas(catalog) if gw.catalog(catalog) is not None else []
    except Exception as err:  # noqa: BLE001 - the record goes without them, and says so
        logger.warning("the schemas of %s could not be read for the handoff record (%s)", catalog, err)
        return None
    return [{"name": s.full_name, "id": s.schema_id, "owner": s.owner} for s in found
            if s.properties.get(COURSE_PROPERTY) == settings.cluster.course]


def _folders(gw, settings, groups: list[str]) -> list[dict]:
    """The groups' folders and the shared course-notebook folder that exist, with their ids."""
    cs = settings.cluster
    paths = [cs.group_folder(g) for g in groups if g != cs.students_group]
    if settings.content.notebooks_dir:
        from databricks.teachinglab.services.course_notebooks import destinations
        paths += [where for where, _, _ in destinations(cs, groups, settings.content.notebooks_shared)]
    out = []
    for path in sorted(set(paths)):
        info = gw.object_info(path)
        if info is not None:
            out.append({"path": path, "id": info[2], "type": info[0]})
    return out


def build_record(ctx: JobContext, now: datetime, event: str, previous: dict | None, *, version: str) -> dict:
    settings = ctx.settings
    gw = ctx.workspace
    course = settings.cluster.course
    auth, cloud = gw.auth_description()
    clusters = [c for c in gw.list_clusters() if c.custom_tags.get("course") == course]
    groups = {g.name: g for g in gw.groups()}
    wanted = sorted({c.custom_tags.get("group") for c in clusters if c.custom_tags.get("group")}
                    | ({f"{course}-students"} & set(groups)))
    policy = settings.quota.the_policy
    caps = policy.caps
    at = now.astimezone(settings.quota.timezone).isoformat(timespec="seconds")
    events = list((previous or {}).get("events", [])) + [{"event": event, "at": at}]
    return {
        "course": settings.course_label,
        "environment": settings.environment,
        "cloud": cloud,
        "workspace": {"host": gw.host, "id": str(gw.workspace_id())},
        "auth": {"method": auth, "principal": gw.me(),
                 "account_id": settings.workspace.account_id},
        "created": {
            "groups": [{"name": n, "id": groups[n].group_id if n in groups else None,
                        "members": len(groups[n].members) if n in groups else 0} for n in wanted],
            "clusters": [{"name": c.name, "id": c.cluster_id, "group": c.custom_tags.get("group"),
                          "state": c.state} for c in sorted(clusters, key=lambda c: c.name)],
            "serverless_compute": [{"label": label, "id": oid} for label, oid in settings.workspace.serverless_objects],
            "catalog": settings.content.catalog,
            "schemas": _schemas(gw, settings),
            "folders": _folders(gw, settings, wanted),
        },
        "terraform_output": terraform_output(TERRAFORM_ENVIRONMENTS / settings.environment),
        "status_page_url": settings.status.url,
        "policy": {"source": policy.source, "unit": policy.unit.name, "daily_max": caps.daily_max,
                   "weekly_max": caps.weekly_max, "semester_max": caps.semester_max,
                   "semester": [d.isoformat() if d else None for d in (caps.semester_start, caps.semester_end)]},
        "ledger": str(settings.ledger.db_path) if settings.ledger.db_path else "PostgreSQL (DATABASE_URL)",
        "created_at": (previous or {}).get("created_at", at),
        "updated_at": at,
        "events": events,
        "tool_version": version,
    }


def write_record(ctx: JobContext, now: datetime, event: str, path: Path, *, version: str) -> dict | None:
    """Build and write the record; a failure is said and never undoes what the command did."""
    try:
        record = build_record(ctx, now, event, read_record(path), version=version)
        write_private(path, (json.dumps(record, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    except Exception as err:  # noqa: BLE001 - the record is a convenience; the command's work stands
        logger.error("the handoff record %s could not be written (%s: %s); run --handoff to write it", path,
                     type(err).__name__, err)
        return None
    logger.info("handoff record written to %s (%s)", path, event)
    return record
