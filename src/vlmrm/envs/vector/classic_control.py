"""Batched CartPole and MountainCar: one call steps all envs, one call draws all frames on a device.

CartPole's physics is Gymnasium's ``CartPoleEnv.step`` written over arrays, term for term (so
float64 results are bit-identical), with vlmrm's options: no termination by default (the angle
wrapped, the cart clipped, :func:`~vlmrm.envs.classic_control.keep_on_track`), ``info["is_success"]``
while the pole is up. MountainCar steps the very envs the single-env path uses
(:class:`~vlmrm.envs.classic_control.SquareMountainCarContinuous`, clipped at the flag) one after
another: its scalar arithmetic mixes float32 and float64 in ways an array version would have to
copy case by case, and its physics costs microseconds against the frames' milliseconds. Both
draw all frames at once (:mod:`vlmrm.envs.vector.render`, :mod:`vlmrm.envs.vector.textured`).
Reset draws come from each env's own random stream seeded as Gymnasium seeds it, so a batched
env and ``make_vec_env``'s ``DummyVecEnv`` of single envs, seeded alike, go through the same
states step for step (``tests/test_vector_envs.py``).

>>> venv = make_cartpole_vector(n_envs=2, render_size=32, episode_length=5, options=CartPoleOptions(), device="cpu")
>>> _ = venv.seed(0); obs = venv.reset()
>>> obs, rewards, dones, infos = venv.step(np.array([0, 1]))
>>> tuple(venv.step_frames().shape), rewards.tolist(), infos[0]["is_success"]
((2, 32, 32, 3), [1.0, 1.0], True)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.envs.classic_control import utils as classic_utils
from gymnasium.utils import seeding

from vlmrm.envs.classic_control import (
    CartPoleOptions,
    MountainCarOptions,
    SquareCartPole,
    SquareMountainCarContinuous,
    keep_on_track,
)
from vlmrm.envs.vector.render import Backend, CartPoleFrames, MountainCarFrames
from vlmrm.envs.vector.textured import TexturedMountainCarFrames
from vlmrm.envs.vector.vec_env import BatchedVecEnv, EnvListSimulation


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
