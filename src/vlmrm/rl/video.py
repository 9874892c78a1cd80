"""Write policy videos (H.264 mp4 through imageio's ffmpeg plugin, which needs imageio-ffmpeg)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
from PIL import Image


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
