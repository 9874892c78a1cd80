"""Turn uint8 frames into model inputs with tensor ops on the model's device.

No PIL and no torchvision: frames stay one batched tensor from the environment to the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

ResizeMode = Literal["shortest_edge", "squash"]


@dataclass(frozen=True)
class ImageSpec:
    """How a model expects its images.

    Attributes:
        size: the square input size in pixels.
        mean, std: per-channel normalisation constants, for pixel values in [0, 1].
        resize_mode: ``shortest_edge`` resizes the short side to ``size`` and centre-crops
            (CLIP); ``squash`` resizes both sides to ``size`` (SigLIP).
        interpolation: ``bicubic`` (CLIP, SigLIP) or ``bilinear``.
    """

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize_mode: ResizeMode = "shortest_edge"
    interpolation: Literal["bicubic", "bilinear"] = "bicubic"


def _check_frames(shape: tuple[int, ...], is_uint8: bool, dtype: object) -> None:
    if len(shape) != 4 or shape[-1] != 3:
        raise ValueError(f"frames must have shape (N, H, W, 3) or (H, W, 3), got {shape}")
    if not is_uint8:
        raise ValueError(f"frames must be uint8 RGB images, got dtype {dtype}")


def frames_to_array(frames: np.ndarray | torch.Tensor | Sequence[np.ndarray]) -> np.ndarray:
    """A C-contiguous uint8 ``(N, H, W, 3)`` array (one ``(H, W, 3)`` frame becomes a batch of one)."""
    if isinstance(frames, torch.Tensor):
        frames = frames.detach().cpu().numpy()
    if not isinstance(frames, np.ndarray):
        frames = list(frames)
        frames = np.stack(frames) if frames else np.zeros((0, 1, 1, 3), dtype=np.uint8)
    array = np.ascontiguousarray(frames)
    if array.ndim == 3:
        array = array[None]
    _check_frames(array.shape, array.dtype == np.uint8, array.dtype)
    return array


def frames_to_tensor(frames: np.ndarray | torch.Tensor | Sequence[np.ndarray]) -> torch.Tensor:
    """Accept ``(N, H, W, 3)`` or one ``(H, W, 3)`` uint8 frame; return a uint8 tensor ``(N, H, W, 3)``.

    A tensor stays on its device; anything else goes through :func:`frames_to_array`.
    """
    if not isinstance(frames, torch.Tensor):
        array = frames_to_array(frames)
        # torch warns on every read-only array (frames from a renderer's buffer, np.broadcast_to); the
        # preprocessing never writes to the frames, but a copy is what torch's contract asks for.
        return torch.from_numpy(array if array.flags.writeable else array.copy())
    tensor = frames.unsqueeze(0) if frames.ndim == 3 else frames
    _check_frames(tuple(tensor.shape), tensor.dtype == torch.uint8, tensor.dtype)
    return tensor


class FramePreprocessor:
    """Resize, centre-crop and normalise uint8 frames for one model.

    Frames that already have the model's input size skip the resize entirely, which is why the
    environments render at the model's size.
    """

    def __init__(self, spec: ImageSpec, device: torch.device, dtype: torch.dtype):
        self.spec = spec
        self.device = device
        self.dtype = dtype
        mean = torch.tensor(spec.mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        std = torch.tensor(spec.std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        # (x / 255 - mean) / std folded into one multiply-add.
        self._scale = 1.0 / (255.0 * std)
        self._shift = -mean / std

    def _resize(self, images: torch.Tensor) -> torch.Tensor:
        size = self.spec.size
        height, width = images.shape[-2:]
        if height == size and width == size:
            return images
        mode = self.spec.interpolation
        if self.spec.resize_mode == "squash":
            resized = F.interpolate(images, size=(size, size), mode=mode, antialias=True, align_corners=False)
        else:
            scale = size / min(height, width)
            new_h, new_w = max(size, round(height * scale)), max(size, round(width * scale))
            resized = F.interpolate(images, size=(new_h, new_w), mode=mode, antialias=True, align_corners=False)
            top, left = (new_h - size) // 2, (new_w - size) // 2
            resized = resized[..., top : top + size, left : left + size]
        # Bicubic overshoots; the reference processors work on uint8 images, so clip like they do.
        return resized.clamp_(0.0, 255.0)

    def __call__(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """``(N, H, W, 3)`` uint8 -> ``(N, 3, size, size)`` normalised, in the model's dtype and device."""
        tensor = frames_to_tensor(frames).to(self.device, non_blocking=True)
        images = tensor.permute(0, 3, 1, 2).float()
        images = self._resize(images)
        images = images * self._scale + self._shift
        return images.to(self.dtype).contiguous()
