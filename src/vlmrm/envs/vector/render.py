"""CartPole and MountainCar frames of a whole batch of states in one call, on any torch device.

Two ways to draw, the same pictures:

- ``"torch"`` (the default on a GPU): the shapes come from the same geometry functions as the
  Pillow renderers
  (:func:`~vlmrm.envs.classic_control.cartpole_shapes`,
  :func:`~vlmrm.envs.classic_control.mountaincar_shapes`), computed in float64 on the host from
  the (host) physics states and turned into integers as Pillow does; only those few integers per
  env travel to the device. The static scene (track, flag) is drawn once by Pillow and kept on
  the device. Filling, compositing and the 2x box filter run on the device
  (:mod:`vlmrm.envs.vector.raster`), so frames are born where the reward model runs and match
  the Pillow frames pixel for pixel (``tests/test_vector_envs.py``).
- ``"pil"`` (the default on the CPU): Pillow draws each frame, as the single envs do, into one
  host tensor. Whole-canvas tensor ops cost far more CPU time than Pillow's scan lines (measured
  at 224 pixels on 2 cores: about 45 ms a frame against 1.6 ms), and on the CPU there is no copy
  to avoid.

>>> import numpy as np
>>> frames = CartPoleFrames(32, "cpu", backend="torch")(np.array([[0.0, 0.0, 0.1, 0.0], [1.0, 0.0, -0.5, 0.0]]))
>>> tuple(frames.shape), frames.dtype
((2, 32, 32, 3), torch.uint8)
"""

from __future__ import annotations

from typing import Literal, Protocol

import numpy as np
import torch

from vlmrm.envs.classic_control import (
    _SUPERSAMPLE,
    AXLE_RGB,
    CAR_RGB,
    CART_RGB,
    MOUNTAIN_MAX_X,
    MOUNTAIN_MIN_X,
    POLE_RGB,
    WHEEL_RGB,
    cartpole_background,
    cartpole_shapes,
    mountaincar_background,
    mountaincar_shapes,
    render_cartpole,
    render_mountaincar,
)
from vlmrm.envs.vector.raster import (
    CudaGraphDraw,
    EllipseStamps,
    box_downsample2,
    c_int,
    colour,
    paint,
    polygon_mask,
    rectangle_mask,
)


class FrameRenderer(Protocol):
    """Draws the frames of a batch of simulator states in one call."""

    size: int
    device: torch.device

    def __call__(self, states: np.ndarray) -> torch.Tensor:
        """``(N, ...)`` host states -> ``(N, size, size, 3)`` uint8 frames on :attr:`device`."""
        ...

    def prepare(self, num_envs: int) -> None:
        """Get ready to draw batches of ``num_envs`` frames: capture any CUDA graph now, before training
        starts threads (the rule: :data:`~vlmrm.envs.vector.raster.CAPTURE_ERROR_MODE`)."""
        ...


Backend = Literal["auto", "torch", "pil"]


def choose_backend(backend: Backend, device: torch.device) -> Literal["torch", "pil"]:
    """``auto``: Pillow on the CPU, torch on any other device."""
    if backend not in ("auto", "torch", "pil"):
        raise ValueError(f"backend must be auto, torch or pil, got {backend!r}")
    if backend == "auto":
        return "pil" if device.type == "cpu" else "torch"
    if backend == "pil" and device.type != "cpu":
        raise ValueError(f"the pil backend draws on the host, not on {device}")
    return backend


def _boxes(box: tuple) -> np.ndarray:
    """``(x0, y0, x1, y1)`` of arrays -> ``(N, 4)``."""
    return np.stack(np.broadcast_arrays(*box), axis=1)


def _corners(points: tuple) -> np.ndarray:
    """``V`` points ``(x, y)`` of arrays -> ``(N, V, 2)``."""
    return np.stack([np.stack(np.broadcast_arrays(*point), axis=1) for point in points], axis=1)


def _has_horizontal(vertices: np.ndarray) -> bool:
    """Whether any polygon ``(N, V, 2)`` (integers, on the host) has a horizontal edge."""
    return bool((vertices[:, :, 1] == np.roll(vertices, -1, axis=1)[:, :, 1]).any())


def _upload(params: np.ndarray, device: torch.device) -> torch.Tensor:
    """One small host-to-device copy of a step's integer shape parameters (not of frames)."""
    return torch.from_numpy(np.ascontiguousarray(params, dtype=np.int64)).to(device, non_blocking=True)


