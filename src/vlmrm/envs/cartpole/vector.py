"""All CartPoles in arrays: one call steps them all, one call draws all their frames on a torch device.

The physics is Gymnasium's ``CartPoleEnv.step`` written over arrays, term for term (so float64 results are
bit-identical), with vlmrm's options: no termination by default (the angle wrapped, the cart clipped,
:func:`~vlmrm.envs.cartpole.env.keep_on_track`), ``info["is_success"]`` while the pole is up. Reset draws
come from each env's own random stream seeded as Gymnasium seeds it, so a batched env and
``make_vec_env``'s ``DummyVecEnv`` of single envs, seeded alike, go through the same states step for step
(``tests/test_vector_envs.py``).

Frames (:class:`CartPoleFrames`), two ways, the same pictures:

- ``"torch"`` (the default on a GPU): the shapes come from the geometry of the Pillow renderer
  (:func:`~vlmrm.envs.cartpole.draw.cartpole_shapes`), computed in float64 on the host and turned into
  integers as Pillow does; only those few integers per env travel to the device. The static scene is drawn
  once by Pillow and kept on the device; filling, compositing and the 2x box filter run there
  (:mod:`vlmrm.envs.vector.raster`), so frames are born where the reward model runs and match Pillow's
  pixel for pixel.
- ``"pil"`` (the default on the CPU): Pillow draws each frame, as the single env does, into one host
  tensor. Whole-canvas tensor ops cost far more CPU time than Pillow's scan lines (measured at 224 pixels
  on 2 cores: about 45 ms a frame against 1.6 ms), and on the CPU there is no copy to avoid.

>>> venv = make_cartpole_vector(n_envs=2, render_size=32, episode_length=5, options=CartPoleOptions(), device="cpu")
>>> _ = venv.seed(0); obs = venv.reset()
>>> obs, rewards, dones, infos = venv.step(np.array([0, 1]))
>>> tuple(venv.step_frames().shape), rewards.tolist(), infos[0]["is_success"]
((2, 32, 32, 3), [1.0, 1.0], True)
>>> frames = CartPoleFrames(32, "cpu", backend="torch")(np.array([[0.0, 0.0, 0.1, 0.0], [1.0, 0.0, -0.5, 0.0]]))
>>> tuple(frames.shape), frames.dtype
((2, 32, 32, 3), torch.uint8)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium.envs.classic_control import utils as classic_utils
from gymnasium.utils import seeding

from vlmrm.envs.cartpole.draw import AXLE_RGB, CART_RGB, POLE_RGB, cartpole_background, cartpole_shapes, render_cartpole
from vlmrm.envs.cartpole.env import SquareCartPole, keep_on_track
from vlmrm.envs.cartpole.spec import CartPoleOptions
from vlmrm.envs.classic import SUPERSAMPLE
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
from vlmrm.envs.vector.render import (
    Backend,
    box_array,
    choose_backend,
    corner_array,
    has_horizontal_edge,
    upload_params,
)
from vlmrm.envs.vector.vec_env import BatchedVecEnv


class CartPoleFrames:
    """CartPole frames (:func:`~vlmrm.envs.cartpole.draw.render_cartpole`) of states ``(N, 4)``."""

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
        self.canvas = self.size * SUPERSAMPLE
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
        axle, pole = c_int(box_array(shapes.axle)), c_int(corner_array(shapes.pole))
        cart = c_int(box_array(shapes.cart))
        params = np.concatenate([cart, pole.reshape(n, 8), axle[:, :2], self.axle.indices(axle)], 1)
        p = upload_params(params, self.device)
        if p.is_cuda:
            return self._graphed(p)
        return self._draw(p, has_horizontal_edge(pole))

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


class CartPoleSimulation:
    """``n`` CartPoles in arrays (see the module docstring); frames by :class:`CartPoleFrames`."""

    def __init__(
        self,
        n: int,
        render_size: int,
        options: CartPoleOptions,
        device: str | torch.device = "cpu",
        backend: Backend = "auto",
    ):
        if n <= 0:
            raise ValueError(f"n must be positive, got {n}")
        self.num_envs = n
        self.options = options
        self.device = torch.device(device)
        template = SquareCartPole(render_size, options)  # constants and spaces of the single env
        self.observation_space = template.observation_space
        self.action_space = template.action_space
        self.gravity, self.masspole, self.total_mass = template.gravity, template.masspole, template.total_mass
        self.length, self.polemass_length = template.length, template.polemass_length
        self.force_mag, self.tau = template.force_mag, template.tau
        self.kinematics_integrator = template.kinematics_integrator
        self.x_threshold, self.theta_threshold = template.x_threshold, template.theta_threshold_radians
        self.state = np.zeros((n, 4), dtype=np.float64)
        self._rngs: list[np.random.Generator | None] = [None] * n
        self.renderer = CartPoleFrames(render_size, self.device, self.x_threshold, self.length, backend)
        self.renderer.prepare(n)
        self.renderer_name = self.renderer.backend

    def reset_env(self, index: int, seed: int | None, options: dict[str, Any] | None) -> tuple[np.ndarray, dict]:
        rng = self._rngs[index]
        if seed is not None or rng is None:
            rng, _ = seeding.np_random(seed)
            self._rngs[index] = rng
        low, high = classic_utils.maybe_parse_reset_bounds(options, -0.05, 0.05)
        self.state[index] = rng.uniform(low=low, high=high, size=(4,))
        return np.array(self.state[index], dtype=np.float32), {}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        actions = np.asarray(actions).reshape(self.num_envs)
        if not np.isin(actions, (0, 1)).all():
            raise ValueError(f"CartPole actions are 0 or 1, got {actions.tolist()}")
        # Gymnasium's CartPoleEnv.step, term for term, over arrays.
        x, x_dot, theta, theta_dot = self.state.T
        force = np.where(actions == 1, self.force_mag, -self.force_mag)
        costheta = np.cos(theta)
        sintheta = np.sin(theta)
        temp = (force + self.polemass_length * np.square(theta_dot) * sintheta) / self.total_mass
        thetaacc = (self.gravity * sintheta - costheta * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * np.square(costheta) / self.total_mass)
        )
        xacc = temp - self.polemass_length * thetaacc * costheta / self.total_mass
        if self.kinematics_integrator == "euler":
            x = x + self.tau * x_dot
            x_dot = x_dot + self.tau * xacc
            theta = theta + self.tau * theta_dot
            theta_dot = theta_dot + self.tau * thetaacc
        else:  # semi-implicit euler
            x_dot = x_dot + self.tau * xacc
            x = x + self.tau * x_dot
            theta_dot = theta_dot + self.tau * thetaacc
            theta = theta + self.tau * theta_dot
        state = np.stack([x, x_dot, theta, theta_dot], axis=1)
        fell = (x < -self.x_threshold) | (x > self.x_threshold) | (theta < -self.theta_threshold)
        fell |= theta > self.theta_threshold
        if self.options.terminate_on_fall:
            rewards, terminated = np.ones(self.num_envs), fell
        else:  # vlmrm's default: the episode goes on
            rewards, terminated = (~fell).astype(np.float64), np.zeros(self.num_envs, dtype=bool)
            state = keep_on_track(state, self.x_threshold)
        self.state = state
        infos = [{"is_success": not bool(f)} for f in fell]
        return state.astype(np.float32), rewards, terminated, infos

    def render(self) -> torch.Tensor:
        return self.renderer(self.state)

    def close(self) -> None:
        """Nothing to release."""


def make_cartpole_vector(
    n_envs: int, render_size: int, episode_length: int, options: CartPoleOptions, device: str | torch.device = "cpu"
) -> BatchedVecEnv:
    """``n_envs`` CartPoles in arrays, frames drawn on ``device`` (the registry's vector entry point)."""
    sim = CartPoleSimulation(n_envs, render_size, options, device, options.renderer)
    return BatchedVecEnv(sim, episode_length)
