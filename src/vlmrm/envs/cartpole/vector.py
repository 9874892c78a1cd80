"""All CartPoles in arrays: one call steps them all, one call draws all their frames on a torch device.

The physics is Gymnasium's ``CartPoleEnv.step`` written over arrays, term for term (:func:`cartpole_equations`,
one function for numpy arrays and torch tensors), with vlmrm's options: no termination by default (the angle
wrapped, the cart clipped, :func:`~vlmrm.envs.cartpole.env.keep_on_track`), ``info["is_success"]`` while the
pole is up. Reset draws come from each env's own random stream seeded as Gymnasium seeds it, so a batched env
and ``make_vec_env``'s ``DummyVecEnv`` of single envs, seeded alike, go through the same states step for step
(``tests/test_vector_envs.py``).

Where the states live (:class:`CartPoleSimulation`):

- on the host, in float64 numpy (the default on the CPU): bit for bit the single envs' states;
- on the device, in a float64 torch tensor (``device_state``, the default when the frames are drawn by torch
  on a GPU): a step uploads the actions (one number per env), runs the equations there, and copies one small
  ``(N, 6)`` block back to the host, the observations, rewards and falls stable-baselines3 needs; the frames
  are drawn from the device tensor with no host round trip. Resets draw from the same numpy streams and write
  their rows into the tensor (one upload for all the envs that reset at a step). On CUDA the step and the
  drawing are one CUDA graph replay each, whatever the number of envs. torch's float64 ``sin`` and ``cos``
  may differ from libm's in the last bit (see :func:`~vlmrm.envs.classic.trig`), so these states follow the
  host's to about 1e-13 over hundreds of steps (measured on the CPU), not bit for bit
  (``tests/test_device_state.py`` bounds it at 1e-9 and checks frames and episodes are the same).

Frames (:class:`CartPoleFrames`), two ways, the same pictures:

- ``"torch"`` (the default on a GPU): the shapes come from the geometry of the Pillow renderer
  (:func:`~vlmrm.envs.cartpole.draw.cartpole_shapes`) in float64, turned into integers as Pillow does. With
  ``device_geometry`` (the default off the CPU) the geometry runs on the device too, from the device states
  or from a copy of the host states (4 numbers per env); otherwise it runs on the host in numpy and only its
  integers travel. The static scene is drawn once by Pillow and kept on the device; filling, compositing and
  the 2x box filter run there (:mod:`vlmrm.envs.vector.raster`), so frames are born where the reward model
  runs and match Pillow's pixel for pixel.
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

import math
from typing import Any

import numpy as np
import torch
from gymnasium.envs.classic_control import utils as classic_utils
from gymnasium.utils import seeding

from vlmrm.envs.cartpole.draw import AXLE_RGB, CART_RGB, POLE_RGB, cartpole_background, cartpole_shapes, render_cartpole
from vlmrm.envs.cartpole.env import SquareCartPole, keep_on_track
from vlmrm.envs.cartpole.spec import CartPoleOptions
from vlmrm.envs.classic import SUPERSAMPLE, Number, trig
from vlmrm.envs.vector.raster import (
    CudaGraphDraw,
    EllipseStamps,
    box_downsample2,
    c_int,
    c_int_tensor,
    colour,
    paint,
    polygon_mask,
    rectangle_mask,
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
from vlmrm.envs.vector.vec_env import BatchedVecEnv


class CartPoleFrames:
    """CartPole frames (:func:`~vlmrm.envs.cartpole.draw.render_cartpole`) of states ``(N, 4)``.

    Args:
        size: the frames' side, in pixels.
        device: where the frames are made.
        x_threshold: half the track's length (the frame's width holds the whole track).
        pole_length: half the pole's length, Gymnasium's ``length``.
        backend: ``torch``, ``pil`` or ``auto`` (:func:`~vlmrm.envs.vector.render.choose_backend`).
        device_geometry: with ``torch``, compute the shapes on the device (from :meth:`draw_states`'s device
            states, or from a copy of the host states) rather than on the host; by default off the CPU only,
            where it saves the host's numpy work and a sync (on the CPU numpy's small arrays are cheaper).
    """

    def __init__(
        self,
        size: int,
        device: str | torch.device = "cpu",
        x_threshold: float = 2.4,
        pole_length: float = 0.5,
        backend: Backend = "auto",
        device_geometry: bool | None = None,
    ):
        self.size = int(size)
        self.device = torch.device(device)
        self.backend = choose_backend(backend, self.device)
        self.device_geometry = choose_device_work(device_geometry, self.backend, self.device, "device_geometry")
        self.canvas = self.size * SUPERSAMPLE
        self.x_threshold = x_threshold
        self.pole_length = pole_length
        self.background = torch.from_numpy(cartpole_background(self.canvas).copy()).to(self.device)
        radius = 0.1 * self.canvas / (2 * x_threshold) / 2  # the axle: a circle as wide as the pole
        self.axle = EllipseStamps.for_radius(radius, self.device)
        self.colours = [colour(rgb, self.device) for rgb in (CART_RGB, POLE_RGB, AXLE_RGB)]
        # One graph per batch size, of the one path the renderer takes: from device states, or from host shapes.
        self._graphed = CudaGraphDraw(self._draw_states if self.device_geometry else self._draw)

    def __call__(self, states: np.ndarray) -> torch.Tensor:
        states = np.asarray(states, dtype=np.float64).reshape(-1, 4)
        if self.backend == "pil":
            frames = [render_cartpole(state, self.size, self.x_threshold, self.pole_length) for state in states]
            return torch.from_numpy(np.stack(frames)) if frames else self._empty()
        if self.device_geometry:
            return self.draw_states(torch.from_numpy(np.ascontiguousarray(states)).to(self.device))
        if not len(states):
            return self._empty()
        params = self.host_params(states)
        p = upload_params(params, self.device)
        if p.is_cuda:
            return self._graphed(p)
        return self._draw(p, has_horizontal_edge(params[:, 4:12].reshape(-1, 4, 2)))

    def draw_states(self, states: torch.Tensor) -> torch.Tensor:
        """Frames of float64 states ``(N, 4)`` already on :attr:`device` (torch backend): the geometry, its
        integers and the drawing all run there, with no host round trip; on CUDA, one graph replay. Needs
        ``device_geometry``."""
        if not self.device_geometry:
            raise ValueError("this renderer was made without device_geometry: it draws from host shapes")
        if not len(states):
            return self._empty()
        if states.is_cuda:
            return self._graphed(states)
        return self._draw_states(states, horizontal_edges=None)  # on the CPU, reading the flag costs no sync

    def host_params(self, states: np.ndarray) -> np.ndarray:
        """The integer shape parameters ``(N, 16)`` of host states ``(N, 4)``, from numpy's float64 geometry:
        the cart's box, the pole's corners, the axle's corner and its stamp."""
        n = len(states)
        shapes = cartpole_shapes(states[:, 0], states[:, 2], self.canvas, self.x_threshold, self.pole_length)
        axle, pole = c_int(box_array(shapes.axle)), c_int(corner_array(shapes.pole))
        cart = c_int(box_array(shapes.cart))
        return np.concatenate([cart, pole.reshape(n, 8), axle[:, :2], self.axle.indices(axle)], 1)

    def device_params(self, states: torch.Tensor) -> torch.Tensor:
        """:meth:`host_params` of device states, computed on their device by the same geometry function."""
        n, x = len(states), states[:, 0]
        shapes = cartpole_shapes(x, states[:, 2], self.canvas, self.x_threshold, self.pole_length)
        axle, pole = c_int_tensor(box_tensor(shapes.axle, x)), c_int_tensor(corner_tensor(shapes.pole, x))
        cart = c_int_tensor(box_tensor(shapes.cart, x))
        return torch.cat([cart, pole.reshape(n, 8), axle[:, :2], self.axle.index_tensor(axle)], 1)

    def prepare(self, num_envs: int) -> None:
        """Capture the CUDA graph for batches of ``num_envs`` frames now (resting states; a no-op off CUDA)."""
        if self.backend == "torch" and self.device.type == "cuda":
            self(np.zeros((num_envs, 4)))

    def _draw_states(self, states: torch.Tensor, horizontal_edges: bool | None = True) -> torch.Tensor:
        return self._draw(self.device_params(states), horizontal_edges)

    def _draw(self, p: torch.Tensor, horizontal_edges: bool | None = True) -> torch.Tensor:
        n, c = p.shape[0], self.canvas
        cart_rgb, pole_rgb, axle_rgb = self.colours
        canvas = self.background.expand(n, c, c, 3)
        canvas = paint(canvas, rectangle_mask(p[:, 0:4], c), cart_rgb)
        canvas = paint(canvas, polygon_mask(p[:, 4:12].view(n, 4, 2), c, horizontal_edges), pole_rgb)
        canvas = paint(canvas, self.axle.mask(p[:, 14:16], p[:, 12:14], c), axle_rgb)
        return box_downsample2(canvas)

    def _empty(self) -> torch.Tensor:
        return torch.zeros((0, self.size, self.size, 3), dtype=torch.uint8, device=self.device)


