"""What keeps a long run from dying badly: reward checks, graceful signals, clear write errors, a run lock.

- :class:`RewardGuard` wraps a reward function (``frames -> rewards``) and stops the run with
  :class:`~vlmrm.errors.RewardError` on a NaN or infinite reward, saving the offending frames as PNG.
- :class:`GracefulInterrupt` turns the first SIGINT or SIGTERM into a flag the trainer checks
  after each step (it then writes a checkpoint and exits); a second SIGINT interrupts at once.
- :func:`write_error` turns an ``OSError`` from writing a run file into a
  :class:`~vlmrm.errors.WriteError` that names the file, the intact checkpoint and the resume command.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

from vlmrm.config import TrainConfig
from vlmrm.errors import RewardError, WriteError
from vlmrm.files import atomic_write
from vlmrm.memory import check_fits
from vlmrm.reward.contract import Frames, RewardFunction, RewardFunctionWrapper
from vlmrm.run.run_dir import RunDir, resume_command

logger = logging.getLogger(__name__)

MAX_SAVED_FRAMES = 8


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

    def score_episode_steps(self, episodes: Any, first: Any, finished: Any) -> list[np.ndarray]:
        """The latest steps of episodes (a PPO rollout of a video reward), each checked as a call would be."""
        episodes, first = list(episodes), list(first)
        scored = super().score_episode_steps(episodes, first, finished)
        return [self._checked(e[f:], r) for e, f, r in zip(episodes, first, scored, strict=True)]

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


def check_episode_frames_fit(config: TrainConfig, training_holds_episodes: bool | None = None) -> None:
    """Refuse episodes whose frames do not fit in memory: episodes scored whole when they end (episode-end
    batching, and every evaluation) keep all their frames until then, as PPO's rollouts of a video reward do
    (``training_holds_episodes``; default: with episode-end batching); and a policy video's episode drawn again at
    ``logging.video_size``."""
    env, configured = config.env, bool(config.reward.episode_end_batching)
    batching = configured if training_holds_episodes is None else training_holds_episodes
    assert env.render_size is not None and env.episode_length is not None  # resolved
    training = config.rl.n_envs if batching else 0
    envs = f"{training + 1} envs ({training} training, 1 evaluation)" if training else "1 evaluation env"
    size = env.render_size
    check_fits(
        (training + 1) * env.episode_length * size * size * 3,
        f"env.episode_length={env.episode_length}: episodes are scored when they end, so their frames are kept "
        f"until then: {envs} × {env.episode_length} frames × {size}×{size}×3 bytes",
        "Lower env.episode_length or env.render_size"
        + (", or set reward.episode_end_batching=false." if configured else "."),
    )
    video = config.logging.video_size
    if video is not None and video > size:  # a policy video's episode, drawn again at video_size
        check_fits(
            env.episode_length * video * video * 3,
            f"logging.video_size={video}: a policy video's episode is kept until it is written: "
            f"{env.episode_length} frames × {video}×{video}×3 bytes",
            "Lower logging.video_size (null: the model's frames, as they are).",
        )


SIGNAL_EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class InterruptNow(BaseException):
    """Raised by :class:`GracefulInterrupt` at the first signal once :meth:`GracefulInterrupt.stop_at_once` was
    called (nothing is left to save): not an ``Exception``, so no ``except Exception`` swallows it."""


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
        self._at_once: str | None = None

    def stop_at_once(self, what_happens: str) -> None:
        """From now on the first signal raises :class:`InterruptNow` at once, after logging ``what_happens``
        (``{signal}`` in it is replaced by the signal's name): for work that needs no checkpoint of its own."""
        self._at_once = what_happens

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
        if self._at_once is not None:
            logger.warning("vlmrm: %s", self._at_once.replace("{signal}", name))
            raise InterruptNow(name)
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
    run = RunDir(run_dir)
    checkpoints = run.checkpoints()
    if checkpoints:
        lines.append(f"The previous checkpoint {checkpoints[-1][1]} is intact; once fixed, resume with:")
    elif run.is_run():
        lines.append("No checkpoint had been written yet; once fixed, start again from step 0 with:")
    else:
        lines.append("Nothing of the run was written; once fixed, run the same command again.")
        return WriteError("\n".join(lines))
    lines.append(f"  {resume_command(run_dir)}")
    return WriteError("\n".join(lines))
