"""The single CartPole env: Gymnasium's ``CartPoleEnv`` dynamics, vlmrm's episode rules, a square renderer."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from gymnasium.wrappers import TimeLimit

from vlmrm.envs.cartpole.draw import render_cartpole
from vlmrm.envs.cartpole.spec import CartPoleOptions
from vlmrm.envs.classic import StateVector, refuse_device_renderer


def keep_on_track(state: np.ndarray, x_threshold: float) -> np.ndarray:
    """CartPole states ``(..., 4)`` after a step that goes on past a fall: the pole angle wrapped into
    [-pi, pi], the cart held inside the track (a new array; the vectorised CartPole applies the same rule)."""
    state = np.array(state, dtype=np.float64)
    state[..., 2] = (state[..., 2] + math.pi) % (2 * math.pi) - math.pi
    state[..., 0] = np.clip(state[..., 0], -x_threshold, x_threshold)
    return state


class SquareCartPole(StateVector, CartPoleEnv):
    """CartPole-v1 dynamics with a square renderer; its state can be read and set (:class:`StatefulEnv`).

    Every step reports ``info["is_success"]``: the pole is up, i.e. Gymnasium's CartPole-v1 would not
    have ended the episode (cart within 2.4 m, pole within 12 degrees). Without ``terminate_on_fall``
    (the default, the paper's authors' setting) the episode goes on after a fall: the angle is wrapped
    into [-pi, pi], the cart position clipped to the track, and the env reward is 1 while the pole is up.
    """

    STATE_SIZE = 4

    def __init__(self, render_size: int = 224, options: CartPoleOptions | None = None):
        super().__init__(render_mode="rgb_array")
        self.render_size = render_size
        self.options = options or CartPoleOptions()
        if not self.options.terminate_on_fall:
            high = np.array([self.x_threshold * 2, np.inf, math.pi, np.inf], dtype=np.float32)
            self.observation_space = gym.spaces.Box(-high, high, dtype=np.float32)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward, fell, truncated, info = super().step(action)
        info["is_success"] = not fell
        if self.options.terminate_on_fall:
            return obs, float(reward), bool(fell), bool(truncated), info
        self.state = keep_on_track(np.asarray(self.state, dtype=np.float64), self.x_threshold)
        self.steps_beyond_terminated = None  # the episode goes on: not an ended one stepped again
        return np.array(self.state, dtype=np.float32), float(not fell), False, bool(truncated), info

    def render(self) -> np.ndarray:
        assert self.state is not None, "call reset() before render()"
        return render_cartpole(np.asarray(self.state), self.render_size, self.x_threshold, self.length)


def make_cartpole(render_size: int, episode_length: int, options: CartPoleOptions) -> gym.Env:
    """One CartPole that ends by truncation after ``episode_length`` steps (the registry's entry point)."""
    refuse_device_renderer(options)
    return TimeLimit(SquareCartPole(render_size, options), max_episode_steps=episode_length)
