"""What an env worker process runs: build one frame-rendering env, and end with its parent.

Apart from :mod:`vlmrm.rl.vec_env_factory` so that a worker process imports Gymnasium and vlmrm's
envs only, not stable-baselines3 and torch: with the paper's 32 subprocess envs, those imports cost
seconds of CPU and hundreds of MB per worker. The episode statistics stable-baselines3 logs are
added in the parent process (``VecMonitor``).
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym

from vlmrm.envs import make_env
from vlmrm.rl.wrappers import RenderFrameInInfo


def end_with_parent() -> None:
    """In a worker process: be killed when the process that started it dies (Linux's PR_SET_PDEATHSIG)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def env_builder(
    name: str,
    render_size: int,
    episode_length: int | None,
    options: Mapping[str, Any],
    seed: int | None = None,
    in_worker: bool = False,
) -> Callable[[], gym.Env]:
    """A picklable thunk that builds one frame-rendering env (for subprocess workers too)."""

    def build() -> gym.Env:
        if in_worker:
            end_with_parent()
        env = RenderFrameInInfo(make_env(name, render_size=render_size, episode_length=episode_length, **dict(options)))
        if seed is not None:
            env.action_space.seed(seed)
        return env

    return build
