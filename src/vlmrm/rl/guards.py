"""What keeps a long run from dying badly: reward checks, graceful signals, clear write errors, a run lock.

- :class:`RewardGuard` wraps a reward function (``frames -> rewards``) and stops the run with
  :class:`~vlmrm.errors.RewardError` on a NaN or infinite reward, saving the offending frames as PNG.
- :class:`GracefulInterrupt` turns the first SIGINT or SIGTERM into a flag the trainer checks
  after each step (it then writes a checkpoint and exits); a second SIGINT interrupts at once.
- :func:`write_error` turns an ``OSError`` from writing a run file into a
  :class:`~vlmrm.errors.WriteError` that names the file, the intact checkpoint and the resume command.
- :class:`RunLock` keeps two processes from writing one run directory.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import shlex
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

from vlmrm.errors import RewardError, RunDirectoryError, WriteError
from vlmrm.reward.contract import Frames, RewardFunction, RewardFunctionWrapper
from vlmrm.rl.checkpoints import atomic_write, list_checkpoints

logger = logging.getLogger(__name__)

BAD_FRAMES_DIR = "bad_frames"
MAX_SAVED_FRAMES = 8


def resume_command(run_dir: Path) -> str:
    """The exact command that continues the run in ``run_dir``."""
    return f"vlmrm train --resume {shlex.quote(str(run_dir))}"


class RewardGuard(RewardFunctionWrapper):
    """A :class:`~vlmrm.reward.contract.RewardFunction` that refuses NaN and infinite rewards of another.

    ``step()`` gives the step number to report. ``per_env``: the frames of one call are one per
    env (step mode), so the saved files say which env; otherwise (episode-end batching) they are
    whole episodes and the files are numbered by their position in the batch. Name, image size,
    batch size and device are those of the guarded reward.
    """

    def __init__(
        self,
        reward_fn: RewardFunction,
        bad_frame_dir: Path,
        step: Callable[[], int] = lambda: 0,
        per_env: bool = True,
        label: str = "env",
    ):
        super().__init__(reward_fn)
        self.bad_frame_dir = Path(bad_frame_dir)
        self.step = step
        self.per_env = per_env
        self.label = label

    def __call__(self, frames: Frames) -> np.ndarray:
        return self._checked(frames, self.reward_fn(frames))

    def score_episodes(self, episodes: Any) -> list[np.ndarray]:
        """Whole episodes (a video reward's windows), each checked as a call would be."""
        episodes = list(episodes)
        return [self._checked(e, r) for e, r in zip(episodes, super().score_episodes(episodes), strict=True)]

    def _checked(self, frames: Frames, rewards: Any) -> np.ndarray:
        rewards = np.asarray(rewards, dtype=np.float32)
        if rewards.shape != (len(frames),):
            raise RewardError(
                f"The reward model returned rewards of shape {rewards.shape} for {len(frames)} frames at step "
                f"{self.step()}; it must return one reward per frame."
            )
        bad = np.flatnonzero(~np.isfinite(rewards))
        if bad.size:
            self._fail(frames, rewards, bad)
        return rewards

    def _name(self, step: int, index: int) -> str:
        kind = self.label if self.per_env else "frame"
        return f"step_{step:010d}_{kind}_{index}.png"

    def _fail(self, frames: np.ndarray, rewards: np.ndarray, bad: np.ndarray) -> None:
        step = self.step()
        kinds = sorted({"NaN" if np.isnan(rewards[i]) else "infinity" for i in bad})
        saved: list[Path] = []
        for index in bad[:MAX_SAVED_FRAMES]:
            path = self.bad_frame_dir / self._name(step, int(index))
            try:
                atomic_write(path, functools.partial(_save_png, frames[int(index)]), tmp_suffix=".png")
                saved.append(path)
            except (OSError, ValueError, TypeError) as exc:  # the error about the reward matters more
                logger.warning("vlmrm: could not save the bad frame %s: %s", path, exc)
        where = (
            f"{self.label} {', '.join(str(i) for i in bad[:MAX_SAVED_FRAMES])}"
            if self.per_env
            else f"frame {', '.join(str(i) for i in bad[:MAX_SAVED_FRAMES])} of the {len(frames)} episode frames "
            "scored when episodes ended (episode-end batching)"
        )
        files = "\n".join(f"  {path}" for path in saved) or "  (none could be saved)"
        raise RewardError(
            f"The reward model returned {' and '.join(kinds)} for {bad.size} of {len(frames)} frames at step "
            f"{step} ({where}). Training stopped before the value reached the policy. The offending frames:\n{files}\n"
            "Check the reward model on these frames (reward.model; reward.dtype=fp16 can overflow, try fp32)."
        )


def _save_png(frame: Any, path: Path) -> None:
    from PIL import Image

    if hasattr(frame, "detach"):  # a torch tensor, maybe on the GPU (env.vectorized)
        frame = frame.detach().cpu().numpy()
    Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8)).save(path, format="PNG")


