"""CartPole and MountainCar that render square frames at any size.

Gymnasium draws these scenes with fixed pixel sizes on a 600x400 canvas; a CLIP model then
sees them resized and centre-cropped, which cuts off the track ends. Here the scene is drawn
directly at ``render_size`` x ``render_size`` with every length scaled to the frame, so the
whole track is visible and no resize is needed. Drawing is 2x supersampled for anti-aliasing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Literal, NamedTuple

import gymnasium as gym
import numpy as np
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from gymnasium.envs.classic_control.continuous_mountain_car import Continuous_MountainCarEnv
from gymnasium.wrappers import TimeLimit
from PIL import Image, ImageDraw
from pydantic import Field

from vlmrm.envs.mountaincar_textured import render_mountaincar_textured
from vlmrm.envs.spec import EnvOptions, EnvSpec, Prompts, SimState, StateSweep, all_steps_succeed, any_step_succeeds
from vlmrm.errors import ConfigError

_SUPERSAMPLE = 2
"""Frames are drawn at twice their size and box-filtered down (anti-aliasing)."""

CART_RGB = (0, 0, 0)
POLE_RGB = (202, 152, 101)
AXLE_RGB = (129, 132, 203)
CAR_RGB = (0, 0, 0)
WHEEL_RGB = (128, 128, 128)


def _finish(image: Image.Image, size: int) -> np.ndarray:
    return np.asarray(image.resize((size, size), Image.Resampling.BOX), dtype=np.uint8)


# -- geometry: where each shape lies on the supersampled canvas, for one state or a batch ------------------
#
# One truth for both renderers: the PIL renderer below and the batched torch renderer
# (:mod:`vlmrm.envs.vector.render`) draw the shapes these functions place, from the same float64
# arithmetic, on the same static background, so their frames agree pixel for pixel.


Number = Any
"""A float, or an array of them (one per state): the geometry below is written once for both."""
Point = tuple[Number, Number]


class _NumpyTrig:
    """``math``'s names for numpy's functions, for arrays."""

    cos, sin, atan = np.cos, np.sin, np.arctan


def _trig(value: Number) -> Any:
    """``math`` for one float (a frame costs no ufunc overhead), numpy for arrays: the same IEEE functions."""
    return math if isinstance(value, float) else _NumpyTrig


class CartPoleShapes(NamedTuple):
    """CartPole's moving shapes on a canvas, for one state (floats) or a batch (arrays).

    Attributes:
        cart: the cart's box ``(x0, y0, x1, y1)``.
        pole: the pole's four corners (a rotated rectangle), ``(x, y)`` each.
        axle: the axle's bounding box ``(x0, y0, x1, y1)`` (a circle).
    """

    cart: tuple[Number, Number, Number, Number]
    pole: tuple[Point, Point, Point, Point]
    axle: tuple[Number, Number, Number, Number]


def cartpole_shapes(
    x: Number, theta: Number, canvas: int, x_threshold: float = 2.4, pole_length: float = 0.5
) -> CartPoleShapes:
    """Place the cart at position ``x`` with the pole at angle ``theta`` (``theta > 0`` leans right, as in
    Gymnasium) on a ``canvas`` x ``canvas`` picture whose width holds the whole track. Floats or arrays
    (the same float64 arithmetic either way)."""
    scale = canvas / (2 * x_threshold)  # pixels per metre: the whole track fits the frame
    track_y = canvas * 0.62
    cart_w, cart_h = 0.5 * scale, 0.3 * scale
    pole_w, pole_len = 0.1 * scale, 2 * pole_length * scale
    cart_x = x * scale + canvas / 2
    cart = (cart_x - cart_w / 2, track_y - cart_h / 2, cart_x + cart_w / 2, track_y + cart_h / 2)
    axle_y = track_y - cart_h / 4
    trig = _trig(theta)
    cos, sin = trig.cos(theta), trig.sin(theta)
    corners = [(-pole_w / 2, 0.0), (-pole_w / 2, pole_len), (pole_w / 2, pole_len), (pole_w / 2, 0.0)]
    pole = tuple((cart_x + cx * cos + cy * sin, axle_y + cx * sin - cy * cos) for cx, cy in corners)
    r = pole_w / 2
    return CartPoleShapes(cart, pole, (cart_x - r, axle_y - r, cart_x + r, axle_y + r))  # type: ignore[arg-type]


def _cartpole_canvas(canvas: int) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    """A new CartPole canvas with its static part (white, the track line) drawn: drawing it is as fast as
    copying it."""
    image = Image.new("RGB", (canvas, canvas), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    track_y = canvas * 0.62
    draw.line([(0, track_y), (canvas, track_y)], fill=(0, 0, 0), width=max(1, _SUPERSAMPLE))
    return image, draw


@lru_cache(maxsize=8)
def cartpole_background(canvas: int) -> np.ndarray:
    """The static part of a CartPole canvas: ``(canvas, canvas, 3)`` uint8, read-only."""
    background = np.asarray(_cartpole_canvas(canvas)[0], dtype=np.uint8)
    background.flags.writeable = False
    return background


def render_cartpole(state: np.ndarray, size: int, x_threshold: float = 2.4, pole_length: float = 0.5) -> np.ndarray:
    """Draw a CartPole state ``(x, x_dot, theta, theta_dot)`` as a ``(size, size, 3)`` frame."""
    canvas = size * _SUPERSAMPLE
    image, draw = _cartpole_canvas(canvas)
    shapes = cartpole_shapes(float(state[0]), float(state[2]), canvas, x_threshold, pole_length)
    draw.rectangle(shapes.cart, fill=CART_RGB)
    draw.polygon(shapes.pole, fill=POLE_RGB)
    draw.ellipse(shapes.axle, fill=AXLE_RGB)
    return _finish(image, size)


MOUNTAIN_MIN_X, MOUNTAIN_MAX_X = -1.2, 0.6
_MOUNTAIN_BASE = 0.82  # fraction of the canvas height at which the track height 0 is drawn


def mountain_height(x: float) -> float:
    """The MountainCar track: y = 0.45 sin(3x) + 0.55."""
    return float(np.sin(3 * x) * 0.45 + 0.55)


class MountainCarShapes(NamedTuple):
    """The flat look's car on a canvas, for one position (floats) or a batch (arrays).

    Attributes:
        body: the body's four corners (a rectangle tilted along the slope), ``(x, y)`` each.
        wheels: the bounding boxes ``(x0, y0, x1, y1)`` of the two wheels (circles).
    """

    body: tuple[Point, Point, Point, Point]
    wheels: tuple[tuple[Number, Number, Number, Number], tuple[Number, Number, Number, Number]]


def mountaincar_shapes(position: Number, canvas: int) -> MountainCarShapes:
    """Place the flat look's car at track ``position`` (a float or an array) on a ``canvas`` x ``canvas`` picture."""
    scale = canvas / (MOUNTAIN_MAX_X - MOUNTAIN_MIN_X)
    base = canvas * _MOUNTAIN_BASE  # y pixel of height 0
    trig = _trig(position)
    angle = trig.atan(trig.cos(3 * position) * 0.45 * 3)
    car_w, car_h, clearance = 0.12 * scale, 0.06 * scale, 0.03 * scale
    cx = (position - MOUNTAIN_MIN_X) * scale
    cy = base - (trig.sin(3 * position) * 0.45 + 0.55) * scale
    cos_a, sin_a = trig.cos(angle), trig.sin(angle)

    def rotate(dx: float, dy: float) -> Point:
        # dy measured upward from the track surface.
        return cx + dx * cos_a - dy * sin_a, cy - (dx * sin_a + dy * cos_a)

    body = (
        rotate(-car_w / 2, clearance),
        rotate(-car_w / 2, clearance + car_h),
        rotate(car_w / 2, clearance + car_h),
        rotate(car_w / 2, clearance),
    )
    wheel_r = clearance * 0.9
    centres = [rotate(dx, clearance) for dx in (-car_w / 4, car_w / 4)]
    wheels = tuple((x - wheel_r, y - wheel_r, x + wheel_r, y + wheel_r) for x, y in centres)
    return MountainCarShapes(body, wheels)  # type: ignore[arg-type]


