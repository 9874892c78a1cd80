"""Checkpoints written atomically, so a kill during a write never destroys the previous one."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

CHECKPOINT_PATTERN = re.compile(r"^step_(\d+)\.zip$")


def checkpoint_path(directory: Path, step: int) -> Path:
    return directory / f"step_{step:010d}.zip"


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_path)``, fsync the file, then rename it over ``path``.

    The rename is atomic on POSIX file systems: readers see either the old file or the complete
    new one. On failure (a full disk, say) the temporary file is removed and ``path`` is untouched.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        directory_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory_fd)
        finally:
            os.close(directory_fd)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def list_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every checkpoint in ``directory``, oldest first."""
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        match = CHECKPOINT_PATTERN.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def prune_checkpoints(directory: Path, keep: int, companions: tuple[str, ...] = ()) -> None:
    """Delete all but the newest ``keep`` checkpoints (and their companion files, by suffix)."""
    for _, path in list_checkpoints(directory)[:-keep] if keep > 0 else []:
        path.unlink(missing_ok=True)
        for suffix in companions:
            path.with_suffix(suffix).unlink(missing_ok=True)