def cartpole_equations(
    sim: CartPoleSimulation, x: Number, x_dot: Number, theta: Number, theta_dot: Number, force: Number
) -> tuple[Number, Number, Number, Number]:
    """Gymnasium's ``CartPoleEnv.step``, term for term and in its order, over numpy arrays or torch tensors
    (``sim`` holds the constants): the state after one step under ``force``."""
    tr = trig(theta)
    costheta = tr.cos(theta)
    sintheta = tr.sin(theta)
    temp = (force + sim.polemass_length * (theta_dot * theta_dot) * sintheta) / sim.total_mass
    thetaacc = (sim.gravity * sintheta - costheta * temp) / (
        sim.length * (4.0 / 3.0 - sim.masspole * (costheta * costheta) / sim.total_mass)
    )
    xacc = temp - sim.polemass_length * thetaacc * costheta / sim.total_mass
    if sim.kinematics_integrator == "euler":
        x = x + sim.tau * x_dot
        x_dot = x_dot + sim.tau * xacc
        theta = theta + sim.tau * theta_dot
        theta_dot = theta_dot + sim.tau * thetaacc
    else:  # semi-implicit euler
        x_dot = x_dot + sim.tau * xacc
        x = x + sim.tau * x_dot
        theta_dot = theta_dot + sim.tau * thetaacc
        theta = theta + sim.tau * theta_dot
    return x, x_dot, theta, theta_dot