@lru_cache(maxsize=8)
def _mountaincar_background_image(canvas: int, goal_position: float = 0.45) -> Image.Image:
    image = Image.new("RGB", (canvas, canvas), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    scale = canvas / (MOUNTAIN_MAX_X - MOUNTAIN_MIN_X)
    base = canvas * _MOUNTAIN_BASE

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
    return image


def mountaincar_background(canvas: int, goal_position: float = 0.45) -> np.ndarray:
    """The static part of a flat MountainCar canvas (the track, the flag): ``(canvas, canvas, 3)`` uint8."""
    return np.asarray(_mountaincar_background_image(canvas, float(goal_position)), dtype=np.uint8)


def render_mountaincar(position: float, size: int, goal_position: float = 0.45) -> np.ndarray:
    """Draw MountainCar (Gymnasium's flat look) with the car at ``position``."""
    canvas = size * _SUPERSAMPLE
    image = _mountaincar_background_image(canvas, float(goal_position)).copy()
    draw = ImageDraw.Draw(image)
    # Car: a body tilted along the slope, with two wheels.
    shapes = mountaincar_shapes(float(position), canvas)
    draw.polygon(shapes.body, fill=CAR_RGB)
    for box in shapes.wheels:
        draw.ellipse(box, fill=WHEEL_RGB)
    return _finish(image, size)


ClassicRenderer = Literal["auto", "pil", "torch"]
RENDERER_HELP = (
    "How a vectorized env (env.vectorized: true) draws its frames: pil (Pillow, on the host), torch (on the "
    "reward model's device), auto (Pillow on the CPU, torch on a GPU). The same pictures either way; a single "
    "env always uses Pillow."
)


class CartPoleOptions(EnvOptions):
    """Options of ``cartpole``."""

    terminate_on_fall: bool = False
    """End the episode when the pole falls (Gymnasium's CartPole-v1 rule). Off (the paper's authors): the
    episode goes on to its time limit, the pole angle wrapped into [-pi, pi] and the cart held inside the
    track after every step, so an early end cannot act as a survival bonus for a reward above 0."""
    renderer: ClassicRenderer = Field(default="auto", description=RENDERER_HELP)


class MountainCarOptions(EnvOptions):
    """Options of ``mountaincar``."""

    terminate_at_goal: bool = False
    """End the episode at the flag. Off: a dense reward that peaks at the goal should be collected there."""
    clip_at_goal: bool = True
    """Once the car has reached the flag, keep it from driving past (position at most 0.45), as the paper's
    authors did; the episode goes on."""
    textured: bool = False
    """Draw the realistic look (sky, grassy hill, red car) instead of Gymnasium's flat one."""
    renderer: ClassicRenderer = Field(default="auto", description=RENDERER_HELP)


def keep_on_track(state: np.ndarray, x_threshold: float) -> np.ndarray:
    """CartPole states ``(..., 4)`` after a step that goes on past a fall: the pole angle wrapped into
    [-pi, pi], the cart held inside the track (a new array; the vectorised CartPole applies the same rule)."""
    state = np.array(state, dtype=np.float64)
    state[..., 2] = (state[..., 2] + math.pi) % (2 * math.pi) - math.pi
    state[..., 0] = np.clip(state[..., 0], -x_threshold, x_threshold)
    return state


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
        self.state = keep_on_track(np.asarray(self.state, dtype=np.float64), self.x_threshold)
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


def _single_env_renderer(options: CartPoleOptions | MountainCarOptions) -> None:
    if options.renderer == "torch":
        raise ConfigError(
            "renderer: torch draws a batch of frames on the reward model's device, which needs the vectorized env "
            "(env.vectorized: true); a single env draws with Pillow (renderer: auto or pil)."
        )


def make_cartpole(render_size: int, episode_length: int, options: CartPoleOptions) -> gym.Env:
    _single_env_renderer(options)
    return TimeLimit(SquareCartPole(render_size, options), max_episode_steps=episode_length)


def make_mountaincar(render_size: int, episode_length: int, options: MountainCarOptions) -> gym.Env:
    _single_env_renderer(options)
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
    vector_entry_point="vlmrm.envs.vector.classic_control:make_cartpole_vector",
    gym_id="CartPole-v1",
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
    vector_entry_point="vlmrm.envs.vector.classic_control:make_mountaincar_vector",
    gym_id="MountainCarContinuous-v0",
)
