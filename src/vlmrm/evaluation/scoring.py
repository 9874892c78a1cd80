"""Score image files, videos and frame arrays with a VLM reward: the quickest check of a prompt (``vlmrm score``).

Inputs, in any mix: images (``.png``, ``.jpg``, ... anything Pillow reads; grey and RGBA images
become RGB), videos (``.mp4`` and whatever imageio's ffmpeg reads; every ``every``-th frame),
``.npy`` arrays of uint8 frames ``(H, W, 3)`` or ``(N, H, W, 3)``, and directories (their files of
those kinds, sorted). Frames of one size are embedded together, once per model; each alpha only
re-projects the embeddings. A video model (``video:``) scores a video file's frames as training
scores an episode's steps (each by the clip of it and the frames read before it; with ``every`` N,
a clip's frames are N frames of the video apart) and each image or ``.npy`` frame as a still clip.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vlmrm.errors import ConfigError

if TYPE_CHECKING:
    from vlmrm.reward import VLMReward

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"})
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm"})
ARRAY_SUFFIXES = frozenset({".npy"})


class FrameError(ConfigError):
    """A frame file is missing, unreadable or holds something other than RGB frames."""


@dataclass(frozen=True)
class Frame:
    source: str
    """The file it came from."""
    index: int
    """Its index in that file (0 for an image)."""
    image: np.ndarray
    """uint8 ``(H, W, 3)``."""


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _read_image(path: Path) -> list[Frame]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            array = np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise FrameError(f"Cannot read image {str(path)!r}: {_one_line(exc)}.") from None
    return [Frame(str(path), 0, array)]


def _read_video(path: Path, every: int) -> list[Frame]:
    import imageio.v2 as imageio

    frames: list[Frame] = []
    try:
        reader = imageio.get_reader(str(path), format="ffmpeg")
        try:
            for index, image in enumerate(reader.iter_data()):
                if index % every == 0:
                    frames.append(Frame(str(path), index, _as_rgb(np.asarray(image), path)))
        finally:
            reader.close()
    except FrameError:
        raise
    except Exception as exc:  # imageio and ffmpeg raise OSError, RuntimeError, ValueError, IndexError, ...
        raise FrameError(f"Cannot read video {str(path)!r}: {_one_line(exc)}.") from None
    if not frames:
        raise FrameError(f"Video {str(path)!r} has no frames.")
    return frames


def _as_rgb(array: np.ndarray, path: Path) -> np.ndarray:
    if array.ndim == 3 and array.shape[-1] == 4:
        array = array[..., :3]
    if array.ndim != 3 or array.shape[-1] != 3 or array.dtype != np.uint8:
        raise FrameError(
            f"{str(path)!r} holds frames of shape {array.shape} ({array.dtype}); vlmrm score needs uint8 RGB frames."
        )
    return np.ascontiguousarray(array)


def _read_array(path: Path) -> list[Frame]:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise FrameError(f"Cannot read {str(path)!r} as a numpy array: {_one_line(exc)}.") from None
    if array.ndim not in (3, 4) or array.shape[-1] != 3 or array.dtype != np.uint8 or 0 in array.shape:
        raise FrameError(
            f"{str(path)!r} holds an array of shape {array.shape} ({array.dtype}); vlmrm score needs uint8 "
            "frames of shape (H, W, 3) or (N, H, W, 3)."
        )
    if array.ndim == 3:
        array = array[None]
    return [Frame(str(path), i, np.ascontiguousarray(frame)) for i, frame in enumerate(array)]


def _files_of(directory: Path) -> list[Path]:
    known = IMAGE_SUFFIXES | VIDEO_SUFFIXES | ARRAY_SUFFIXES
    files = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in known)
    if not files:
        raise FrameError(f"Directory {str(directory)!r} holds no images, videos or .npy files.")
    return files


def read_frames(paths: Sequence[str | Path], every: int = 1) -> list[Frame]:
    """Every frame of ``paths`` (files or directories), in order; :class:`FrameError` names the first bad input."""
    if isinstance(every, bool) or not isinstance(every, int) or every <= 0:
        raise ConfigError(f"--every must be a positive whole number, got {every!r}.")
    if not paths:
        raise FrameError("Give at least one image, video, .npy file or directory to score.")
    frames: list[Frame] = []
    for given in paths:
        path = Path(given)
        if not path.exists():
            raise FrameError(f"{str(path)!r} does not exist.")
        for file in _files_of(path) if path.is_dir() else [path]:
            suffix = file.suffix.lower()
            if suffix in VIDEO_SUFFIXES:
                frames += _read_video(file, every)
            elif suffix in ARRAY_SUFFIXES:
                frames += _read_array(file)
            else:
                frames += _read_image(file)
    for frame in frames:
        if min(frame.image.shape[:2]) < 2:
            raise FrameError(f"{frame.source!r} holds a frame of {frame.image.shape[1]}x{frame.image.shape[0]} pixels.")
    return frames


def column_name(model: str, alpha: float, models: int, alphas: int) -> str:
    """``reward`` for one model and one alpha; else the model and/or the alpha."""
    if models == 1 and alphas == 1:
        return "reward"
    if models == 1:
        return f"α={alpha:g}"
    return model if alphas == 1 else f"{model} α={alpha:g}"


def score(
    frames: Sequence[Frame], models: Mapping[str, VLMReward], alphas: Sequence[float]
) -> tuple[list[str], np.ndarray]:
    """The columns (one per model and alpha) and the rewards ``(len(frames), len(columns))``.

    A video model (``video:``) scores the frames of each video file as one episode, each frame by the
    clip of it and the frames read before it (:meth:`~vlmrm.reward.video.VideoReward.score_steps`, as
    training does); images and ``.npy`` frames, which need not follow one another, are still clips.
    """
    from vlmrm.reward.video import VideoReward, note_still_clips
    from vlmrm.reward.vlm_reward import _check_alpha

    alphas = [_check_alpha(a) for a in alphas]
    for name, model in models.items():
        if any(a > 0 for a in alphas) and model.baseline_embedding is None:
            raise ConfigError(f"alpha > 0 needs baseline prompts (model {name!r} has none); give --baseline.")
    columns = [column_name(m, a, len(models), len(alphas)) for m in models for a in alphas]
    table = np.zeros((len(frames), len(columns)), dtype=np.float64)
    videos: dict[str, list[int]] = {}
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, frame in enumerate(frames):
        if Path(frame.source).suffix.lower() in VIDEO_SUFFIXES:
            videos.setdefault(frame.source, []).append(i)
        by_shape.setdefault(frame.image.shape, []).append(i)
    for m, model in enumerate(models.values()):
        groups = list(by_shape.values())
        if isinstance(model, VideoReward):
            for indices in videos.values():
                clip_embeddings = model.embed_episode(np.stack([frames[i].image for i in indices]))
                for a, alpha in enumerate(alphas):
                    values = model.rewards_from_clip_embeddings(clip_embeddings, len(indices), alpha=alpha)
                    table[indices, m * len(alphas) + a] = values
            in_videos = {i for indices in videos.values() for i in indices}
            groups = [kept for indices in groups if (kept := [i for i in indices if i not in in_videos])]
            if groups:
                note_still_clips(model, "the images and .npy frames")
        for indices in groups:
            embeddings = model.embed_images(np.stack([frames[i].image for i in indices]))
            for a, alpha in enumerate(alphas):
                values = model.reward_from_embeddings(embeddings, alpha=alpha).float().cpu().numpy()
                table[indices, m * len(alphas) + a] = values
    return columns, table


def format_table(frames: Sequence[Frame], columns: Sequence[str], table: np.ndarray) -> str:
    """A plain-text table: source, frame index, one column per reward, and the mean/min/max below."""
    header = ["source", "frame", *columns]
    rows = [[f.source, str(f.index), *(f"{v:.5f}" for v in values)] for f, values in zip(frames, table, strict=True)]
    if len(frames) > 1:
        for name, reduce in (("mean", np.mean), ("min", np.min), ("max", np.max)):
            rows.append([name, "", *(f"{v:.5f}" for v in reduce(table, axis=0))])
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        return "  ".join(cell.ljust(width) if i < 2 else cell.rjust(width) for i, (cell, width) in pairs).rstrip()

    body = [line(header), line(["-" * w for w in widths])]
    for i, row in enumerate(rows):
        if i == len(frames):
            body.append(line(["-" * w for w in widths]))
        body.append(line(row))
    return "\n".join(body)


def as_json(
    frames: Sequence[Frame],
    columns: Sequence[str],
    table: np.ndarray,
    target: Sequence[str],
    baseline: Sequence[str],
    models: Sequence[str],
    alphas: Sequence[float],
) -> dict[str, Any]:
    """The scores as a JSON-ready object."""
    return {
        "target_prompts": list(target),
        "baseline_prompts": list(baseline),
        "models": list(models),
        "alphas": [float(a) for a in alphas],
        "columns": list(columns),
        "frames": [
            {"source": f.source, "frame": f.index, "rewards": dict(zip(columns, map(float, values), strict=True))}
            for f, values in zip(frames, table, strict=True)
        ],
    }


__all__ = [
    "read_frames",
    "score",
]
