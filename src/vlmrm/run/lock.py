"""The run lock: two processes never write one run directory."""

from __future__ import annotations

import os
from pathlib import Path

from vlmrm.errors import RunDirectoryError


class LockHeld(Exception):
    """Another process holds the lock; ``holder`` is the pid it wrote there (or ``unknown``)."""

    def __init__(self, holder: str):
        super().__init__(holder)
        self.holder = holder


def take_lock(path: Path) -> int | None:
    """Take an exclusive lock on the file ``path`` (made if missing) without waiting, and write this process's pid
    in it; return its descriptor, held until closed (the lock goes with the process, even on SIGKILL), or
    ``None`` where there is no ``fcntl`` (not POSIX: no lock). Raises :class:`LockHeld`, or the ``OSError`` of
    opening the file."""
    try:
        import fcntl
    except ImportError:
        return None
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise LockHeld(holder) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


class RunLock:
    """An exclusive lock on ``RUN_DIR/.lock`` (released when the process ends, even on SIGKILL)."""

    NAME = ".lock"

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / self.NAME
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        try:
            self._fd = take_lock(self.path)
        except IsADirectoryError:
            raise RunDirectoryError(
                f"{str(self.path)!r} is a directory, but vlmrm keeps its lock file there; move it away (vlmrm "
                "writes nothing else under that name), then run the command again."
            ) from None
        except LockHeld as held:
            raise RunDirectoryError(
                f"Run directory {str(self.path.parent)!r} is in use by another vlmrm process (pid {held.holder}). "
                "Wait for it to finish or stop it (it writes a checkpoint on SIGTERM), then resume."
            ) from None
        return self

    def is_held(self) -> bool:
        """Whether a process holds the lock now (a trainer holds it while it trains); it is not taken here."""
        if not self.path.is_file():
            return False
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock to test
            return False
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)  # closing releases a lock taken here
        return False

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


__all__ = [
    "LockHeld",
    "RunLock",
    "take_lock",
]
