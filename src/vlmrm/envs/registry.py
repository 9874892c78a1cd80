"""A registry of environments that render square frames for a reward model.

Every environment made here renders ``rgb_array`` frames of shape ``(render_size, render_size, 3)``
(so no resize is needed when ``render_size`` is the model's input size) and ends episodes by a
time limit as *truncation*, so value bootstrapping stays correct.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from vlmrm.errors import ConfigError

EnvFactory = Callable[..., gym.Env]


def any_step_succeeds(step_success: Sequence[bool]) -> bool:
    """An episode succeeds if the success flag was set at any step (e.g. reaching a goal)."""
    return any(step_success)


def half_of_steps_succeed(step_success: Sequence[bool]) -> bool:
    """An episode succeeds if the pose is held for at least half of its steps (the paper's rule)."""
    return len(step_success) > 0 and 2 * sum(bool(s) for s in step_success) >= len(step_success)


@dataclass(frozen=True)
class EnvSpec:
    """How to build one environment.

    Attributes:
        name: the name used in configs and on the command line.
        factory: ``factory(render_size=..., episode_length=..., **options) -> gym.Env``.
        default_episode_length: episode length when the config gives none.
        description: one line for ``--help`` and error messages.
        uses_mujoco: whether an OpenGL backend must be chosen before the env is built.
        default_options: option defaults a preset may override.
        episode_success: turns the per-step ``info["is_success"]`` flags of one episode into
            the episode's success; ``None`` when the env reports no success flag.
    """

    name: str
    factory: EnvFactory
    default_episode_length: int
    description: str
    uses_mujoco: bool = False
    default_options: dict[str, Any] = field(default_factory=dict)
    episode_success: Callable[[Sequence[bool]], bool] | None = None

    def option_names(self) -> list[str]:
        parameters = inspect.signature(self.factory).parameters
        return [n for n in parameters if n not in ("render_size", "episode_length")]


ENV_REGISTRY: dict[str, EnvSpec] = {}


def register_env(spec: EnvSpec) -> EnvSpec:
    ENV_REGISTRY[spec.name] = spec
    return spec


# Where each built-in environment is registered. Modules are imported on first lookup of one of
# their names, so that importing vlmrm.envs, or making a CartPole, does not load MuJoCo (whose
# import also probes for a working GL backend).
BUILTIN_ENV_MODULES: dict[str, str] = {
    "cartpole": "vlmrm.envs.classic_control",
    "mountaincar": "vlmrm.envs.classic_control",
    "humanoid": "vlmrm.envs.humanoid",
}


def _ensure_builtin_envs_registered(name: str | None = None) -> None:
    """Import the module that registers ``name`` (all built-in modules when ``name`` is None or unknown)."""
    module = BUILTIN_ENV_MODULES.get(name) if name is not None else None
    for each in [module] if module else dict.fromkeys(BUILTIN_ENV_MODULES.values()):
        importlib.import_module(each)


def get_env_spec(name: str) -> EnvSpec:
    key = name.lower()
    if key not in ENV_REGISTRY:
        _ensure_builtin_envs_registered(key)
    if key not in ENV_REGISTRY:
        _ensure_builtin_envs_registered()
        known = sorted(ENV_REGISTRY)
        close = difflib.get_close_matches(key, known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"Unknown environment {name!r}.{hint} Known environments: {', '.join(known)}.")
    return ENV_REGISTRY[key]


def available_envs() -> list[str]:
    _ensure_builtin_envs_registered()
    return sorted(ENV_REGISTRY)


def make_env(
    name: str,
    render_size: int = 224,
    episode_length: int | None = None,
    **options: Any,
) -> gym.Env:
    """Build the environment ``name`` rendering ``render_size`` square frames.

    Unknown ``options`` are rejected with the closest valid name.
    """
    spec = get_env_spec(name)
    if render_size <= 0:
        raise ConfigError(f"render_size must be a positive number of pixels, got {render_size}.")
    valid = spec.option_names()
    for key in options:
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"Unknown option {key!r} for environment {spec.name!r}.{hint} "
                f"Valid options: {', '.join(valid) or '(none)'}."
            )
    if spec.uses_mujoco:
        from vlmrm.envs.gl import ensure_gl_backend

        ensure_gl_backend()
    length = spec.default_episode_length if episode_length is None else episode_length
    if length <= 0:
        raise ConfigError(f"episode_length must be positive, got {length}.")
    merged = {**spec.default_options, **options}
    return spec.factory(render_size=render_size, episode_length=length, **merged)