class CartPoleFrames:
    """CartPole frames (:func:`~vlmrm.envs.classic_control.render_cartpole`) of states ``(N, 4)``."""

    def __init__(
        self,
        size: int,
        device: str | torch.device = "cpu",
        x_threshold: float = 2.4,
        pole_length: float = 0.5,
        backend: Backend = "auto",
    ):
        self.size = int(size)
        self.device = torch.device(device)
        self.backend = choose_backend(backend, self.device)
        self.canvas = self.size * _SUPERSAMPLE
        self.x_threshold = x_threshold
        self.pole_length = pole_length
        self.background = torch.from_numpy(cartpole_background(self.canvas).copy()).to(self.device)
        radius = 0.1 * self.canvas / (2 * x_threshold) / 2  # the axle: a circle as wide as the pole
        self.axle = EllipseStamps.for_radius(radius, self.device)
        self.colours = [colour(rgb, self.device) for rgb in (CART_RGB, POLE_RGB, AXLE_RGB)]
        self._graphed = CudaGraphDraw(self._draw)

    def __call__(self, states: np.ndarray) -> torch.Tensor:
        states = np.asarray(states, dtype=np.float64).reshape(-1, 4)
        if self.backend == "pil":
            frames = [render_cartpole(state, self.size, self.x_threshold, self.pole_length) for state in states]
            return torch.from_numpy(np.stack(frames)) if frames else self._empty()
        n, c = len(states), self.canvas
        shapes = cartpole_shapes(states[:, 0], states[:, 2], c, self.x_threshold, self.pole_length)
        axle, pole = c_int(_boxes(shapes.axle)), c_int(_corners(shapes.pole))
        cart = c_int(_boxes(shapes.cart))
        params = np.concatenate([cart, pole.reshape(n, 8), axle[:, :2], self.axle.indices(axle)], 1)
        p = _upload(params, self.device)
        if p.is_cuda:
            return self._graphed(p)
        return self._draw(p, _has_horizontal(pole))

    def prepare(self, num_envs: int) -> None:
        """Capture the CUDA graph for batches of ``num_envs`` frames now (resting states; a no-op off CUDA)."""
        if self.backend == "torch" and self.device.type == "cuda":
            self(np.zeros((num_envs, 4)))

    def _draw(self, p: torch.Tensor, horizontal_edges: bool = True) -> torch.Tensor:
        n, c = p.shape[0], self.canvas
        cart_rgb, pole_rgb, axle_rgb = self.colours
        canvas = self.background.expand(n, c, c, 3)
        canvas = paint(canvas, rectangle_mask(p[:, 0:4], c), cart_rgb)
        canvas = paint(canvas, polygon_mask(p[:, 4:12].view(n, 4, 2), c, horizontal_edges), pole_rgb)
        canvas = paint(canvas, self.axle.mask(p[:, 14:16], p[:, 12:14], c), axle_rgb)
        return box_downsample2(canvas)

    def _empty(self) -> torch.Tensor:
        return torch.zeros((0, self.size, self.size, 3), dtype=torch.uint8, device=self.device)


class MountainCarFrames:
    """Flat-look MountainCar frames (:func:`~vlmrm.envs.classic_control.render_mountaincar`) of
    states ``(N, 2)`` (position, velocity)."""

    def __init__(
        self, size: int, device: str | torch.device = "cpu", goal_position: float = 0.45, backend: Backend = "auto"
    ):
        self.size = int(size)
        self.device = torch.device(device)
        self.backend = choose_backend(backend, self.device)
        self.goal_position = float(goal_position)
        self.canvas = self.size * _SUPERSAMPLE
        background = mountaincar_background(self.canvas, float(goal_position))
        self.background = torch.from_numpy(background.copy()).to(self.device)
        radius = 0.03 * 0.9 * self.canvas / (MOUNTAIN_MAX_X - MOUNTAIN_MIN_X)
        self.wheels = EllipseStamps.for_radius(radius, self.device)
        self.colours = [colour(rgb, self.device) for rgb in (CAR_RGB, WHEEL_RGB)]
        self._graphed = CudaGraphDraw(self._draw)

    def __call__(self, states: np.ndarray) -> torch.Tensor:
        states = np.asarray(states, dtype=np.float64).reshape(len(states), -1)
        if self.backend == "pil":
            frames = [render_mountaincar(float(p), self.size, self.goal_position) for p in states[:, 0]]
            return torch.from_numpy(np.stack(frames)) if frames else self._empty()
        n, c = len(states), self.canvas
        shapes = mountaincar_shapes(states[:, 0], c)
        wheels = [c_int(_boxes(box)) for box in shapes.wheels]
        body = c_int(_corners(shapes.body))
        params = np.concatenate(
            [body.reshape(n, 8)] + [np.concatenate([box[:, :2], self.wheels.indices(box)], 1) for box in wheels], 1
        )
        p = _upload(params, self.device)
        if p.is_cuda:
            return self._graphed(p)
        return self._draw(p, _has_horizontal(body))

    def prepare(self, num_envs: int) -> None:
        """Capture the CUDA graph for batches of ``num_envs`` frames now (resting states; a no-op off CUDA)."""
        if self.backend == "torch" and self.device.type == "cuda":
            self(np.zeros((num_envs, 2)))

    def _draw(self, p: torch.Tensor, horizontal_edges: bool = True) -> torch.Tensor:
        n, c = p.shape[0], self.canvas
        car_rgb, wheel_rgb = self.colours
        canvas = self.background.expand(n, c, c, 3)
        canvas = paint(canvas, polygon_mask(p[:, 0:8].view(n, 4, 2), c, horizontal_edges), car_rgb)
        for start in (8, 12):
            canvas = paint(canvas, self.wheels.mask(p[:, start + 2 : start + 4], p[:, start : start + 2], c), wheel_rgb)
        return box_downsample2(canvas)

    def _empty(self) -> torch.Tensor:
        return torch.zeros((0, self.size, self.size, 3), dtype=torch.uint8, device=self.device)
