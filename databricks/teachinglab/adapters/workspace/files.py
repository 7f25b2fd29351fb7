"""Workspace files and notebooks: listing, export and import (the semester's backup)."""
from __future__ import annotations

import base64
import logging
import posixpath

from databricks.sdk.service import workspace as ws_service

from databricks.teachinglab.adapters.workspace.base import ApiFailure, NotFound

logger = logging.getLogger(__name__)


def _without_workspace(path: str) -> str:
    return path[len("/Workspace"):] if path.startswith("/Workspace/") else path


class FilesApi:
    def list_dir(self, path: str) -> list[tuple[str, str, str | None, int | None]]:
        """(path, object_type, language, size) of the objects directly under `path`."""
        try:
            items = self._retry(f"list {path}", lambda: list(self.client.workspace.list(path)))
        except NotFound:
            return []
        return [(o.path, o.object_type.value if o.object_type else "", o.language.value if o.language else None,
                 o.size) for o in items]

    def modified_times(self, root: str) -> dict[str, int | None]:
        """modified_at (ms) of every object below `root`, by its path relative to `root` ("week1/intro");
        {} when `root` does not exist. One listing per folder instead of a status call per object."""
        try:
            items = self._retry(f"list {root}", lambda: list(self.client.workspace.list(root, recursive=True)))
        except NotFound:
            return {}
        # "/Workspace/Users/x" and "/Users/x" name the same object: the API may answer either form.
        base = _without_workspace(root).rstrip("/") + "/"
        return {_without_workspace(o.path)[len(base):]: o.modified_at for o in items
                if o.path and _without_workspace(o.path).startswith(base)}

    def object_info(self, path: str) -> tuple[str, int | None, int | None] | None:
        """(object_type, modified_at in ms, object_id) of the object at `path`, or None when there is none."""
        try:
            info = self._retry(f"status of {path}", lambda: self.client.workspace.get_status(path))
        except NotFound:
            return None
        return (info.object_type.value if info.object_type else "", info.modified_at, info.object_id)

    def export(self, path: str, fmt: str) -> bytes:
        res = self._retry(f"export {path}", lambda: self.client.workspace.export(
            path, format=ws_service.ExportFormat(fmt)))
        return base64.b64decode(res.content or "")

    def import_(self, path: str, content: bytes, fmt: str, language: str | None) -> None:
        self._retry(f"mkdirs {path}", lambda: self.client.workspace.mkdirs(posixpath.dirname(path)))
        if fmt != "DBC":
            self._once(f"import {path}", lambda: self._import(path, content, fmt, language, overwrite=True))
            return
        # The import API refuses overwrite for DBC ("it may contain a directory"), so the target is
        # deleted first. Its current version is kept in memory and put back if the import fails:
        # a restore must never leave the student with neither version.
        try:
            current = self.export(path, "DBC")
        except NotFound:
            current = None
        except ApiFailure as err:
            raise RuntimeError(f"{path} exists and cannot be saved before it is replaced ({err}); "
                               "nothing changed: delete it by hand, or restore in SOURCE format") from None
        if current is not None:
            self._retry(f"delete {path}", lambda: self.client.workspace.delete(path))
        try:
            self._once(f"import {path}", lambda: self._import(path, content, "DBC", None, overwrite=False))
        except Exception:
            if current is not None:
                self._once(f"put back {path}", lambda: self._import(path, current, "DBC", None, overwrite=False))
                logger.error("%s: DBC import failed; the version that was there is back in place", path)
            raise

    def _import(self, path: str, content: bytes, fmt: str, language: str | None, *, overwrite: bool) -> None:
        self.client.workspace.import_(
            path, content=base64.b64encode(content).decode(), format=ws_service.ImportFormat(fmt),
            language=ws_service.Language(language) if language else None, overwrite=overwrite)
