"""Check output paths before the work that fills them: a figure is never lost to an unwritable path."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from vlmrm.errors import ConfigError


def check_writable_dir(path: str | Path) -> Path:
    """Create ``path`` (and its parents) if needed and check a file can be written there; one-line error if not."""
    directory = Path(path)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise ConfigError(
            f"Cannot write to {str(directory)!r}: {exc.strerror or exc}. Choose another output directory."
        ) from None
    return directory


def check_writable_file(path: str | Path) -> Path:
    """Check that ``path`` can be written (its directory exists or can be made, and is writable)."""
    target = Path(path)
    if target.is_dir():
        raise ConfigError(f"{str(target)!r} is a directory; give a file name.")
    check_writable_dir(target.parent if str(target.parent) else ".")
    if target.exists() and not os.access(target, os.W_OK):
        raise ConfigError(f"Cannot write {str(target)!r}: permission denied. Choose another file.")
    return target
