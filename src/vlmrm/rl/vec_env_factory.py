"""Build vector envs whose every env renders frames for the reward model.

With ``kind="subproc"`` the envs step and render in worker processes. With ``vectorized=True`` the
env's batched version (:mod:`vlmrm.envs.vector`) steps all envs in one call and draws all their
frames in one call, as a tensor on ``device`` (the reward model's); see :func:`make_vec_env`. The workers ignore SIGINT
and SIGTERM (Ctrl-C reaches the whole process group, and the workers must outlive the trainer's
checkpoint; the trainer closes them), and on Linux they end with the trainer's process, even
after a SIGKILL, without printing a traceback about the broken pipe. A worker imports this module
(and stable-baselines3 with torch, for SB3's worker loop), never the reward model's stack.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal

import gymnasium as gym
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

from vlmrm.envs import make_env, make_vector_env
from vlmrm.rl.wrappers import RenderFrameInInfo


def _end_with_parent() -> None:
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
    """A picklable thunk that builds one monitored, frame-rendering env (for subprocess workers too)."""

    def build() -> gym.Env:
        if in_worker:
            _end_with_parent()
        env = make_env(name, render_size=render_size, episode_length=episode_length, **dict(options))
        env = RenderFrameInInfo(Monitor(env))
        if seed is not None:
            env.action_space.seed(seed)
        return env

    return build


@contextlib.contextmanager
def _signals_ignored() -> Iterator[None]:
    """Workers started inside inherit SIG_IGN for SIGINT and SIGTERM (signals belong to the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def make_vec_env(
    name: str,
    n_envs: int,
    render_size: int,
    episode_length: int | None = None,
    options: Mapping[str, Any] | None = None,
    seed: int = 0,
    kind: Literal["dummy", "subproc"] = "dummy",
    vectorized: bool = False,
    device: Any = "cpu",
) -> VecEnv:
    """``n_envs`` copies of env ``name``; ``subproc`` steps and renders them in worker processes.

    ``vectorized``: the env's batched version instead (one process, frames drawn as one tensor on
    ``device``), seeded as the ``DummyVecEnv`` would be: the same seeds give the same episodes.
    """
    options = dict(options or {})
    if vectorized:
        if kind != "dummy":
            raise ValueError(f"a vectorized env runs in this process; kind={kind!r} does not apply")
        batched: VecEnv = make_vector_env(name, n_envs, render_size, episode_length, device=device, **options)
        batched.action_space.seed(seed)  # as env_builder seeds the DummyVecEnv's (its first env's) action space
        batched.seed(seed)
        return batched
    subproc = kind == "subproc" and n_envs > 1
    if subproc:
        # Build one env here first so that configuration errors surface in this process, clearly.
        make_env(name, render_size=render_size, episode_length=episode_length, **options).close()
    builders = [env_builder(name, render_size, episode_length, options, seed + i, subproc) for i in range(n_envs)]
    if subproc:
        with _signals_ignored():
            venv: VecEnv = SubprocVecEnv(builders, start_method="spawn")
    else:
        venv = DummyVecEnv(builders)
    venv.seed(seed)
    return venv
