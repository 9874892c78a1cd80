"""Envs render in parallel worker processes (``rl.vec_env: subproc``): the offscreen GL backend that
:func:`vlmrm.envs.gl.ensure_gl_backend` chooses in the parent reaches every spawned worker."""

from __future__ import annotations

import functools
import os

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.vec_env import SubprocVecEnv

from vlmrm.envs import available_envs
from vlmrm.envs.gl import ensure_gl_backend
from vlmrm.errors import RenderBackendError
from vlmrm.rl.vec_env_factory import make_vec_env


@pytest.fixture
def no_gl_backend_chosen(monkeypatch):
    """A process in which nobody has set MUJOCO_GL yet; the variables are restored afterwards."""
    for key in ("MUJOCO_GL", "PYOPENGL_PLATFORM"):
        monkeypatch.setenv(key, "placeholder")  # records the original value for the restore
        monkeypatch.delenv(key)


@pytest.mark.slow
def test_spawned_workers_render_mujoco_with_the_parents_backend(no_gl_backend_chosen) -> None:
    try:
        backend = ensure_gl_backend()
    except RenderBackendError as exc:
        pytest.skip(f"no offscreen GL backend on this machine: {exc}")
    assert backend in ("egl", "osmesa")
    # Without the variable a fresh process would try GLFW, which needs a display.
    make = functools.partial(gym.make, "InvertedPendulum-v5", render_mode="rgb_array", width=32, height=32)
    venv = SubprocVecEnv([make, make], start_method="spawn")
    try:
        venv.reset()
        frames = venv.env_method("render")
    finally:
        venv.close()
    assert len(frames) == 2
    assert all(frame.shape == (32, 32, 3) and frame.dtype == np.uint8 and frame.any() for frame in frames)


@pytest.mark.slow
@pytest.mark.skipif("humanoid" not in available_envs(), reason="the humanoid env is not registered (yet)")
def test_humanoid_renders_in_subprocess_workers(no_gl_backend_chosen) -> None:
    # make_vec_env builds one env in this process first, which chooses the backend before the spawn.
    try:
        venv = make_vec_env("humanoid", n_envs=2, render_size=64, episode_length=5, kind="subproc")
    except RenderBackendError as exc:
        pytest.skip(f"no offscreen GL backend on this machine: {exc}")
    assert os.environ["MUJOCO_GL"] in ("egl", "osmesa")
    try:
        venv.reset()
        venv.step_async(np.stack([venv.action_space.sample() for _ in range(2)]))
        _, _, _, infos = venv.step_wait()
    finally:
        venv.close()
    assert all(info["frame"].shape == (64, 64, 3) and info["frame"].any() for info in infos)
