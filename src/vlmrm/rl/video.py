"""Write policy videos (H.264 mp4 through imageio's ffmpeg plugin, which needs imageio-ffmpeg)."""

from __future__ import annotations

import contextlib
import functools
import logging
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import imageio.v2 as imageio
import numpy as np
from PIL import Image

from vlmrm.envs import make_env

logger = logging.getLogger(__name__)


@functools.cache
def video_encoder_problem() -> str | None:
    """Why no mp4 can be written here (``None`` when it can): imageio-ffmpeg and its ffmpeg binary."""
    try:
        import imageio_ffmpeg
    except ImportError:
        return "the video encoder is missing (pip install imageio-ffmpeg)"
    try:
        imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as exc:
        return f"imageio-ffmpeg has no ffmpeg binary ({exc})"
    return None


@contextlib.contextmanager
def open_video(path: str | Path, fps: int = 30) -> Iterator[Callable[[np.ndarray], None]]:
    """An H.264 mp4 at ``path``, open for frames one at a time: ``with open_video(p) as add: add(frame)``.

    uint8 RGB frames of one size; odd sizes are padded by one pixel (yuv420p needs even sizes) rather
    than rescaled by ffmpeg.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # format="FFMPEG": never fall back to another plugin (tifffile would write a .mp4 that is no video).
    with imageio.get_writer(
        path, format="FFMPEG", fps=fps, codec="libx264", quality=8, macro_block_size=1, pixelformat="yuv420p"
    ) as writer:

        def add(frame: np.ndarray) -> None:
            height, width = frame.shape[:2]
            pad = ((0, height % 2), (0, width % 2), (0, 0))
            writer.append_data(np.pad(frame, pad) if height % 2 or width % 2 else frame)  # type: ignore[attr-defined]

        yield add


def write_video(frames: Sequence[np.ndarray], path: str | Path, fps: int = 30) -> Path:
    """Encode uint8 RGB frames as an H.264 mp4 (via imageio's bundled ffmpeg)."""
    if not frames:
        raise ValueError("no frames to write")
    with open_video(path, fps) as add:
        for frame in frames:
            add(frame)
    return Path(path)


def enlarge(frame: np.ndarray, size: int) -> np.ndarray:
    """A square frame enlarged to ``size`` pixels for viewing (Lanczos); one as large or larger is kept.

    >>> enlarge(np.zeros((64, 64, 3), dtype=np.uint8), 256).shape
    (256, 256, 3)
    """
    if frame.shape[0] >= size:
        return frame
    return np.asarray(Image.fromarray(frame).resize((size, size), Image.Resampling.LANCZOS), dtype=np.uint8)


def video_frame(frame: np.ndarray, view: SharpView | None, size: int) -> np.ndarray:
    """A video's frame of a recorded step: ``view``'s drawing of that step (the steps taken in order), else the
    model's ``frame`` enlarged to ``size`` pixels."""
    return view.next_frame() if view is not None else enlarge(frame, size)


def shrink(frame: np.ndarray, size: int) -> np.ndarray:
    """A frame reduced by a whole factor (box filter) to at most ``size`` pixels a side; a smaller one is kept.

    >>> shrink(np.zeros((512, 512, 3), dtype=np.uint8), 256).shape
    (256, 256, 3)
    >>> shrink(np.zeros((224, 224, 3), dtype=np.uint8), 256).shape
    (224, 224, 3)
    """
    factor = -(-max(frame.shape[:2]) // size)  # ceiling division
    if factor <= 1:
        return frame
    return np.asarray(Image.fromarray(frame).reduce(factor), dtype=np.uint8)


class SharpView:
    """Frames of an evaluation env's steps drawn again at ``size`` pixels by a second env of the same kind.

    Wraps the ``step`` of the single env inside a one-env ``DummyVecEnv``: after each step, the viewer is
    put in the stepped env's state (:class:`~vlmrm.envs.spec.StatefulEnv`) and renders. The frames queue
    up in step order, as :func:`vlmrm.rl.rollout.evaluate` records them, one per step; :meth:`next_frame`
    takes the oldest. After ``limit`` frames (a video's episode) the view stops drawing. The evaluated env,
    its frames and its rewards are untouched; :meth:`close` gives the env its own ``step`` back.
    """

    def __init__(self, venv: Any, viewer: Any, limit: int | None = None):
        self.viewer = viewer
        self.frames: deque[np.ndarray] = deque()
        self.limit = limit
        self._env = venv.envs[0]
        self._stateful = self._env.unwrapped
        self._drawn = 0
        step = self._env.step

        def step_and_view(action: Any) -> Any:
            result = step(action)
            if self.limit is None or self._drawn < self.limit:
                self.viewer.unwrapped.set_sim_state(self._stateful.get_sim_state())
                self.frames.append(np.asarray(self.viewer.render()))
                self._drawn += 1
            return result

        self._env.step = step_and_view

    @classmethod
    def attach(cls, venv: Any, env: Any, size: int, limit: int | None = None) -> SharpView | None:
        """A view at ``size`` pixels of ``venv``'s env, made from ``env`` (a config's resolved ``env`` section),
        or ``None`` where the frames are to be enlarged instead: the env cannot set its state, or the run
        already renders at ``size`` or larger."""
        inner = getattr(venv, "envs", [None])[0]
        if env.render_size >= size:
            return None
        if inner is None:
            reason = "is batched or steps in worker processes"
        elif not all(hasattr(inner.unwrapped, name) for name in ("get_sim_state", "set_sim_state")):
            reason = "cannot set its state"
        else:
            viewer = make_env(env.name, render_size=size, episode_length=env.episode_length, **dict(env.options))
            viewer.reset(seed=0)
            return cls(venv, viewer, limit)
        logger.info("vlmrm: the %s env %s: the video's frames are enlarged to %d px", env.name, reason, size)
        return None

    def next_frame(self) -> np.ndarray:
        """The oldest frame not yet taken."""
        return self.frames.popleft()

    def close(self) -> None:
        """Close the viewer and give the evaluated env its own ``step`` back."""
        with contextlib.suppress(AttributeError):
            del self._env.step
        self.viewer.close()
