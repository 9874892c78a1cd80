"""The single MountainCar env: Gymnasium's ``Continuous_MountainCarEnv`` dynamics, vlmrm's goal rules, a square
renderer in either look."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.classic_control.continuous_mountain_car import Continuous_MountainCarEnv
from gymnasium.wrappers import TimeLimit

from vlmrm.envs.classic import StateVector, refuse_device_renderer
from vlmrm.envs.mountaincar.draw import render_mountaincar
from vlmrm.envs.mountaincar.spec import MountainCarOptions
from vlmrm.envs.mountaincar.textured import render_mountaincar_textured


class SquareMountainCarContinuous(StateVector, Continuous_MountainCarEnv):
    """MountainCarContinuous-v0 dynamics with a square renderer; being at the flag is ``info["is_success"]``."""

    STATE_SIZE = 2

    def __init__(self, render_size: int = 224, options: MountainCarOptions | None = None):
        super().__init__(render_mode="rgb_array")
        self.render_size = render_size
        self.options = options or MountainCarOptions()
        self.reached_goal = False

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        self.reached_goal = False
        return super().reset(seed=seed, options=options)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward, at_goal, truncated, info = super().step(action)
        info["is_success"] = bool(at_goal)
        position, velocity = self.state
        self.reached_goal = self.reached_goal or position >= self.goal_position
        if self.options.clip_at_goal and self.reached_goal and position > self.goal_position:
            self.state = np.array([self.goal_position, velocity], dtype=np.float64)
            obs = np.array(self.state, dtype=np.float32)
        terminated = bool(at_goal) and self.options.terminate_at_goal
        return obs, float(reward), terminated, bool(truncated), info

    def render(self) -> np.ndarray:
        assert self.state is not None, "call reset() before render()"
        draw = render_mountaincar_textured if self.options.textured else render_mountaincar
        return draw(float(self.state[0]), self.render_size, self.goal_position)


def make_mountaincar(render_size: int, episode_length: int, options: MountainCarOptions) -> gym.Env:
    """One MountainCar that ends by truncation after ``episode_length`` steps (the registry's entry point)."""
    refuse_device_renderer(options)
    return TimeLimit(SquareMountainCarContinuous(render_size, options), max_episode_steps=episode_length)
