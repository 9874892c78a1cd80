"""The textured MountainCar look for a whole batch of positions in one call, on any torch device.

:func:`~vlmrm.envs.mountaincar_textured.render_mountaincar_textured` pastes a car sprite, rotated
by Pillow (``rotate(..., BICUBIC, expand=True)``), over a cached background. Here every step of
that recipe runs on the device for all envs at once, following Pillow's arithmetic: the inverse
affine map of each output pixel centre, Pillow's bicubic kernel (``libImaging/Geometry.c``:
edge rows repeated, results truncated to bytes) on the premultiplied sprite (Pillow rotates RGBA
images as ``RGBa``), the conversion back to straight alpha, then the same float32 premultiply,
4x4 average and "over" composite as the Pillow path. Where each sprite goes comes from the same
:func:`~vlmrm.envs.mountaincar_textured.car_placement`. Frames agree with the Pillow ones to
within one grey level (float32 sums in a different order), ``tests/test_vector_envs.py``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from vlmrm.envs.mountaincar_textured import _SPRITE_SUPERSAMPLE, _car_sprite, car_placement, textured_background
from vlmrm.envs.vector.render import Backend, choose_backend


def _bicubic(v1: torch.Tensor, v2: torch.Tensor, v3: torch.Tensor, v4: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Pillow's ``BICUBIC`` macro, term by term in float64."""
    p1 = v2
    p2 = -v1 + v3
    p3 = 2 * (v1 - v2) + v3 - v4
    p4 = -v1 + v2 - v3 + v4
    return p1 + d * (p2 + d * (p3 + d * p4))


