"""The course's notebooks (COURSE_NOTEBOOKS_DIR, source format) deployed to the groups.

Each group gets a copy in `<its folder>/course-notebooks` (the folder it manages), or, with
COURSE_NOTEBOOKS_SHARED, one copy goes to `/Workspace/Groups/<course>-students/course-notebooks`,
which every course group may read (CAN_READ: they open it and clone what they work on).

A second run deploys only what changed: the lab keeps, per deployed notebook, the checksum it
deployed and the workspace's `modified_at` right after (course_notebooks.json in the lab's state
folder). A notebook edited in the workspace since (a group working in its copy) is never
overwritten: it is reported, and the new version goes there only once the group deletes its copy.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from databricks.teachinglab.adapters.files import write_private
from databricks.teachinglab.core.settings import ClusterSettings
from databricks.teachinglab.services.provisioning import Change

logger = logging.getLogger(__name__)
LANGUAGES = {".py": "PYTHON", ".sql": "SQL", ".scala": "SCALA", ".r": "R"}
SUBFOLDER = "course-notebooks"
STATE_FILE = "course_notebooks.json"


@dataclass(frozen=True)
class Notebook:
    name: str            # its path in the folder, without the extension ("week1/intro")
    file: Path
    fmt: str             # SOURCE | JUPYTER
    language: str | None
    sha256: str


def read_folder(folder: Path) -> tuple[list[Notebook], list[str]]:
    """The notebooks under `folder` (hidden files and folders left out) and what was passed over."""
    notebooks: dict[str, Notebook] = {}
    passed: list[str] = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue
        suffix = path.suffix.lower()
        if suffix not in LANGUAGES and suffix != ".ipynb":
            passed.append(f"{rel}: not a notebook in source format (.py, .sql, .scala, .r, .ipynb): not deployed")
            continue
        name = str(PurePosixPath(*rel.parts).with_suffix(""))
        if name in notebooks:
            passed.append(f"{rel}: {notebooks[name].file.name} has the same name without its extension, and a "
                          "workspace notebook has none: not deployed (rename one)")
            continue
        data = path.read_bytes()
        notebooks[name] = Notebook(name, path, "JUPYTER" if suffix == ".ipynb" else "SOURCE", LANGUAGES.get(suffix),
                                   hashlib.sha256(data).hexdigest())
    return list(notebooks.values()), passed


def destinations(cs: ClusterSettings, groups: list[str], shared: bool) -> list[tuple[str, str, str]]:
    """(folder, group, level) for each place the notebooks go: the group's own folder (it manages
    it), or one folder the students group reads."""
    if shared:
        return [(f"{cs.group_folder(cs.students_group)}/{SUBFOLDER}", cs.students_group, "CAN_READ")]
    return [(f"{cs.group_folder(g)}/{SUBFOLDER}", g, "CAN_MANAGE") for g in sorted(groups)]


def load_state(path: Path) -> dict[str, dict]:
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("deployed", {})
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        logger.error("%s cannot be read (%s): every course notebook counts as not deployed by the lab", path, err)
        return {}


def save_state(path: Path, state: dict[str, dict]) -> None:
    write_private(path, (json.dumps({"deployed": state}, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
                  .encode("utf-8"))


def plan_notebooks(gateway, folder: Path, cs: ClusterSettings, groups: list[str], *, shared: bool,
                   state_path: Path, planned_folders: set[str] = frozenset()) -> tuple[list[Change], list[str]]:
    """The imports (and folder grants) that bring every destination up to `folder`, and what is
    left alone with why. `planned_folders`: group folders provisioning makes already."""
    notebooks, notes = read_folder(folder)
    state = load_state(state_path)
    changes: list[Change] = []
    for where, group, level in destinations(cs, groups, shared):
        home = where.rsplit("/", 1)[0]
        if home not in planned_folders:
            holders = gateway.folder_managers(home, level)
            if holders is None or group not in holders:
                changes.append(Change("group_folder", home, f"{level} for {group}",
                                      run=lambda home=home, group=group, level=level:
                                      gateway.group_folder(home, group, level)))
        there = gateway.modified_times(where)   # one listing per destination, not a call per notebook
        for nb in notebooks:
            target = f"{where}/{nb.name}"
            exists = nb.name in there
            before = state.get(target)
            if exists and before is None:
                notes.append(f"{target} exists and was not deployed by the lab: left as it is (delete it to get "
                             "the course's version)")
                continue
            if exists and before["sha256"] == nb.sha256:
                continue
            if exists and there[nb.name] != before.get("modified_at"):
                notes.append(f"{target} was edited in the workspace since it was deployed: kept (the new version of "
                             f"{nb.file.name} goes there once the copy is deleted)")
                continue

            def deploy(nb=nb, target=target):
                gateway.import_(target, nb.file.read_bytes(), nb.fmt, nb.language)
                after = gateway.object_info(target)
                state[target] = {"sha256": nb.sha256, "modified_at": after[1] if after else None,
                                 "source": nb.name}
                save_state(state_path, state)
            changes.append(Change("deploy_notebook", target, "changed" if exists else "new", run=deploy))
    return changes, notes

