"""All MountainCars in one batch: one call steps them all, one call draws all their frames on a torch device.

The envs step one after another (the very :class:`~vlmrm.envs.mountaincar.env.SquareMountainCarContinuous`
the single-env path uses, clipped at the flag): its scalar arithmetic mixes float32 and float64 in ways an
array version would have to copy case by case, and its physics costs microseconds against the frames'
milliseconds. Frames are drawn all at once, in either look:

- the flat look (:class:`MountainCarFrames`): as CartPole's (:mod:`vlmrm.envs.cartpole.vector`), the shapes
  of :func:`~vlmrm.envs.mountaincar.draw.mountaincar_shapes` filled on the device, pixel for pixel Pillow's.
  Off the CPU the geometry runs on the device too (``device_geometry``), from a copy of the positions: one
  float64 per env travels each step instead of the shapes' 16 integers, and on CUDA the geometry and the
  drawing are one graph replay. The physics stays on the host (above), so the positions come from there.
- the textured look (:class:`TexturedMountainCarFrames`):
  :func:`~vlmrm.envs.mountaincar.textured.render_mountaincar_textured` pastes a car sprite, rotated by Pillow
  (``rotate(..., BICUBIC, expand=True)``), over a cached background. Here every step of that recipe runs on
  the device for all envs at once, following Pillow's arithmetic: the inverse affine map of each output
  pixel centre, Pillow's bicubic kernel (``libImaging/Geometry.c``: edge rows repeated, results truncated
  to bytes) on the premultiplied sprite (Pillow rotates RGBA images as ``RGBa``), the conversion back to
  straight alpha, then the same float32 premultiply, 4x4 average and "over" composite as the Pillow path.
  Where each sprite goes comes from the same :func:`~vlmrm.envs.mountaincar.textured.car_placement`, on the
  host (the sprite's placement is not moved to the device: it is per-env scalar work on Pillow's terms). Frames
  agree with the Pillow ones to within one grey level (float32 sums in a different order).

``tests/test_vector_envs.py`` checks both against Pillow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import gymnasium as gym
import numpy as np
import torch

from vlmrm.envs.classic import SUPERSAMPLE
from vlmrm.envs.mountaincar.draw import (
    CAR_RGB,
    WHEEL_RGB,
    mountaincar_background,
    mountaincar_shapes,
    render_mountaincar,
)
from vlmrm.envs.mountaincar.env import SquareMountainCarContinuous
from vlmrm.envs.mountaincar.spec import MOUNTAIN_MAX_X, MOUNTAIN_MIN_X, MountainCarOptions
from vlmrm.envs.mountaincar.textured import (
    _SPRITE_SUPERSAMPLE,
    _car_sprite,
    car_placement,
    render_mountaincar_textured,
    textured_background,
)
from vlmrm.envs.vector.raster import (
    CudaGraphDraw,
    EllipseStamps,
    box_downsample2,
    c_int,
    c_int_tensor,
    colour,
    paint,
    polygon_mask,
)
from vlmrm.envs.vector.render import (
    Backend,
    box_array,
    box_tensor,
    choose_backend,
    choose_device_work,
    corner_array,
    corner_tensor,
    has_horizontal_edge,
    upload_params,
)
from vlmrm.envs.vector.vec_env import BatchedVecEnv, EnvListSimulation


class MountainCarFrames:
    """Flat-look MountainCar frames (:func:`~vlmrm.envs.mountaincar.draw.render_mountaincar`) of
    states ``(N, 2)`` (position, velocity).

    ``device_geometry``: with the torch backend, place the shapes on the device from a copy of the positions
    (:meth:`draw_positions`) rather than on the host; by default off the CPU only.
    """

    def __init__(
        self,
        size: int,
        device: str | torch.device = "cpu",
        goal_position: float = 0.45,
        backend: Backend = "auto",
        device_geometry: bool | None = None,
    ):
        self.size = int(size)
        self.device = torch.device(device)
        self.backend = choose_backend(backend, self.device)
        self.device_geometry = choose_device_work(device_geometry, self.backend, self.device, "device_geometry")
        self.goal_position = float(goal_position)
        self.canvas = self.size * SUPERSAMPLE
        background = mountaincar_background(self.canvas, float(goal_position))
        self.background = torch.from_numpy(background.copy()).to(self.device)
        radius = 0.03 * 0.9 * self.canvas / (MOUNTAIN_MAX_X - MOUNTAIN_MIN_X)
        self.wheels = EllipseStamps.for_radius(radius, self.device)
        self.colours = [colour(rgb, self.device) for rgb in (CAR_RGB, WHEEL_RGB)]
        # One graph per batch size, of the one path the renderer takes: from device states, or from host shapes.
        self._graphed = CudaGraphDraw(self._draw_positions if self.device_geometry else self._draw)

    def __call__(self, states: np.ndarray) -> torch.Tensor:
        states = np.asarray(states, dtype=np.float64).reshape(len(states), -1)
        if self.backend == "pil":
            frames = [render_mountaincar(float(p), self.size, self.goal_position) for p in states[:, 0]]
            return torch.from_numpy(np.stack(frames)) if frames else self._empty()
        if not len(states):
            return self._empty()
        if self.device_geometry:
            return self.draw_positions(torch.from_numpy(np.ascontiguousarray(states[:, 0])).to(self.device))
        params = self.host_params(states[:, 0])
        p = upload_params(params, self.device)
        if p.is_cuda:
            return self._graphed(p)
        return self._draw(p, has_horizontal_edge(params[:, :8].reshape(-1, 4, 2)))

    def draw_positions(self, positions: torch.Tensor) -> torch.Tensor:
        """Frames of float64 positions ``(N,)`` on :attr:`device` (torch backend): geometry, integers and
        drawing all run there; on CUDA, one graph replay. Needs ``device_geometry``."""
        if not self.device_geometry:
            raise ValueError("this renderer was made without device_geometry: it draws from host shapes")
        if not len(positions):
            return self._empty()
        if positions.is_cuda:
            return self._graphed(positions)
        return self._draw_positions(positions, horizontal_edges=None)  # on the CPU, reading the flag costs no sync

    def host_params(self, positions: np.ndarray) -> np.ndarray:
        """The integer shape parameters ``(N, 16)`` of positions ``(N,)``, from numpy's float64 geometry: the
        body's corners, then each wheel's corner and stamp."""
        shapes = mountaincar_shapes(positions, self.canvas)
        wheels = [c_int(box_array(box)) for box in shapes.wheels]
        body = c_int(corner_array(shapes.body))
        parts = [np.concatenate([box[:, :2], self.wheels.indices(box)], 1) for box in wheels]
        return np.concatenate([body.reshape(len(positions), 8), *parts], 1)

    def device_params(self, positions: torch.Tensor) -> torch.Tensor:
        """:meth:`host_params` of positions on the device, computed there by the same geometry function."""
        shapes = mountaincar_shapes(positions, self.canvas)
        wheels = [c_int_tensor(box_tensor(box, positions)) for box in shapes.wheels]
        body = c_int_tensor(corner_tensor(shapes.body, positions))
        parts = [torch.cat([box[:, :2], self.wheels.index_tensor(box)], 1) for box in wheels]
        return torch.cat([body.reshape(len(positions), 8), *parts], 1)

    def _draw_positions(self, positions: torch.Tensor, horizontal_edges: bool | None = True) -> torch.Tensor:
        return self._draw(self.device_params(positions), horizontal_edges)

    def prepare(self, num_envs: int) -> None:
        """Capture the CUDA graph for batches of ``num_envs`` frames now (resting states; a no-op off CUDA)."""
        if self.backend == "torch" and self.device.type == "cuda":
            self(np.zeros((num_envs, 2)))

    def _draw(self, p: torch.Tensor, horizontal_edges: bool | None = True) -> torch.Tensor:
        n, c = p.shape[0], self.canvas
        car_rgb, wheel_rgb = self.colours
        canvas = self.background.expand(n, c, c, 3)
        canvas = paint(canvas, polygon_mask(p[:, 0:8].view(n, 4, 2), c, horizontal_edges), car_rgb)
        for start in (8, 12):
            canvas = paint(canvas, self.wheels.mask(p[:, start + 2 : start + 4], p[:, start : start + 2], c), wheel_rgb)
        return box_downsample2(canvas)

    def _empty(self) -> torch.Tensor:
        return torch.zeros((0, self.size, self.size, 3), dtype=torch.uint8, device=self.device)


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


def make_mountaincar_vector(
    n_envs: int, render_size: int, episode_length: int, options: MountainCarOptions, device: str | torch.device = "cpu"
) -> BatchedVecEnv:
    """``n_envs`` MountainCars (either look), frames drawn on ``device`` (the registry's vector entry point)."""
    draw = TexturedMountainCarFrames if options.textured else MountainCarFrames
    envs: list[gym.Env] = [SquareMountainCarContinuous(render_size, options) for _ in range(n_envs)]
    goal = envs[0].unwrapped.goal_position  # type: ignore[attr-defined]
    renderer = draw(render_size, device, goal, options.renderer)
    renderer.prepare(n_envs)

    def frames(envs: Sequence[gym.Env]) -> torch.Tensor:
        return renderer(np.stack([np.asarray(env.unwrapped.state, dtype=np.float64) for env in envs]))  # type: ignore[attr-defined]

    sim = EnvListSimulation(envs, frames, renderer.device, renderer.backend)
    return BatchedVecEnv(sim, episode_length)
