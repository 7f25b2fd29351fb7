"""Semester-end notebook backup and restore: every user's home folder, /Shared and the group folders.

Export keeps language and format (SOURCE with the extension of the language, or DBC or JUPYTER
on request) and writes manifest.json with path, language, format, size and sha256. The manifest
is rewritten after every file, so a second run resumes where the first stopped: files already
exported with a matching checksum are skipped. What the export API cannot back up (Git folders,
dashboards, files over its 10 MB limit) is listed in the manifest as `skipped`, with the reason.

DBC restores delete the target first: the import API refuses `overwrite` for DBC.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from databricks.teachinglab.adapters.files import private_folder, write_private

logger = logging.getLogger(__name__)
SOURCE_EXT = {"PYTHON": ".py", "SQL": ".sql", "SCALA": ".scala", "R": ".r"}
FORMAT_EXT = {"DBC": ".dbc", "JUPYTER": ".ipynb", "HTML": ".html"}
MANIFEST = "manifest.json"


# The Workspace API's export (and import) refuses content over 10 MB with MAX_NOTEBOOK_SIZE_EXCEEDED
# (databricks-sdk WorkspaceAPI.export/import_ docstrings).
EXPORT_LIMIT_BYTES = 10 * 1024 * 1024
# Objects the export API cannot back up as files, and what the admin should do instead.
NOT_EXPORTED = {
    "REPO": "Git folder: its content lives in its remote repository; commit and push, or re-clone it",
    "DASHBOARD": "dashboard: not a notebook; export it from the dashboard's menu (or the Lakeview API)",
    "LIBRARY": "workspace library: re-install it from its source (PyPI, Maven, a volume)",
}


@dataclass
class Result:
    exported: int = 0
    skipped: int = 0
    imported: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    not_exported: list[tuple[str, str]] = field(default_factory=list)  # (path, why): in manifest.json


def _walk(gateway, root: str, not_exported: list[tuple[str, str, str]]):
    stack = [root]
    while stack:
        for path, kind, language, size in gateway.list_dir(stack.pop()):
            if kind == "DIRECTORY":
                stack.append(path)
            elif kind in NOT_EXPORTED:
                not_exported.append((path, kind, NOT_EXPORTED[kind]))
            elif kind == "FILE" and size and size > EXPORT_LIMIT_BYTES:
                not_exported.append((path, kind, f"file of {size / 2**20:.1f} MB, over the export API's 10 MB "
                                                 "limit: copy it with the Databricks CLI (databricks workspace export)"))
            elif kind in ("NOTEBOOK", "FILE"):
                yield path, kind, language


def _local_name(path: str, kind: str, language: str | None, fmt: str) -> str:
    if kind == "FILE":
        return path.lstrip("/")
    ext = SOURCE_EXT.get(language or "", ".txt") if fmt == "SOURCE" else FORMAT_EXT[fmt]
    return path.lstrip("/") + ext


def _load(manifest: Path) -> dict[str, dict]:
    """The exported entries of a manifest (those with a file), by workspace path."""
    if manifest.exists():
        return {e["path"]: e for e in json.loads(manifest.read_text(encoding="utf-8"))["files"]
                if e.get("status", "exported") == "exported"}
    return {}


def _save(manifest: Path, entries: dict[str, dict], skipped: dict[str, dict]) -> None:
    """`files` lists every object the backup saw, each with its status (exported, or skipped with
    the reason); `skipped` repeats the skipped ones, so they are never missed."""
    everything = [{**e, "status": "exported"} for e in entries.values()] + list(skipped.values())
    write_private(manifest, json.dumps({"files": sorted(everything, key=lambda e: e["path"]),
                                        "skipped": sorted(skipped.values(), key=lambda e: e["path"])},
                                       indent=1, ensure_ascii=False).encode("utf-8"))


def inside(folder: Path, name: str) -> Path | None:
    """`folder / name` when it stays inside `folder` (links resolved); None for ../.env and the like."""
    root = folder.resolve()
    target = (folder / name).resolve()
    return target if target != root and root in target.parents else None


def export_all(gateway, out: Path, *, fmt: str = "SOURCE", progress=None, dry_run: bool = False) -> Result:
    manifest = out / MANIFEST
    entries = _load(manifest)
    # Group folders too: dedicated group clusters work in /Workspace/Groups/<group>, and the
    # course's notebooks are deployed there (a missing folder lists as empty).
    roots = [f"/Users/{p.user_name}" for p in gateway.users()] + ["/Shared", "/Workspace/Groups"]
    passed_over: list[tuple[str, str, str]] = []
    objects = [o for root in roots for o in _walk(gateway, root, passed_over)]
    skipped = {path: {"path": path, "kind": kind, "status": "skipped", "reason": why}
               for path, kind, why in passed_over}
    result = Result(not_exported=[(path, why) for path, _, why in passed_over])
    for path, kind, why in passed_over:
        logger.warning("not exported: %s (%s): %s", path, kind, why)
    if not dry_run:
        private_folder(out)
        _save(manifest, entries, skipped)
    for path, kind, language in (progress(objects) if progress else objects):
        local = inside(out, _local_name(path, kind, language, fmt))
        if local is None:
            result.failed.append((path, "its name would write outside the backup folder: not exported"))
            continue
        done = entries.get(path)
        if done and done["format"] == fmt and local.exists() and \
                hashlib.sha256(local.read_bytes()).hexdigest() == done["sha256"]:
            result.skipped += 1
            continue
        if dry_run:
            result.exported += 1
            continue
        try:
            data = gateway.export(path, "AUTO" if kind == "FILE" else fmt)
        except Exception as err:  # noqa: BLE001 - keep going, list it
            if "MAX_NOTEBOOK_SIZE_EXCEEDED" in str(getattr(err, "error_code", "")) + str(err):
                why = "over the export API's 10 MB limit: export it by hand from the workspace UI"
                skipped[path] = {"path": path, "kind": kind, "status": "skipped", "reason": why}
                result.not_exported.append((path, why))
                _save(manifest, entries, skipped)
            else:
                result.failed.append((path, f"{type(err).__name__}: {err}"))
            continue
        write_private(local, data)
        entries[path] = {"path": path, "kind": kind, "language": language, "format": fmt if kind != "FILE" else "AUTO",
                         "file": str(local.relative_to(out.resolve())), "size": len(data),
                         "sha256": hashlib.sha256(data).hexdigest()}
        skipped.pop(path, None)
        _save(manifest, entries, skipped)
        result.exported += 1
    return result


def import_all(gateway, folder: Path, *, user: str | None = None, progress=None, dry_run: bool = False) -> Result:
    manifest = folder / MANIFEST
    if not manifest.exists():
        raise FileNotFoundError(f"{manifest} not found: export with --export_notebooks first")
    entries = list(_load(manifest).values())
    if user:
        entries = [e for e in entries if e["path"].lower().startswith(f"/users/{user.lower()}/")]
    result = Result()
    for e in (progress(entries) if progress else entries):
        local = inside(folder, str(e.get("file") or ""))
        if local is None or not str(e.get("path") or "").startswith("/"):
            result.failed.append((str(e.get("path")), f"the manifest names {e.get('file')!r}, outside the backup "
                                                      "folder (or no workspace path): refused, nothing read"))
            continue
        try:
            data = local.read_bytes()
        except OSError as err:
            result.failed.append((e["path"], f"cannot read {e['file']}: {err.strerror}"))
            continue
        if hashlib.sha256(data).hexdigest() != e["sha256"]:
            result.failed.append((e["path"], "checksum differs from the manifest: the backup file changed"))
            continue
        if dry_run:
            result.imported += 1
            continue
        try:
            gateway.import_(e["path"], data, e["format"], e["language"] if e["format"] == "SOURCE" else None)
            result.imported += 1
        except Exception as err:  # noqa: BLE001
            result.failed.append((e["path"], f"{type(err).__name__}: {err}"))
    return result
