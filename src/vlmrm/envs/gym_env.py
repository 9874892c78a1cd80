"""Any registered Gymnasium environment as a vlmrm env: ``env.name: gym:<id>``.

``gym:Pendulum-v1``, ``gym:Hopper-v5``, ``gym:LunarLander-v3`` (Box2D) and any other id that
Gymnasium knows and that renders ``rgb_array`` frames. Its :class:`~vlmrm.envs.spec.EnvSpec` is made
on demand (:func:`gym_spec`, from the id's own Gymnasium spec and one probe of the env):

- **Frames** are made square for the reward model by :class:`SquareFrames`: ``square: pad`` (the
  default) pads the short side by repeating the frame's edge pixels, so the whole scene stays in view
  (as vlmrm's own envs keep the whole track in view); ``square: crop`` keeps the centre square. The
  square is then resized to ``render_size``.
- **Episode length**: the id's ``max_episode_steps`` (e.g. 200 for Pendulum-v1, 1000 for
  LunarLander-v3) unless ``env.episode_length`` is set; an id without one needs ``env.episode_length``.
  Episodes end by the time limit as truncation, and by the env's own termination.
- **Prompts** have no default: a config must give ``reward.target_prompts``.
- **Success**: where the env reports ``info["is_success"]`` (Gymnasium-Robotics, for example), an
  episode succeeds when its last step does (stable-baselines3's rule); otherwise no success rate.
- **Options**: ``square`` and ``make_kwargs`` (keyword arguments for ``gym.make``, e.g.
  ``{g: 5.0}`` for Pendulum-v1). The action kind is read from the id with its default arguments, so
  ``make_kwargs`` that change it (LunarLander-v3's ``continuous``) are refused: register an id
  with them (``gym.register``) and name it ``gym:<module>:<id>``.
- **Your own ids**: ``gym:my_package:MyEnv-v0`` imports ``my_package`` first (Gymnasium's
  ``"module:id"`` form), so an id that package registers is known in subprocess workers too.

>>> spec = gym_spec("gym:Pendulum-v1")
>>> spec.action_kind, spec.default_episode_length, spec.episode_success is None
('continuous', 200, True)
>>> env = make_gym_env("Pendulum-v1", render_size=64, episode_length=5, options=GymOptions())
>>> _ = env.reset(seed=0)
>>> env.render().shape
(64, 64, 3)
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Sequence
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium.error import Error as GymnasiumError
from PIL import Image
from pydantic import Field

from vlmrm.envs.gl import ensure_gl_backend
from vlmrm.envs.spec import ActionKind, EnvOptions, EnvSpec, Prompts
from vlmrm.errors import ConfigError
from vlmrm.validation import closest

PREFIX = "gym:"
"""``env.name`` of a Gymnasium id starts with this."""


class GymOptions(EnvOptions):
    """Options of a ``gym:<id>`` env."""

    square: Literal["pad", "crop"] = Field(
        default="pad",
        description="How a frame becomes square: pad (repeat the edge pixels: the whole scene in view) or crop "
        "(the centre square).",
    )
    make_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Keyword arguments for gym.make, e.g. {g: 5.0} for Pendulum-v1; they may not change the "
        "action space's kind.",
    )


def square_frame(frame: np.ndarray, size: int, square: Literal["pad", "crop"] = "pad") -> np.ndarray:
    """An ``(H, W, 3)`` uint8 frame as a ``(size, size, 3)`` one: padded (edge pixels repeated) or centre-cropped
    to a square, then resized (Lanczos: anti-aliased when shrinking).

    >>> frame = np.zeros((4, 8, 3), dtype=np.uint8); frame[0] = 255
    >>> padded = square_frame(frame, 8)
    >>> padded.shape, int(padded[0, 0, 0]), int(padded[-1, 0, 0])
    ((8, 8, 3), 255, 0)
    >>> square_frame(frame, 4, "crop").shape
    (4, 4, 3)
    """
    frame = np.asarray(frame, dtype=np.uint8)[..., :3]
    height, width = frame.shape[:2]
    if height != width:
        if square == "pad":
            extra = abs(height - width)
            before, after = extra // 2, extra - extra // 2
            pad = ((before, after), (0, 0), (0, 0)) if height < width else ((0, 0), (before, after), (0, 0))
            frame = np.pad(frame, pad, mode="edge")
        else:
            side = min(height, width)
            top, left = (height - side) // 2, (width - side) // 2
            frame = frame[top : top + side, left : left + side]
    if frame.shape[0] == size:
        return np.ascontiguousarray(frame)
    resized = Image.fromarray(frame).resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(resized, dtype=np.uint8)


class SquareFrames(gym.Wrapper):
    """``render()`` returns the wrapped env's frame as a ``(size, size, 3)`` square (:func:`square_frame`)."""

    def __init__(self, env: gym.Env, size: int, square: Literal["pad", "crop"] = "pad"):
        super().__init__(env)
        self.size = size
        self.square = square

    def render(self) -> np.ndarray:
        frame = self.env.render()
        if not isinstance(frame, np.ndarray) or frame.ndim != 3:
            raise ConfigError(f"{self.env.spec.id if self.env.spec else self.env} rendered no rgb_array frame.")
        return square_frame(frame, self.size, self.square)


