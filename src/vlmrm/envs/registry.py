"""The registry of environments that render square frames for a reward model.

Every environment made here renders ``rgb_array`` frames of shape ``(render_size, render_size, 3)``
(so no resize is needed when ``render_size`` is the model's input size) and ends episodes by a
time limit as *truncation*, so value bootstrapping stays correct.

Specs are plain data (:mod:`vlmrm.envs.spec`); the module that builds an env is imported only when
an env is made, so looking up the Humanoid's options or prompts does not load MuJoCo.

>>> spec = get_env_spec("cartpole")
>>> spec.action_kind, spec.default_episode_length
('discrete', 200)
>>> spec.default_prompts().target
('pole vertically upright on top of the cart',)
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
from pydantic import ValidationError

from vlmrm.envs import gym_ids  # noqa: F401  # registers vlmrm/CartPole-v0 etc. with Gymnasium
from vlmrm.envs.cartpole.spec import CARTPOLE_SPEC
from vlmrm.envs.gl import ensure_gl_backend
from vlmrm.envs.gym_env import PREFIX as GYM_PREFIX
from vlmrm.envs.gym_env import gym_spec, gymnasium_id
from vlmrm.envs.humanoid.options import HUMANOID_SPEC
from vlmrm.envs.mountaincar.spec import MOUNTAINCAR_SPEC
from vlmrm.envs.spec import EnvOptions, EnvSpec
from vlmrm.errors import ConfigError
from vlmrm.validation import closest, problem_lines

ENV_REGISTRY: dict[str, EnvSpec] = {}


def register_env(spec: EnvSpec) -> EnvSpec:
    """Add ``spec`` to the registry (replacing one of the same name)."""
    ENV_REGISTRY[spec.name] = spec
    return spec


for _builtin in (CARTPOLE_SPEC, MOUNTAINCAR_SPEC, HUMANOID_SPEC):
    register_env(_builtin)


def get_env_spec(name: str) -> EnvSpec:
    """The spec of env ``name`` (case-insensitive); a :class:`ConfigError` naming the closest one otherwise.

    ``gym:<id>`` is any Gymnasium id that renders frames (:mod:`vlmrm.envs.gym_env`), its spec made on demand.
    """
    if name.startswith(GYM_PREFIX):
        return gym_spec(name)
    key = name.lower()
    if key not in ENV_REGISTRY:
        known = sorted(ENV_REGISTRY)
        hint = f" Did you mean 'gym:{name}'?" if name in gym.registry else closest(key, known)
        raise ConfigError(
            f"Unknown environment {name!r}.{hint} Known environments: {', '.join(known)}; "
            "to train: gym:<id>, any Gymnasium id that renders rgb_array frames."
        )
    return ENV_REGISTRY[key]


def available_envs() -> list[str]:
    """The registered env names, sorted."""
    return sorted(ENV_REGISTRY)


def vectorized_envs() -> list[str]:
    """The registered envs that have a batched version (``env.vectorized: true``), sorted.

    >>> vectorized_envs()
    ['cartpole', 'humanoid', 'mountaincar']
    """
    return sorted(name for name, spec in ENV_REGISTRY.items() if spec.vector_entry_point is not None)


def parse_options(
    spec: EnvSpec, options: Mapping[str, Any] | EnvOptions | None, prefix: str = "env.options."
) -> EnvOptions:
    """Validate ``options`` against the env's options model; a :class:`ConfigError` lists every problem.

    Each problem names its option after ``prefix`` (a config's ``env.options.``; nothing for :func:`make_env`).
    """
    if isinstance(options, spec.options):
        return options
    try:
        return spec.options.model_validate(dict(options or {}))
    except ValidationError as exc:
        lines = problem_lines(exc, spec.options, prefix=prefix)
        lines = [f"Invalid options for environment {spec.name!r}:", *(f"  {line}" for line in lines)]
        raise ConfigError("\n".join(lines)) from None


def load_entry_point(entry_point: str) -> Any:
    """The object named by ``"module:attribute"``."""
    module, _, attribute = entry_point.partition(":")
    return getattr(importlib.import_module(module), attribute)


def _checked(spec: EnvSpec, render_size: int, episode_length: int | None) -> int:
    if render_size <= 0:
        raise ConfigError(f"render_size must be a positive number of pixels, got {render_size}.")
    length = spec.default_episode_length if episode_length is None else episode_length
    if episode_length is None and length <= 0:
        raise ConfigError(f"Environment {spec.name!r} has no default episode length; set env.episode_length.")
    if length <= 0:
        raise ConfigError(f"episode_length must be positive, got {length}.")
    return length


def make_env(
    name: str,
    render_size: int = 224,
    episode_length: int | None = None,
    **options: Any,
) -> gym.Env:
    """Build the environment ``name`` rendering ``render_size`` square frames.

    ``options`` are the env's options (see its spec); unknown ones are rejected with the closest valid name.
    """
    spec = get_env_spec(name)
    parsed = parse_options(spec, options, prefix="")
    length = _checked(spec, render_size, episode_length)
    if spec.uses_mujoco:
        ensure_gl_backend()  # before the entry point imports MuJoCo
    factory = load_entry_point(spec.entry_point)
    if spec.name.startswith(GYM_PREFIX):
        factory = functools.partial(factory, gymnasium_id(spec.name))
    env: gym.Env = factory(render_size=render_size, episode_length=length, options=parsed)
    return env


def make_vector_env(
    name: str,
    n_envs: int,
    render_size: int = 224,
    episode_length: int | None = None,
    device: Any = "cpu",
    **options: Any,
) -> Any:
    """``n_envs`` copies of env ``name`` as one batched stable-baselines3 vector env
    (:class:`~vlmrm.envs.vector.vec_env.BatchedVecEnv`): one call steps them all, one call draws
    all their frames as a tensor on ``device`` (the reward model's). Not seeded: call ``seed()``.

    A :class:`ConfigError` for an env without a batched version (see :func:`vectorized_envs`).
    """
    spec = get_env_spec(name)
    if spec.vector_entry_point is None:
        raise ConfigError(
            f"Environment {spec.name!r} has no batched (vectorized) version; environments with one: "
            f"{', '.join(vectorized_envs())}."
        )
    parsed = parse_options(spec, options, prefix="")
    length = _checked(spec, render_size, episode_length)
    if isinstance(n_envs, bool) or not isinstance(n_envs, int) or n_envs <= 0:
        raise ConfigError(f"n_envs must be a positive whole number, got {n_envs!r}.")
    if spec.uses_mujoco:
        ensure_gl_backend()
    factory = load_entry_point(spec.vector_entry_point)
    return factory(n_envs=n_envs, render_size=render_size, episode_length=length, options=parsed, device=device)


__all__ = [
    "available_envs",
    "get_env_spec",
    "make_env",
    "make_vector_env",
    "register_env",
    "vectorized_envs",
]
