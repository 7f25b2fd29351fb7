"""Workspace files and notebooks, and cluster libraries."""
from __future__ import annotations

import base64
import itertools
import posixpath

from .errors import ApiError

LANGUAGE_EXT = {"PYTHON": ".py", "SQL": ".sql", "SCALA": ".scala", "R": ".r"}
FORMATS = ("SOURCE", "HTML", "JUPYTER", "DBC", "R_MARKDOWN", "AUTO")
EXPORT_LIMIT = 10 * 1024 * 1024  # "MAX_NOTEBOOK_SIZE_EXCEEDED" past 10 MB (WorkspaceAPI.export/import_)


class WorkspaceTree:
    def __init__(self, now_ms=lambda: 0):
        self._ids = itertools.count(1)
        self.now_ms = now_ms   # ObjectInfo.created_at / modified_at, in ms (the workspace's clock)
        self.objects: dict[str, dict] = {}
        self.mkdirs("/")
        self.mkdirs("/Users")
        self.mkdirs("/Shared")

    def _status(self, path: str) -> dict:
        obj = self.objects.get(_norm(path))
        if obj is None:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Path ({path}) doesn't exist.")
        return obj

    def get_status(self, path: str) -> dict:
        obj = self._status(path)
        return {k: v for k, v in obj.items() if k not in ("content", "acl")}

    def mkdirs(self, path: str) -> None:
        path = _norm(path)
        parts = [p for p in path.split("/") if p]
        current = "/"
        for part in [""] + parts:
            current = posixpath.join(current, part) if part else "/"
            existing = self.objects.get(current)
            if existing and existing["object_type"] != "DIRECTORY":
                raise ApiError(400, "RESOURCE_ALREADY_EXISTS", f"{current} exists and is not a directory")
            if not existing:
                self.objects[current] = {"path": current, "object_type": "DIRECTORY",
                                         "object_id": next(self._ids)}

    def import_(self, body: dict) -> None:
        path = _norm(body.get("path", ""))
        fmt = (body.get("format") or "SOURCE").upper()
        if fmt not in FORMATS:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Unknown format {fmt}")
        language = body.get("language")
        if fmt == "SOURCE" and not language:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", "language is required for SOURCE format")
        if fmt == "DBC" and body.get("overwrite"):
            # Workspace API import: "For DBC format, overwrite is not supported since it may
            # contain a directory" (databricks-sdk WorkspaceAPI.import_).
            raise ApiError(400, "INVALID_PARAMETER_VALUE", "overwrite is not supported for DBC format")
        if path in self.objects and not body.get("overwrite"):
            raise ApiError(400, "RESOURCE_ALREADY_EXISTS", f"Path ({path}) already exists.")
        parent = posixpath.dirname(path)
        if parent not in self.objects:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"The parent folder ({parent}) does not exist.")
        content = base64.b64decode(body.get("content") or "")
        if len(content) > EXPORT_LIMIT:
            raise ApiError(400, "MAX_NOTEBOOK_SIZE_EXCEEDED", f"Content of {path} is over the 10 MB limit")
        before = self.objects.get(path)
        self.objects[path] = {"path": path, "object_type": "NOTEBOOK",
                              "language": language or "PYTHON",
                              "object_id": before["object_id"] if before else next(self._ids),
                              "size": len(content), "content": content, "format": fmt,
                              "created_at": before.get("created_at", self.now_ms()) if before else self.now_ms(),
                              "modified_at": self.now_ms()}
        if before and "acl" in before:
            self.objects[path]["acl"] = before["acl"]

    def add_object(self, path: str, object_type: str, *, size: int = 0, content: bytes = b"") -> None:
        """A Git folder (REPO), dashboard, library or large file, as other tools leave them."""
        path = _norm(path)
        self.mkdirs(posixpath.dirname(path))
        self.objects[path] = {"path": path, "object_type": object_type, "object_id": next(self._ids),
                              "size": size or len(content), "content": content}

    def by_id(self, object_id: str) -> dict:
        for obj in self.objects.values():
            if str(obj["object_id"]) == str(object_id):
                return obj
        raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Object {object_id} does not exist")

    def permissions(self, object_id: str, kind: str) -> dict:
        obj = self.by_id(object_id)
        acl = [{key: name, "all_permissions": [{"permission_level": level, "inherited": False}]}
               for (key, name), level in sorted(obj.get("acl", {}).items())]
        acl.append({"group_name": "admins", "all_permissions": [
            {"permission_level": "CAN_MANAGE", "inherited": True, "inherited_from_object": ["/directories/"]}]})
        return {"object_id": f"/{kind}/{object_id}", "object_type": kind.rstrip("s"), "access_control_list": acl}

    def patch_permissions(self, object_id: str, kind: str, body: dict) -> dict:
        obj = self.by_id(object_id)
        for entry in body.get("access_control_list") or []:
            key = next((k for k in ("user_name", "group_name", "service_principal_name") if entry.get(k)), None)
            if key is None or entry.get("permission_level") not in ("CAN_READ", "CAN_RUN", "CAN_EDIT", "CAN_MANAGE"):
                raise ApiError(400, "INVALID_PARAMETER_VALUE", "Each entry needs a principal and a valid level")
            if key == "group_name" and entry[key] == "admins":
                raise ApiError(400, "INVALID_PARAMETER_VALUE",
                               f"it is not possible to modify admin permissions for {kind} resources")
            obj.setdefault("acl", {})[(key, entry[key])] = entry["permission_level"]
        return self.permissions(object_id, kind)

    def export(self, path: str, fmt: str) -> dict:
        obj = self._status(path)
        if obj.get("size", 0) > EXPORT_LIMIT:
            raise ApiError(400, "MAX_NOTEBOOK_SIZE_EXCEEDED", f"Export of {path} would exceed the size limit")
        if obj["object_type"] in ("REPO", "DASHBOARD", "LIBRARY"):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"{obj['object_type']} objects cannot be exported")
        if obj["object_type"] == "DIRECTORY" and (fmt or "SOURCE").upper() != "DBC":
            raise ApiError(400, "INVALID_PARAMETER_VALUE", "Directories export only as DBC")
        content = obj.get("content", b"")
        return {"content": base64.b64encode(content).decode(),
                "file_type": LANGUAGE_EXT.get(obj.get("language", ""), "").lstrip(".")}

    def list(self, path: str) -> dict:
        obj = self._status(path)
        if obj["object_type"] != "DIRECTORY":
            return {"objects": [self.get_status(path)]}
        base = obj["path"]
        children = [self.get_status(p) for p in sorted(self.objects)
                    if p != base and posixpath.dirname(p) == base]
        return {"objects": children} if children else {}

    def delete(self, path: str, recursive: bool) -> None:
        path = _norm(path)
        self._status(path)
        below = [p for p in self.objects if p.startswith(path.rstrip("/") + "/")]
        if below and not recursive:
            raise ApiError(400, "DIRECTORY_NOT_EMPTY", f"Folder ({path}) is not empty")
        for p in below + [path]:
            self.objects.pop(p, None)


class Libraries:
    def __init__(self):
        self.by_cluster: dict[str, list[dict]] = {}

    def install(self, cluster_id: str, libraries: list[dict], cluster_running: bool) -> None:
        current = self.by_cluster.setdefault(cluster_id, [])
        known = [entry["library"] for entry in current]
        for lib in libraries:
            if lib not in known:
                current.append({"library": lib, "status": "INSTALLED" if cluster_running else "PENDING",
                                "is_library_for_all_clusters": False})

    def cluster_started(self, cluster_id: str) -> None:
        for entry in self.by_cluster.get(cluster_id, []):
            if entry["status"] == "PENDING":
                entry["status"] = "INSTALLED"

    def status(self, cluster_id: str) -> dict:
        return {"cluster_id": cluster_id, "library_statuses": self.by_cluster.get(cluster_id, [])}


def _norm(path: str) -> str:
    if not path or not path.startswith("/"):
        raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Path ({path}) must be absolute")
    path = posixpath.normpath(path) if path != "/" else "/"
    # "/Workspace/Users/x" and "/Users/x" name the same object (the UI's path and the API's).
    return path[len("/Workspace"):] if path.startswith("/Workspace/") else path
