"""Build vector envs whose every env renders frames for the reward model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import gymnasium as gym
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

from vlmrm.envs import make_env
from vlmrm.rl.wrappers import RenderFrameInInfo


def env_builder(
    name: str, render_size: int, episode_length: int | None, options: dict[str, Any], seed: int | None = None
) -> Callable[[], gym.Env]:
    """A picklable thunk that builds one monitored, frame-rendering env (for subprocess workers too)."""

    def build() -> gym.Env:
        env = make_env(name, render_size=render_size, episode_length=episode_length, **options)
        env = RenderFrameInInfo(Monitor(env))
        if seed is not None:
            env.action_space.seed(seed)
        return env

    return build


def make_vec_env(
    name: str,
    n_envs: int,
    render_size: int,
    episode_length: int | None = None,
    options: dict[str, Any] | None = None,
    seed: int = 0,
    kind: Literal["dummy", "subproc"] = "dummy",
) -> VecEnv:
    """``n_envs`` copies of env ``name``; ``subproc`` steps and renders them in worker processes."""
    options = dict(options or {})
    if kind == "subproc" and n_envs > 1:
        # Build one env here first so that configuration errors surface in this process, clearly.
        make_env(name, render_size=render_size, episode_length=episode_length, **options).close()
    builders = [env_builder(name, render_size, episode_length, options, seed + i) for i in range(n_envs)]
    venv: VecEnv = (
        SubprocVecEnv(builders, start_method="spawn") if kind == "subproc" and n_envs > 1 else DummyVecEnv(builders)
    )
    venv.seed(seed)
    return venv
