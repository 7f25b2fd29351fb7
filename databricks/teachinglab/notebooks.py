"""Semester-end notebook backup and restore: every user's home folder and /Shared.

Export keeps language and format (SOURCE with the extension of the language, or DBC or JUPYTER
on request) and writes manifest.json with path, language, format, size and sha256. The manifest
is rewritten after every file, so a second run resumes where the first stopped: files already
exported with a matching checksum are skipped.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)
SOURCE_EXT = {"PYTHON": ".py", "SQL": ".sql", "SCALA": ".scala", "R": ".r"}
FORMAT_EXT = {"DBC": ".dbc", "JUPYTER": ".ipynb", "HTML": ".html"}
MANIFEST = "manifest.json"


@dataclass
class Result:
    exported: int = 0
    skipped: int = 0
    imported: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)


def _walk(gateway, root: str):
    stack = [root]
    while stack:
        for path, kind, language in gateway.list_dir(stack.pop()):
            if kind == "DIRECTORY":
                stack.append(path)
            elif kind in ("NOTEBOOK", "FILE"):
                yield path, kind, language


def _local_name(path: str, kind: str, language: str | None, fmt: str) -> str:
    if kind == "FILE":
        return path.lstrip("/")
    ext = SOURCE_EXT.get(language or "", ".txt") if fmt == "SOURCE" else FORMAT_EXT[fmt]
    return path.lstrip("/") + ext


def _load(manifest: Path) -> dict[str, dict]:
    if manifest.exists():
        return {e["path"]: e for e in json.loads(manifest.read_text(encoding="utf-8"))["files"]}
    return {}


def _save(manifest: Path, entries: dict[str, dict]) -> None:
    tmp = manifest.with_suffix(".tmp")
    tmp.write_text(json.dumps({"files": sorted(entries.values(), key=lambda e: e["path"])}, indent=1,
                              ensure_ascii=False), encoding="utf-8")
    tmp.replace(manifest)


def export_all(gateway, out: Path, *, fmt: str = "SOURCE", progress=None) -> Result:
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / MANIFEST
    entries = _load(manifest)
    roots = [f"/Users/{p.user_name}" for p in gateway.users()] + ["/Shared"]
    objects = [o for root in roots for o in _walk(gateway, root)]
    result = Result()
    for path, kind, language in (progress(objects) if progress else objects):
        local = out / _local_name(path, kind, language, fmt)
        done = entries.get(path)
        if done and done["format"] == fmt and local.exists() and \
                hashlib.sha256(local.read_bytes()).hexdigest() == done["sha256"]:
            result.skipped += 1
            continue
        try:
            data = gateway.export(path, "AUTO" if kind == "FILE" else fmt)
        except Exception as err:  # noqa: BLE001 - keep going, list it
            result.failed.append((path, f"{type(err).__name__}: {err}"))
            continue
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(data)
        entries[path] = {"path": path, "kind": kind, "language": language, "format": fmt if kind != "FILE" else "AUTO",
                         "file": str(local.relative_to(out)), "size": len(data),
                         "sha256": hashlib.sha256(data).hexdigest()}
        _save(manifest, entries)
        result.exported += 1
    return result


def import_all(gateway, folder: Path, *, user: str | None = None, progress=None) -> Result:
    manifest = folder / MANIFEST
    if not manifest.exists():
        raise FileNotFoundError(f"{manifest} not found: export with --export_notebooks first")
    entries = list(_load(manifest).values())
    if user:
        entries = [e for e in entries if e["path"].lower().startswith(f"/users/{user.lower()}/")]
    result = Result()
    for e in (progress(entries) if progress else entries):
        data = (folder / e["file"]).read_bytes()
        if hashlib.sha256(data).hexdigest() != e["sha256"]:
            result.failed.append((e["path"], "checksum differs from the manifest: the backup file changed"))
            continue
        try:
            gateway.import_(e["path"], data, e["format"], e["language"] if e["format"] == "SOURCE" else None)
            result.imported += 1
        except Exception as err:  # noqa: BLE001
            result.failed.append((e["path"], f"{type(err).__name__}: {err}"))
    return result