class TexturedMountainCarFrames:
    """Textured MountainCar frames of states ``(N, 2)`` (position, velocity)."""

    def __init__(
        self, size: int, device: str | torch.device = "cpu", goal_position: float = 0.45, backend: Backend = "auto"
    ):
        self.size = int(size)
        self.device = torch.device(device)
        self.backend = choose_backend(backend, self.device)
        self.goal_position = float(goal_position)
        background = textured_background(self.size, self.goal_position)
        self.background = torch.from_numpy(background.copy()).to(self.device)
        sprite, _, _ = _car_sprite(self.size)
        self.sprite_size = sprite.size  # (width, height)
        premultiplied = np.asarray(sprite.convert("RGBa"), dtype=np.float64)  # Pillow rotates RGBA as RGBa
        self.sprite = torch.from_numpy(premultiplied.copy()).to(self.device)  # (h, w, 4)
        k = _SPRITE_SUPERSAMPLE
        diagonal = math.ceil(math.hypot(*self.sprite_size)) + 2  # bounds the rotated sprite's width and height
        self.patch = math.ceil(diagonal / k) + 3  # bounds the patch, in frame pixels
        self.pad = self.patch + 2

    def __call__(self, states: np.ndarray) -> torch.Tensor:
        states = np.asarray(states, dtype=np.float64).reshape(len(states), -1)
        if self.backend == "pil":
            from vlmrm.envs.mountaincar_textured import render_mountaincar_textured

            frames = [render_mountaincar_textured(float(p), self.size, self.goal_position) for p in states[:, 0]]
            if not frames:
                return torch.zeros((0, self.size, self.size, 3), dtype=torch.uint8)
            return torch.from_numpy(np.stack(frames))
        return self._draw([car_placement(float(p), self.size) for p in states[:, 0]])

    def prepare(self, num_envs: int) -> None:
        """Nothing to prepare: the textured car is drawn without a CUDA graph."""

    def _draw(self, places: list) -> torch.Tensor:
        n, k, device = len(places), _SPRITE_SUPERSAMPLE, self.device
        matrices = torch.tensor([p.matrix for p in places], dtype=torch.float64, device=device)  # (N, 6)
        ints = torch.tensor(
            [[*p.rotated_size, *p.offset, p.left, p.top] for p in places], dtype=torch.int64, device=device
        ).reshape(n, 6)
        rot_w, rot_h, off_x, off_y, left, top = ints.unbind(1)
        side = self.patch * k
        grid = torch.arange(side, device=device)
        u = grid[None, None, :] - off_x[:, None, None]  # (N, 1, side): column in the rotated image
        v = grid[None, :, None] - off_y[:, None, None]  # (N, side, 1)
        in_rotated = (u >= 0) & (u < rot_w[:, None, None]) & (v >= 0) & (v < rot_h[:, None, None])
        # Pillow's affine_transform: the source point of output pixel (u, v) is matrix @ (u + .5, v + .5, 1).
        xu, yv = u.to(torch.float64) + 0.5, v.to(torch.float64) + 0.5
        m = [matrices[:, i, None, None] for i in range(6)]
        xin = m[0] * xu + m[1] * yv + m[2]
        yin = m[3] * xu + m[4] * yv + m[5]
        width, height = self.sprite_size
        in_sprite = (xin >= 0) & (xin < width) & (yin >= 0) & (yin < height)
        xs, ys = xin - 0.5, yin - 0.5
        x, y = torch.floor(xs), torch.floor(ys)
        dx, dy = xs - x, ys - y
        x, y = x.to(torch.int64) - 1, y.to(torch.int64) - 1
        cols = [(x + i).clamp(0, width - 1) for i in range(4)]
        rows = [y.clamp(0, height - 1)] + [(y + i).clamp(0, height - 1) for i in range(1, 4)]
        row_values: list[torch.Tensor] = []
        for i, row in enumerate(rows):
            taps = [self.sprite[row, col] for col in cols]  # each (N, side, side, 4)
            value = _bicubic(taps[0], taps[1], taps[2], taps[3], dx[..., None])
            if i > 0:  # rows past the edge repeat the row before (BICUBIC_BODY)
                inside = ((y + i >= 0) & (y + i < height))[..., None]
                value = torch.where(inside, value, row_values[-1])
            row_values.append(value)
        value = _bicubic(row_values[0], row_values[1], row_values[2], row_values[3], dy[..., None])
        pixel = torch.where(value <= 0, 0.0, torch.where(value >= 255, 255.0, torch.trunc(value))).to(torch.int64)
        pixel = torch.where((in_rotated & in_sprite)[..., None], pixel, 0)
        # RGBa -> RGBA (Pillow's rgba2rgbA), then the Pillow path's float32 premultiply.
        alpha = pixel[..., 3:4]
        straight = torch.where(
            (alpha == 0) | (alpha == 255), pixel[..., :3], (255 * pixel[..., :3]) // alpha.clamp(min=1)
        )
        straight = straight.clamp(0, 255).to(torch.float32)
        alpha_f = alpha.to(torch.float32) / 255.0
        premult = torch.cat([straight * alpha_f, alpha_f * 255.0], dim=-1)
        small = premult.view(n, self.patch, k, self.patch, k, 4).mean(dim=(2, 4))  # (N, P, P, 4)
        # Composite over the background, in a padded frame so patches may hang over its edges.
        pad, size = self.pad, self.size
        out = torch.zeros((n, size + 2 * pad, size + 2 * pad, 3), dtype=torch.float32, device=device)
        out[:, pad : pad + size, pad : pad + size] = self.background.to(torch.float32)
        steps = torch.arange(self.patch, device=device)
        rows_idx = (top + pad)[:, None, None] + steps[None, :, None]
        cols_idx = (left + pad)[:, None, None] + steps[None, None, :]
        batch = torch.arange(n, device=device)[:, None, None]
        under = out[batch, rows_idx, cols_idx]
        a = small[..., 3:4] / 255.0
        out[batch, rows_idx, cols_idx] = small[..., :3] + under * (1 - a)
        frame = out[:, pad : pad + size, pad : pad + size]
        return (frame + 0.5).clamp(0, 255).to(torch.uint8)
