"""Files the product writes: reports, simulations, .eml files, exports, backups, the handoff.

They carry student names and addresses and status-page links, so each is made private (0600) in a
folder this makes private (0700), and none is written through a symbolic link somebody planted
where it goes: the file is written beside its name and renamed over it (a rename replaces a link,
never follows it), and the temporary file is opened with O_NOFOLLOW | O_EXCL.
"""
from __future__ import annotations

import os
from pathlib import Path


class UnsafePath(OSError):
    """Where a file was to be written, something is not what it should be (a link, a folder)."""


def private_folder(folder: Path) -> Path:
    """Make `folder` (and missing parents) 0700; one that exists keeps its mode. A folder that is
    a symbolic link is refused: what it points at is not ours to fill."""
    folder = Path(folder)
    if folder.is_symlink():
        raise UnsafePath(f"{folder} is a symbolic link: give a real folder")
    missing = []
    for parent in [folder, *folder.parents]:
        if parent.exists():
            break
        missing.append(parent)
    for path in reversed(missing):
        path.mkdir(mode=0o700)
        os.chmod(path, 0o700)
    if not folder.is_dir():
        raise UnsafePath(f"{folder} is not a folder")
    return folder


def write_private(path: Path, data: bytes) -> Path:
    """Write `data` to `path` as a 0600 file in a 0700 folder, atomically, without following a link
    planted at `path` or at its temporary name."""
    path = Path(path)
    private_folder(path.parent)
    if path.is_dir() and not path.is_symlink():
        raise UnsafePath(f"{path} is a folder")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.unlink()
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