SIGNAL_EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class GracefulInterrupt:
    """A context in which the first SIGINT or SIGTERM only sets :attr:`received`.

    The trainer checks the flag after every environment step, writes a checkpoint and stops. A
    second SIGINT raises ``KeyboardInterrupt`` at once, a second SIGTERM ends the process the
    default way (the last checkpoint written stays intact either way). Outside the main thread
    signals cannot be caught and the context does nothing.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> GracefulInterrupt:
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNAL_EXIT_CODES:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.received is not None:
            self.restore()
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            os.kill(os.getpid(), signum)
            return
        self.received = signum
        logger.warning(
            "vlmrm: %s received: finishing the current step, then writing a checkpoint "
            "(send it again to stop at once, without a checkpoint)",
            name,
        )

    @property
    def exit_code(self) -> int:
        return SIGNAL_EXIT_CODES.get(signal.Signals(self.received), 1) if self.received else 1

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.received).name if self.received else ""


# Errors of the storage, as opposed to a broken pipe to a worker process and the like.
STORAGE_ERRNOS = {
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EROFS,
    errno.EIO,
    errno.EACCES,
    errno.EPERM,
    errno.EFBIG,
    errno.ENAMETOOLONG,
    errno.ENOENT,
}
_HINTS = {
    errno.ENOSPC: "Free disk space (logging.keep_checkpoints and logging.save_replay_buffer=false use less).",
    errno.EDQUOT: "Free space within your disk quota (or raise it).",
    errno.EROFS: "The file system is read-only; make it writable or move the run directory.",
    errno.EACCES: "Check the permissions of the run directory.",
    errno.EPERM: "Check the permissions of the run directory.",
}


def is_storage_error(exc: OSError, run_dir: Path) -> bool:
    """An error writing a file of the run (not, say, a broken pipe to an env worker)."""
    if exc.errno in STORAGE_ERRNOS:
        return True
    filename = exc.filename
    if filename:
        try:
            return Path(filename).resolve().is_relative_to(run_dir.resolve())
        except (OSError, ValueError):
            return False
    return False


def write_error(exc: OSError, run_dir: Path, what: str | None = None) -> WriteError:
    """A :class:`WriteError` that says which file, that the last checkpoint is intact, and how to resume."""
    target = what or exc.filename or f"a file in {run_dir}"
    reason = exc.strerror or str(exc)
    code = errno.errorcode.get(exc.errno or -1)
    lines = [f"Could not write {target}: {reason}" + (f" [{code}]." if code else ".")]
    if exc.errno in _HINTS:
        lines.append(_HINTS[exc.errno])
    checkpoints = list_checkpoints(run_dir / "checkpoints")
    if checkpoints:
        lines.append(f"The previous checkpoint {checkpoints[-1][1]} is intact; once fixed, resume with:")
    elif (run_dir / "config.yaml").is_file():
        lines.append("No checkpoint had been written yet; once fixed, start again from step 0 with:")
    else:
        lines.append("Nothing of the run was written; once fixed, run the same command again.")
        return WriteError("\n".join(lines))
    lines.append(f"  {resume_command(run_dir)}")
    return WriteError("\n".join(lines))


class RunLock:
    """An exclusive lock on ``RUN_DIR/.lock`` (released when the process ends, even on SIGKILL)."""

    NAME = ".lock"

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / self.NAME
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunDirectoryError(
                f"Run directory {str(self.path.parent)!r} is in use by another vlmrm process (pid {holder}). "
                "Wait for it to finish or stop it (it writes a checkpoint on SIGTERM), then resume."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