def last_step_succeeds(step_success: Sequence[bool]) -> bool:
    """An episode succeeds if its last step's ``info["is_success"]`` is set (stable-baselines3's EvalCallback)."""
    return len(step_success) > 0 and bool(step_success[-1])


def gymnasium_id(name: str) -> str:
    """The Gymnasium id of ``gym:<id>``."""
    return name[len(PREFIX) :] if name.startswith(PREFIX) else name


def _gymnasium_spec(env_id: str) -> gym.envs.registration.EnvSpec:
    module, _, bare = env_id.rpartition(":")
    if module:  # Gymnasium's "module:id": the module registers the id (in subprocess workers too)
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError(f"env.name 'gym:{env_id}': cannot import {module!r} ({exc}).") from None
    try:
        return gym.spec(bare)
    except GymnasiumError as exc:
        known = sorted(gym.registry)
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = "" if "Did you mean" in message else closest(env_id, known)
        raise ConfigError(
            f"env.name 'gym:{env_id}': Gymnasium does not know this id ({message}).{hint} "
            "Install the package that registers it, or check the spelling (ids are case-sensitive)."
        ) from None


def _uses_mujoco(spec: gym.envs.registration.EnvSpec) -> bool:
    entry = spec.entry_point if isinstance(spec.entry_point, str) else getattr(spec.entry_point, "__module__", "")
    return "mujoco" in str(entry)


def _make(env_id: str, render_mode: str | None, **kwargs: Any) -> gym.Env:
    try:
        return gym.make(env_id, render_mode=render_mode, **kwargs)
    except (GymnasiumError, ImportError, TypeError, ModuleNotFoundError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"env.name 'gym:{env_id}' cannot be made: {first}") from None


def _action_kind(env_id: str, space: gym.Space) -> ActionKind:
    if isinstance(space, gym.spaces.Discrete):
        return "discrete"
    if isinstance(space, gym.spaces.Box):
        return "continuous"
    raise ConfigError(
        f"env.name 'gym:{env_id}': its action space {space} is neither Discrete nor Box, which vlmrm's algorithms "
        "(sac, dqn, ppo) need."
    )


def _no_default_prompts(name: str) -> Any:
    def prompts(options: Any) -> Prompts:
        raise ConfigError(
            f"env.name {name!r} has no default prompts: set reward.target_prompts (a sentence describing the goal), "
            "and reward.baseline_prompts for alpha > 0."
        )

    return prompts


@functools.cache
def gym_spec(name: str) -> EnvSpec:
    """The :class:`EnvSpec` of ``gym:<id>``; a :class:`ConfigError` for an unknown id or one that cannot render.

    The env is made once (without rendering) to read its action space and whether it reports
    ``info["is_success"]`` after a step.
    """
    env_id = gymnasium_id(name)
    registered = _gymnasium_spec(env_id)
    uses_mujoco = _uses_mujoco(registered)
    if uses_mujoco:
        ensure_gl_backend()  # before the probe imports MuJoCo
    env = _make(env_id, render_mode=None)
    try:
        modes = env.metadata.get("render_modes", [])
        if "rgb_array" not in modes:
            raise ConfigError(
                f"env.name {name!r} cannot render rgb_array frames (its render modes: {', '.join(modes) or 'none'}); "
                "a VLM reward needs frames."
            )
        action_kind = _action_kind(env_id, env.action_space)
        env.reset(seed=0)
        info = env.step(env.action_space.sample())[-1]
    finally:
        env.close()
    return EnvSpec(
        name=f"{PREFIX}{env_id}",
        description=f"Gymnasium's {env_id}, frames made square",
        entry_point="vlmrm.envs.gym_env:make_gym_env",
        options=GymOptions,
        default_episode_length=registered.max_episode_steps or 0,
        action_kind=action_kind,
        prompts=_no_default_prompts(f"{PREFIX}{env_id}"),
        episode_success=last_step_succeeds if "is_success" in info else None,
        uses_mujoco=uses_mujoco,
    )


def make_gym_env(env_id: str, render_size: int, episode_length: int, options: GymOptions) -> gym.Env:
    """``gym.make(env_id)`` rendering ``rgb_array`` squares of ``render_size``, truncated at ``episode_length``.

    The entry point of every ``gym:<id>`` spec; the registry passes the id first.
    """
    env = _make(env_id, render_mode="rgb_array", max_episode_steps=episode_length, **options.make_kwargs)
    expected = gym_spec(f"{PREFIX}{env_id}").action_kind
    if _action_kind(env_id, env.action_space) != expected:
        env.close()
        raise ConfigError(
            f"env.options.make_kwargs {options.make_kwargs} give gym:{env_id} {env.action_space} actions, not the "
            f"{expected} ones of its defaults, which the algorithm is chosen for; register an id with these "
            "arguments (gym.register) and name it gym:<module>:<id>."
        )
    return SquareFrames(env, render_size, options.square)
