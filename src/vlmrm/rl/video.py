"""Write policy videos."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import imageio.v2 as imageio
import numpy as np


def write_video(frames: Sequence[np.ndarray], path: str | Path, fps: int = 30) -> Path:
    """Encode uint8 RGB frames as an H.264 mp4 (via imageio's bundled ffmpeg)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not frames:
        raise ValueError("no frames to write")
    height, width = frames[0].shape[:2]
    # yuv420p needs even sizes; pad by one pixel rather than let ffmpeg rescale.
    pad = ((0, height % 2), (0, width % 2), (0, 0))
    with imageio.get_writer(path, fps=fps, codec="libx264", quality=8, macro_block_size=1, pixelformat="yuv420p") as w:
        for frame in frames:
            w.append_data(np.pad(frame, pad) if any(p[1] for p in pad) else frame)
    return path
