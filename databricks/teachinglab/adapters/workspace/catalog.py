"""Unity Catalog: the course's catalog, its schemas and their grants (databricks-sdk CatalogsAPI,
SchemasAPI, GrantsAPI). Grants are only ever added or removed by name (PATCH `changes`): every
other principal's privileges stay as they are."""
from __future__ import annotations

from dataclasses import dataclass

from databricks.sdk.service import catalog as uc

from databricks.teachinglab.adapters.workspace.base import NotFound


@dataclass(frozen=True)
class Securable:
    full_name: str
    owner: str | None
    properties: dict
    comment: str | None = None
    schema_id: str | None = None   # a schema's id (SchemaInfo.schema_id); None for a catalog


def _securable(info) -> Securable:
    return Securable(info.full_name or info.name, info.owner, dict(info.properties or {}), info.comment,
                     getattr(info, "schema_id", None))


class CatalogApi:
    def catalog(self, name: str) -> Securable | None:
        try:
            return _securable(self._retry(f"catalog {name}", lambda: self.client.catalogs.get(name)))
        except NotFound:
            return None

    def create_catalog(self, name: str, *, comment: str, properties: dict, storage_root: str | None) -> Securable:
        return _securable(self._once(f"create catalog {name}", lambda: self.client.catalogs.create(
            name, comment=comment, properties=properties, storage_root=storage_root)))

    def schema(self, full_name: str) -> Securable | None:
        try:
            return _securable(self._retry(f"schema {full_name}", lambda: self.client.schemas.get(full_name)))
        except NotFound:
            return None

    def schemas(self, catalog_name: str) -> list[Securable]:
        try:
            return [_securable(s) for s in self._retry(f"schemas of {catalog_name}",
                                                       lambda: list(self.client.schemas.list(catalog_name)))]
        except NotFound:
            return []

    def create_schema(self, catalog_name: str, name: str, *, comment: str, properties: dict) -> Securable:
        return _securable(self._once(f"create schema {catalog_name}.{name}", lambda: self.client.schemas.create(
            name, catalog_name, comment=comment, properties=properties)))

    def delete_schema(self, full_name: str) -> None:
        """With its tables and volumes (force): the caller has exported and confirmed."""
        self._retry(f"drop schema {full_name}", lambda: self.client.schemas.delete(full_name, force=True))

    def grants(self, kind: str, full_name: str) -> dict[str, set[str]]:
        """principal -> privileges granted directly on the catalog or schema."""
        res = self._retry(f"grants on {kind} {full_name}", lambda: self.client.grants.get(kind, full_name))
        return {a.principal: {p.value for p in a.privileges or []} for a in res.privilege_assignments or []
                if a.principal}

    def grant_privileges(self, kind: str, full_name: str, principal: str, privileges: list[str]) -> None:
        """Add privileges for one principal (adding what is held already changes nothing, so a retry is safe)."""
        self._retry(f"grant on {kind} {full_name}", lambda: self.client.grants.update(kind, full_name, changes=[
            uc.PermissionsChange(principal=principal, add=[uc.Privilege(p) for p in privileges])]))
