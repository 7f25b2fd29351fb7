"""Unity Catalog: catalogs, schemas and their grants, as the lab provisions and tears them down.

Paths and bodies are those of databricks-sdk 0.156 (`CatalogsAPI`, `SchemasAPI`, `GrantsAPI`):
/unity-catalog/catalogs[/<name>], /unity-catalog/schemas[/<full_name>] (DELETE takes `force`),
/unity-catalog/permissions/<securable_type>/<full_name> (GET `privilege_assignments`, PATCH
`changes` of {principal, add, remove}). Behaviour modelled from the docs:

- "Create catalogs": a metastore without metastore-level storage (the auto-provisioned metastores
  of new Azure workspaces) needs a managed location for each new catalog; set `storage_root` on
  here with `metastore_storage = False` to see the refusal.
- "Manage groups" / identity federation: workspace-local groups cannot be granted Unity Catalog
  privileges; such a grant is refused as a principal that does not exist.
- "Unity Catalog privileges and securable objects": which privileges apply to a catalog and to a
  schema; reaching a schema's tables needs USE_CATALOG on its catalog and USE_SCHEMA on it;
  owners hold every privilege; creating a catalog needs CREATE_CATALOG on the metastore (here: the
  workspace admins); dropping a schema with tables needs `force`.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from .errors import ApiError
from .identity import Directory

SCHEMA_PRIVILEGES = {"ALL_PRIVILEGES", "APPLY_TAG", "BROWSE", "CREATE_FUNCTION", "CREATE_MATERIALIZED_VIEW",
                     "CREATE_MODEL", "CREATE_TABLE", "CREATE_VOLUME", "EXECUTE", "MANAGE", "MODIFY", "READ_VOLUME",
                     "REFRESH", "SELECT", "USE_SCHEMA", "WRITE_VOLUME"}
CATALOG_PRIVILEGES = SCHEMA_PRIVILEGES | {"CREATE_SCHEMA", "USE_CATALOG"}
APPLICABLE = {"catalog": CATALOG_PRIVILEGES, "schema": SCHEMA_PRIVILEGES}


@dataclass
class UnityCatalog:
    directory: Directory
    metastore_storage: bool = True          # False: an auto-provisioned metastore without root storage
    catalogs: dict[str, dict] = field(default_factory=dict)
    schemas: dict[str, dict] = field(default_factory=dict)
    grants: dict[tuple[str, str], dict[str, set[str]]] = field(default_factory=dict)
    tables: dict[str, set[str]] = field(default_factory=dict)   # schema full name -> table names

    # -- catalogs -----------------------------------------------------------------------------
    def create_catalog(self, body: dict, user: str, now_ms: int) -> dict:
        name = (body.get("name") or "").lower()
        if not name:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", "Missing required field: name")
        if not self.directory.is_admin(user):
            raise ApiError(403, "PERMISSION_DENIED", f"User does not have CREATE CATALOG on Metastore '{user}'.")
        if name in self.catalogs:
            raise ApiError(409, "CATALOG_ALREADY_EXISTS", f"Catalog '{name}' already exists")
        if not self.metastore_storage and not body.get("storage_root"):
            raise ApiError(400, "INVALID_PARAMETER_VALUE",
                           "Metastore storage root URL does not exist. Please provide a storage location for the "
                           "catalog (for example 'CREATE CATALOG myCatalog MANAGED LOCATION '<location-path>'').")
        self.catalogs[name] = {"name": name, "full_name": name, "owner": user, "comment": body.get("comment"),
                               "properties": dict(body.get("properties") or {}), "storage_root": body.get("storage_root"),
                               "catalog_type": "MANAGED_CATALOG", "created_at": now_ms, "created_by": user}
        return self.catalogs[name]

    def catalog(self, name: str) -> dict:
        found = self.catalogs.get(name.lower())
        if found is None:
            raise ApiError(404, "CATALOG_DOES_NOT_EXIST", f"Catalog '{name}' does not exist.")
        return found

    # -- schemas ------------------------------------------------------------------------------
    def create_schema(self, body: dict, user: str, now_ms: int) -> dict:
        catalog = self.catalog(body.get("catalog_name") or "")
        name = (body.get("name") or "").lower()
        if not name:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", "Missing required field: name")
        if not (self.directory.is_admin(user) or self.holds(user, "CREATE_SCHEMA", "catalog", catalog["name"])):
            raise ApiError(403, "PERMISSION_DENIED", f"User does not have CREATE SCHEMA on Catalog '{catalog['name']}'.")
        full = f"{catalog['name']}.{name}"
        if full in self.schemas:
            raise ApiError(409, "SCHEMA_ALREADY_EXISTS", f"Schema '{full}' already exists")
        self.schemas[full] = {"name": name, "catalog_name": catalog["name"], "full_name": full, "owner": user,
                              "schema_id": str(uuid.uuid4()),
                              "comment": body.get("comment"), "properties": dict(body.get("properties") or {}),
                              "created_at": now_ms, "created_by": user}
        return self.schemas[full]

    def schema(self, full_name: str) -> dict:
        found = self.schemas.get(full_name.lower())
        if found is None:
            raise ApiError(404, "SCHEMA_DOES_NOT_EXIST", f"Schema '{full_name}' does not exist.")
        return found

    def list_schemas(self, catalog_name: str) -> dict:
        catalog = self.catalog(catalog_name)
        return {"schemas": [s for full, s in sorted(self.schemas.items()) if s["catalog_name"] == catalog["name"]]}

    def delete_schema(self, full_name: str, user: str, force: bool) -> None:
        found = self.schema(full_name)
        if not (self.directory.is_admin(user) or found["owner"] == user):
            raise ApiError(403, "PERMISSION_DENIED", f"User is not an owner of Schema '{found['full_name']}'.")
        if self.tables.get(found["full_name"]) and not force:
            raise ApiError(400, "SCHEMA_NOT_EMPTY", f"Schema '{found['full_name']}' is not empty.")
        del self.schemas[found["full_name"]]
        self.tables.pop(found["full_name"], None)
        self.grants.pop(("schema", found["full_name"]), None)

    # -- grants -------------------------------------------------------------------------------
    def _securable(self, kind: str, full_name: str) -> dict:
        kind = kind.lower()
        if kind == "catalog":
            return self.catalog(full_name)
        if kind == "schema":
            return self.schema(full_name)
        raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Securable type {kind} is not supported here")

    def get_grants(self, kind: str, full_name: str) -> dict:
        obj = self._securable(kind, full_name)
        held = self.grants.get((kind.lower(), obj["full_name"]), {})
        return {"privilege_assignments": [{"principal": p, "privileges": sorted(privs)}
                                          for p, privs in sorted(held.items()) if privs]}

    def update_grants(self, kind: str, full_name: str, body: dict, user: str) -> dict:
        obj = self._securable(kind, full_name)
        kind = kind.lower()
        if not (self.directory.is_admin(user) or obj["owner"] == user):
            raise ApiError(403, "PERMISSION_DENIED", f"User does not have MANAGE on {kind} '{obj['full_name']}'.")
        changes = body.get("changes") or []
        for change in changes:  # all checked before any applies: a refused PATCH changes nothing
            principal = change.get("principal") or ""
            if not self._account_principal(principal):
                raise ApiError(400, "PRINCIPAL_DOES_NOT_EXIST", f"Could not find principal with name {principal}")
            for privilege in (change.get("add") or []) + (change.get("remove") or []):
                if privilege not in APPLICABLE[kind]:
                    raise ApiError(400, "INVALID_PARAMETER_VALUE",
                                   f"Privilege {privilege} is not applicable to this entity [{obj['full_name']}:{kind}]")
        held = self.grants.setdefault((kind, obj["full_name"]), {})
        for change in changes:
            privs = held.setdefault(change["principal"], set())
            privs |= set(change.get("add") or [])
            privs -= set(change.get("remove") or [])
        return self.get_grants(kind, full_name)

    def _account_principal(self, name: str) -> bool:
        """Users, service principals and account groups; never a workspace-local group."""
        if self.directory.find_principal(name) is not None:
            return True
        gid = self.directory.group_id(name, account=True)
        return gid is not None

    def holds(self, user: str, privilege: str, kind: str, full_name: str) -> bool:
        """Whether the user holds the privilege on the securable: as owner, directly or through a
        group, or (for a schema) through a grant on its catalog, which schemas inherit."""
        obj = self._securable(kind, full_name)
        if obj["owner"] == user:
            return True
        places = [(kind, obj["full_name"])] + ([("catalog", obj["catalog_name"])] if kind == "schema" else [])
        for place in places:
            for principal, privs in self.grants.get(place, {}).items():
                if privilege in privs or "ALL_PRIVILEGES" in privs:
                    if principal.lower() == user.lower() or self.directory.in_group(user, principal):
                        return True
        return False

    def can(self, user: str, privilege: str, schema: str) -> bool:
        """What a student can do in a schema: USE_CATALOG on its catalog, USE_SCHEMA and the
        privilege on it (or inherited from the catalog)."""
        found = self.schema(schema)
        return (self.holds(user, "USE_CATALOG", "catalog", found["catalog_name"])
                and self.holds(user, "USE_SCHEMA", "schema", found["full_name"])
                and self.holds(user, privilege, "schema", found["full_name"]))
