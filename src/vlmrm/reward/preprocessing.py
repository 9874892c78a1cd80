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


def frames_to_tensor(frames: np.ndarray | torch.Tensor | Sequence[np.ndarray]) -> torch.Tensor:
    """Accept ``(N, H, W, 3)`` or one ``(H, W, 3)`` uint8 frame; return a uint8 tensor ``(N, H, W, 3)``."""
    if isinstance(frames, torch.Tensor):
        tensor = frames
    else:
        if not isinstance(frames, np.ndarray):
            frames = np.stack(list(frames)) if len(frames) else np.zeros((0, 1, 1, 3), np.uint8)
        tensor = torch.from_numpy(np.ascontiguousarray(frames))
    if tensor.ndim == 3:
        tensor = tensor.unsqueeze(0)
    if tensor.ndim != 4 or tensor.shape[-1] != 3:
        raise ValueError(f"frames must have shape (N, H, W, 3) or (H, W, 3), got {tuple(tensor.shape)}")
    if tensor.dtype != torch.uint8:
        raise ValueError(f"frames must be uint8 RGB images, got dtype {tensor.dtype}")
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