class CartPoleSimulation:
    """``n`` CartPoles in arrays (see the module docstring); frames by :class:`CartPoleFrames`.

    Args:
        n: the number of envs.
        render_size: the frames' side, in pixels.
        options: the env's options.
        device: where the frames are drawn.
        backend: what draws them (:class:`CartPoleFrames`).
        device_state: keep the states in a float64 tensor on ``device`` and step them there (the module
            docstring says what changes); by default when torch draws off the CPU. Needs the torch backend.
    """

    def __init__(
        self,
        n: int,
        render_size: int,
        options: CartPoleOptions,
        device: str | torch.device = "cpu",
        backend: Backend = "auto",
        device_state: bool | None = None,
    ):
        if n <= 0:
            raise ValueError(f"n must be positive, got {n}")
        self.num_envs = n
        self.options = options
        self.device = torch.device(device)
        chosen = choose_backend(backend, self.device)
        self.device_state = choose_device_work(device_state, chosen, self.device, "device_state")
        template = SquareCartPole(render_size, options)  # constants and spaces of the single env
        self.observation_space = template.observation_space
        self.action_space = template.action_space
        self.gravity, self.masspole, self.total_mass = template.gravity, template.masspole, template.total_mass
        self.length, self.polemass_length = template.length, template.polemass_length
        self.force_mag, self.tau = template.force_mag, template.tau
        self.kinematics_integrator = template.kinematics_integrator
        self.x_threshold, self.theta_threshold = template.x_threshold, template.theta_threshold_radians
        self.state: Any = np.zeros((n, 4), dtype=np.float64)
        """The states ``(n, 4)`` float64: a numpy array, or the tensor on :attr:`device` with ``device_state``."""
        self._rngs: list[np.random.Generator | None] = [None] * n
        self._pending: dict[int, np.ndarray] = {}  # reset rows not yet written into the device states
        geometry = True if self.device_state else None
        self.renderer = CartPoleFrames(render_size, self.device, self.x_threshold, self.length, chosen, geometry)
        self.renderer.prepare(n)
        self.renderer_name = self.renderer.backend + (" (state on device)" if self.device_state else "")
        if self.device_state:
            self.state = torch.zeros((n, 4), dtype=torch.float64, device=self.device)
            self._graphed_step = CudaGraphDraw(self._step_tensor, "stepping CartPole")
            self._graphed_step.prepare(torch.zeros((n, 5), dtype=torch.float64, device=self.device))

    def set_states(self, states: np.ndarray) -> None:
        """Put all envs in the host states ``(n, 4)``, wherever the states live."""
        values = np.array(states, dtype=np.float64).reshape(self.num_envs, 4)
        self._pending.clear()
        self.state = torch.from_numpy(values).to(self.device) if self.device_state else values

    def host_states(self) -> np.ndarray:
        """A host copy of all envs' states ``(n, 4)`` float64 (with ``device_state``, a copy from the device)."""
        if self.device_state:
            self._write_resets()
            return self.state.cpu().numpy()
        return np.array(self.state)

    def reset_env(self, index: int, seed: int | None, options: dict[str, Any] | None) -> tuple[np.ndarray, dict]:
        rng = self._rngs[index]
        if seed is not None or rng is None:
            rng, _ = seeding.np_random(seed)
            self._rngs[index] = rng
        low, high = classic_utils.maybe_parse_reset_bounds(options, -0.05, 0.05)
        row = rng.uniform(low=low, high=high, size=(4,))
        if self.device_state:
            self._pending[index] = row
        else:
            self.state[index] = row
        return np.array(row, dtype=np.float32), {}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        actions = np.asarray(actions).reshape(self.num_envs)
        if not np.isin(actions, (0, 1)).all():
            raise ValueError(f"CartPole actions are 0 or 1, got {actions.tolist()}")
        if self.device_state:
            state, rewards, fell = self._step_on_device(actions)
        else:
            state, rewards, fell = self._step_on_host(actions)
        terminated = fell if self.options.terminate_on_fall else np.zeros(self.num_envs, dtype=bool)
        infos = [{"is_success": not bool(f)} for f in fell]
        return state.astype(np.float32), rewards, terminated, infos

    def _step_on_host(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        force = np.where(actions == 1, self.force_mag, -self.force_mag)
        x, x_dot, theta, theta_dot = self.state.T
        x, x_dot, theta, theta_dot = cartpole_equations(self, x, x_dot, theta, theta_dot, force)
        state = np.stack([x, x_dot, theta, theta_dot], axis=1)
        fell = self._fell(x, theta)
        if self.options.terminate_on_fall:
            rewards = np.ones(self.num_envs)
        else:  # vlmrm's default: the episode goes on
            rewards = (~fell).astype(np.float64)
            state = keep_on_track(state, self.x_threshold)
        self.state = state
        return state, rewards, fell

    def _step_on_device(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self._write_resets()
        pushes = torch.from_numpy(actions.astype(np.float64)).to(self.device)  # one number per env
        packed = torch.cat([self.state, pushes[:, None]], dim=1)
        out = self._graphed_step(packed) if packed.is_cuda else self._step_tensor(packed)
        self.state = out[:, :4]
        host = out.cpu().numpy()  # the one copy back: observations, rewards, falls
        return host[:, :4], host[:, 4].copy(), host[:, 5] != 0

    def _step_tensor(self, packed: torch.Tensor) -> torch.Tensor:
        """``(N, 5)`` states and actions -> ``(N, 6)`` next states, rewards, falls (0/1), all on the device."""
        force = (2 * packed[:, 4] - 1) * self.force_mag  # exactly +-force_mag
        x, x_dot, theta, theta_dot = packed[:, :4].unbind(1)
        x, x_dot, theta, theta_dot = cartpole_equations(self, x, x_dot, theta, theta_dot, force)
        fell = self._fell(x, theta)
        if self.options.terminate_on_fall:
            rewards = torch.ones_like(x)
        else:  # keep_on_track's rule, on the device
            rewards = (~fell).to(torch.float64)
            theta = torch.remainder(theta + math.pi, 2 * math.pi) - math.pi
            x = torch.clamp(x, -self.x_threshold, self.x_threshold)
        return torch.stack([x, x_dot, theta, theta_dot, rewards, fell.to(torch.float64)], dim=1)

    def _fell(self, x: Any, theta: Any) -> Any:
        fell = (x < -self.x_threshold) | (x > self.x_threshold) | (theta < -self.theta_threshold)
        return fell | (theta > self.theta_threshold)

    def _write_resets(self) -> None:
        """Write the reset rows drawn since the last step into the device states, in one upload."""
        if not self._pending:
            return
        rows = np.array([[index, *row] for index, row in sorted(self._pending.items())], dtype=np.float64)
        self._pending.clear()
        block = torch.from_numpy(rows).to(self.device)
        self.state[block[:, 0].to(torch.int64)] = block[:, 1:]

    def render(self) -> torch.Tensor:
        if self.device_state:
            self._write_resets()
            return self.renderer.draw_states(self.state)
        return self.renderer(self.state)

    def close(self) -> None:
        """Nothing to release."""


def make_cartpole_vector(
    n_envs: int, render_size: int, episode_length: int, options: CartPoleOptions, device: str | torch.device = "cpu"
) -> BatchedVecEnv:
    """``n_envs`` CartPoles in arrays, frames drawn on ``device`` (the registry's vector entry point); with the
    torch renderer on a GPU the states live there too (:class:`CartPoleSimulation`'s ``device_state``)."""
    sim = CartPoleSimulation(n_envs, render_size, options, device, options.renderer)
    return BatchedVecEnv(sim, episode_length)
