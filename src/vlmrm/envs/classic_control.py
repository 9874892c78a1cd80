"""CartPole and MountainCar that render square frames at any size.

Gymnasium draws these scenes with fixed pixel sizes on a 600x400 canvas; a CLIP model then
sees them resized and centre-cropped, which cuts off the track ends. Here the scene is drawn
directly at ``render_size`` x ``render_size`` with every length scaled to the frame, so the
whole track is visible and no resize is needed. Drawing is 2x supersampled for anti-aliasing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from gymnasium.envs.classic_control.continuous_mountain_car import Continuous_MountainCarEnv
from gymnasium.wrappers import TimeLimit
from PIL import Image, ImageDraw

from vlmrm.envs.mountaincar_textured import render_mountaincar_textured
from vlmrm.envs.spec import EnvOptions, EnvSpec, Prompts, SimState, StateSweep, all_steps_succeed, any_step_succeeds

_SUPERSAMPLE = 2


def _finish(image: Image.Image, size: int) -> np.ndarray:
    return np.asarray(image.resize((size, size), Image.Resampling.BOX), dtype=np.uint8)


def render_cartpole(state: np.ndarray, size: int, x_threshold: float = 2.4, pole_length: float = 0.5) -> np.ndarray:
    """Draw a CartPole state ``(x, x_dot, theta, theta_dot)`` as a ``(size, size, 3)`` frame."""
    canvas = size * _SUPERSAMPLE
    image = Image.new("RGB", (canvas, canvas), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    scale = canvas / (2 * x_threshold)  # pixels per metre: the whole track fits the frame
    track_y = canvas * 0.62
    cart_w, cart_h = 0.5 * scale, 0.3 * scale
    pole_w, pole_len = 0.1 * scale, 2 * pole_length * scale
    cart_x = state[0] * scale + canvas / 2
    draw.line([(0, track_y), (canvas, track_y)], fill=(0, 0, 0), width=max(1, _SUPERSAMPLE))
    draw.rectangle(
        [cart_x - cart_w / 2, track_y - cart_h / 2, cart_x + cart_w / 2, track_y + cart_h / 2], fill=(0, 0, 0)
    )
    axle_y = track_y - cart_h / 4
    theta = float(state[2])
    # Pole as a rotated rectangle; theta > 0 leans right, as in Gymnasium.
    corners = [(-pole_w / 2, 0.0), (-pole_w / 2, pole_len), (pole_w / 2, pole_len), (pole_w / 2, 0.0)]
    polygon = [
        (
            cart_x + cx * math.cos(theta) + cy * math.sin(theta),
            axle_y + cx * math.sin(theta) - cy * math.cos(theta),
        )
        for cx, cy in corners
    ]
    draw.polygon(polygon, fill=(202, 152, 101))
    r = pole_w / 2
    draw.ellipse([cart_x - r, axle_y - r, cart_x + r, axle_y + r], fill=(129, 132, 203))
    return _finish(image, size)


MOUNTAIN_MIN_X, MOUNTAIN_MAX_X = -1.2, 0.6


def mountain_height(x: float) -> float:
    """The MountainCar track: y = 0.45 sin(3x) + 0.55."""
    return float(np.sin(3 * x) * 0.45 + 0.55)


def render_mountaincar(position: float, size: int, goal_position: float = 0.45) -> np.ndarray:
    """Draw MountainCar (Gymnasium's flat look) with the car at ``position``."""
    canvas = size * _SUPERSAMPLE
    image = Image.new("RGB", (canvas, canvas), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    scale = canvas / (MOUNTAIN_MAX_X - MOUNTAIN_MIN_X)
    base = canvas * 0.82  # y pixel of height 0

    def to_px(x: float, y: float) -> tuple[float, float]:
        return (x - MOUNTAIN_MIN_X) * scale, base - y * scale

    xs = np.linspace(MOUNTAIN_MIN_X, MOUNTAIN_MAX_X, 200)
    draw.line([to_px(x, mountain_height(x)) for x in xs], fill=(0, 0, 0), width=2 * _SUPERSAMPLE)
    # Flag at the goal.
    fx, fy = to_px(goal_position, mountain_height(goal_position))
    pole_h = 0.17 * scale
    draw.line([(fx, fy), (fx, fy - pole_h)], fill=(0, 0, 0), width=_SUPERSAMPLE)
    draw.polygon(
        [
            (fx, fy - pole_h),
            (fx, fy - pole_h + 0.045 * scale),
            (fx + 0.11 * scale, fy - pole_h + 0.022 * scale),
        ],
        fill=(204, 204, 0),
    )
    # Car: a body tilted along the slope, with two wheels.
    angle = math.atan(math.cos(3 * position) * 0.45 * 3)
    car_w, car_h, clearance = 0.12 * scale, 0.06 * scale, 0.03 * scale
    cx, cy = to_px(position, mountain_height(position))
    cos_a, sin_a = math.cos(angle), math.sin(angle)

    def rotate(dx: float, dy: float) -> tuple[float, float]:
        # dy measured upward from the track surface.
        return cx + dx * cos_a - dy * sin_a, cy - (dx * sin_a + dy * cos_a)

    body = [
        rotate(-car_w / 2, clearance),
        rotate(-car_w / 2, clearance + car_h),
        rotate(car_w / 2, clearance + car_h),
        rotate(car_w / 2, clearance),
    ]
    draw.polygon(body, fill=(0, 0, 0))
    wheel_r = clearance * 0.9
    for dx in (-car_w / 4, car_w / 4):
        wx, wy = rotate(dx, clearance)
        draw.ellipse([wx - wheel_r, wy - wheel_r, wx + wheel_r, wy + wheel_r], fill=(128, 128, 128))
    return _finish(image, size)


class CartPoleOptions(EnvOptions):
    """Options of ``cartpole``."""

    terminate_on_fall: bool = False
    """End the episode when the pole falls (Gymnasium's CartPole-v1 rule). Off (the paper's authors): the
    episode goes on to its time limit, the pole angle wrapped into [-pi, pi] and the cart held inside the
    track after every step, so an early end cannot act as a survival bonus for a reward above 0."""


class MountainCarOptions(EnvOptions):
    """Options of ``mountaincar``."""

    terminate_at_goal: bool = False
    """End the episode at the flag. Off: a dense reward that peaks at the goal should be collected there."""
    clip_at_goal: bool = True
    """Once the car has reached the flag, keep it from driving past (position at most 0.45), as the paper's
    authors did; the episode goes on."""
    textured: bool = False
    """Draw the realistic look (sky, grassy hill, red car) instead of Gymnasium's flat one."""


class _StateVector:
    """:class:`~vlmrm.envs.spec.StatefulEnv` for a classic-control env whose state is ``self.state``."""

    state: Any
    STATE_SIZE: int

    def get_sim_state(self) -> SimState:
        return {"state": np.array(self.state, dtype=np.float64)}

    def set_sim_state(self, state: Mapping[str, Any]) -> None:
        values = np.asarray(state["state"], dtype=np.float64).ravel()
        if values.shape != (self.STATE_SIZE,):
            raise ValueError(f"expected a state of {self.STATE_SIZE} numbers, got shape {values.shape}")
        self.state = values


class SquareCartPole(_StateVector, CartPoleEnv):
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
        x, x_dot, theta, theta_dot = np.asarray(self.state, dtype=np.float64)
        theta = (theta + math.pi) % (2 * math.pi) - math.pi
        x = float(np.clip(x, -self.x_threshold, self.x_threshold))
        self.state = np.array([x, x_dot, theta, theta_dot], dtype=np.float64)
        self.steps_beyond_terminated = None  # the episode goes on: not an ended one stepped again
        return np.array(self.state, dtype=np.float32), float(not fell), False, bool(truncated), info

    def render(self) -> np.ndarray:
        assert self.state is not None, "call reset() before render()"
        return render_cartpole(np.asarray(self.state), self.render_size, self.x_threshold, self.length)


class SquareMountainCarContinuous(_StateVector, Continuous_MountainCarEnv):
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


def make_cartpole(render_size: int, episode_length: int, options: CartPoleOptions) -> gym.Env:
    return TimeLimit(SquareCartPole(render_size, options), max_episode_steps=episode_length)


def make_mountaincar(render_size: int, episode_length: int, options: MountainCarOptions) -> gym.Env:
    return TimeLimit(SquareMountainCarContinuous(render_size, options), max_episode_steps=episode_length)


def cartpole_sweep(options: CartPoleOptions, points: int, max_angle: float = math.pi / 2) -> StateSweep:
    """The pole angle from ``-max_angle`` (leaning left) to ``+max_angle``, cart centred; goal: upright."""
    values = np.linspace(-max_angle, max_angle, points)
    return StateSweep("pole angle (rad)", values, 0.0, [{"state": [0.0, 0.0, theta, 0.0]} for theta in values])


def mountaincar_sweep(options: MountainCarOptions, points: int) -> StateSweep:
    """The car position over the whole track, at rest, in both looks; goal: the flag at 0.45."""
    values = np.linspace(MOUNTAIN_MIN_X, MOUNTAIN_MAX_X, points)
    looks = {"flat": {"textured": False}, "textured": {"textured": True}}
    return StateSweep("car position", values, 0.45, [{"state": [x, 0.0]} for x in values], looks)


CARTPOLE_SPEC = EnvSpec(
    name="cartpole",
    description="CartPole-v1 (discrete actions), square renderer",
    entry_point="vlmrm.envs.classic_control:make_cartpole",
    options=CartPoleOptions,
    default_episode_length=200,
    action_kind="discrete",
    prompts=lambda options: Prompts(("pole vertically upright on top of the cart",), ("pole and cart",)),
    sweep=cartpole_sweep,
    episode_success=all_steps_succeed,
)

MOUNTAINCAR_SPEC = EnvSpec(
    name="mountaincar",
    description="MountainCarContinuous-v0, square renderer",
    entry_point="vlmrm.envs.classic_control:make_mountaincar",
    options=MountainCarOptions,
    default_episode_length=200,
    action_kind="continuous",
    prompts=lambda options: Prompts(
        ("a car at the peak of the mountain, next to the yellow flag",), ("a car in the mountain",)
    ),
    sweep=mountaincar_sweep,
    episode_success=any_step_succeeds,
)
