"""Atomic file writes: a reader sees the old file or the complete new one, never a half-written one.

The ground floor of vlmrm (it imports nothing of vlmrm): runs, checkpoints, logs, datasets, sweeps,
reports and benchmarks all write through :func:`atomic_write`.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

TEMP_MARK = ".tmp"
"""Part of the name of every temporary file :func:`atomic_write` makes (``.<name>.<random>.tmp<suffix>``)."""


def atomic_write(path: str | Path, write: Callable[[Path], object], tmp_suffix: str = "") -> None:
    """Call ``write(tmp_path)``, fsync the file, then rename it over ``path``.

    The rename is atomic on POSIX file systems: readers see either the old file or the complete
    new one. On failure (a full disk, say) the temporary file is removed, ``path`` is untouched and
    the ``OSError`` names ``path`` (not the temporary file). ``tmp_suffix`` ends the temporary
    file's name, for writers that pick a format by extension (``".mp4"``, ``".png"``). A process
    killed mid-write leaves a hidden ``.<name>.<random>.tmp<suffix>`` file; :func:`remove_temp_files`
    deletes those.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_MARK + tmp_suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes the file private; give it the usual permissions
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        directory_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory_fd)
        finally:
            os.close(directory_fd)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (:func:`atomic_write`)."""
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`atomic_write`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def remove_temp_files(directory: Path) -> list[Path]:
    """Delete the temporary files that writes killed half-way left in ``directory``."""
    removed = []
    if directory.is_dir():
        for path in directory.iterdir():
            if path.name.startswith(".") and TEMP_MARK in path.name and path.is_file():
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


__all__ = [
    "TEMP_MARK",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "remove_temp_files",
]
