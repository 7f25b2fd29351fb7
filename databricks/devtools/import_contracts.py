"""A contract type import-linter lacks here: a third-party package under the `databricks` namespace.

The repository's `databricks/__init__.py` must stay the databricks-sdk namespace one-liner, so
`databricks` is a regular package to grimp and the only root it accepts. `databricks.sdk` then
cannot be an external package: grimp records `from databricks.sdk import X` as an import of the
root `databricks`. This contract reads the import lines themselves.
"""
from __future__ import annotations

from importlinter import Contract, ContractCheck, fields, output


class NamespacedPackageContract(Contract):
    """`package` (e.g. databricks.sdk) may be imported under `source` only by `allowed` modules
    (an allowed package: by its modules too)."""

    source = fields.StringField()
    package = fields.StringField()
    allowed = fields.ListField(subfield=fields.StringField(), required=False)

    def check(self, graph, verbose: bool) -> ContractCheck:
        root = self.package.split(".")[0]
        allowed = set(self.allowed or [])
        offenders = []
        for module in sorted(graph.find_descendants(self.source) | {self.source}):
            inside = any(module == a or module.startswith(a + ".") for a in allowed)
            if inside or root not in graph.find_modules_directly_imported_by(module):
                continue
            for detail in graph.get_import_details(importer=module, imported=root):
                line = detail["line_contents"]
                if f"{self.package} " in line + " " or f"{self.package}." in line or \
                        line.startswith(f"from {root} import {self.package.split('.', 1)[1]}"):
                    offenders.append({"module": module, "line": detail["line_number"], "text": line})
        return ContractCheck(kept=not offenders, metadata={"offenders": offenders})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for o in check.metadata["offenders"]:
            output.print_error(f"{o['module']} (l.{o['line']}) imports {self.package}: {o['text']}")
            output.new_line()
