"""Reading, setting and drawing simulator states through :class:`~vlmrm.envs.spec.StatefulEnv`.

>>> frames = render_states("cartpole", [{"state": [0.0, 0.0, 0.1, 0.0]}], size=32)
>>> frames.shape, frames.dtype
((1, 32, 32, 3), dtype('uint8'))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from vlmrm.envs.registry import make_env
from vlmrm.envs.spec import SimState, StatefulEnv
from vlmrm.errors import ConfigError


def stateful(env: gym.Env) -> StatefulEnv:
    """The unwrapped env as a :class:`StatefulEnv`, or a :class:`ConfigError` saying it is not one."""
    inner = env.unwrapped
    if not isinstance(inner, StatefulEnv):
        raise ConfigError(
            f"{type(inner).__name__} cannot read or set its simulator state (it does not implement "
            "get_sim_state/set_sim_state, vlmrm.envs.spec.StatefulEnv)."
        )
    return inner


def sim_state(env: gym.Env) -> SimState:
    """The simulator state that reproduces the env's current frame."""
    return stateful(env).get_sim_state()


def render_states(
    env_name: str, states: Sequence[Mapping[str, Any]], size: int, options: Mapping[str, Any] | None = None
) -> np.ndarray:
    """Frames ``(N, size, size, 3)`` uint8 of ``states`` (see :class:`~vlmrm.envs.spec.StateSweep`)."""
    env = make_env(env_name, render_size=size, **dict(options or {}))
    try:
        env.reset(seed=0)
        target = stateful(env)
        frames = []
        for state in states:
            target.set_sim_state(state)
            frames.append(np.asarray(env.render()))
        return np.stack(frames).astype(np.uint8, copy=False)
    finally:
        env.close()
