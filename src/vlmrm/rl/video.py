"""Write policy videos (H.264 mp4 through imageio's ffmpeg plugin, which needs imageio-ffmpeg)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import imageio.v2 as imageio
import numpy as np


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


def write_video(frames: Sequence[np.ndarray], path: str | Path, fps: int = 30) -> Path:
    """Encode uint8 RGB frames as an H.264 mp4 (via imageio's bundled ffmpeg)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not frames:
        raise ValueError("no frames to write")
    height, width = frames[0].shape[:2]
    # yuv420p needs even sizes; pad by one pixel rather than let ffmpeg rescale.
    pad = ((0, height % 2), (0, width % 2), (0, 0))
    # format="FFMPEG": never fall back to another plugin (tifffile would write a .mp4 that is no video).
    with imageio.get_writer(
        path, format="FFMPEG", fps=fps, codec="libx264", quality=8, macro_block_size=1, pixelformat="yuv420p"
    ) as writer:
        for frame in frames:
            padded = np.pad(frame, pad) if any(p[1] for p in pad) else frame
            writer.append_data(padded)  # type: ignore[attr-defined]
    return path
