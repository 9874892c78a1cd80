"""``physics: warp``: all Humanoids stepped in MuJoCo Warp and drawn from the same device data.

The option's checks run everywhere. The simulation runs on Warp's CPU device where warp-lang and mujoco-warp are
installed (the same kernels as on a GPU, slowly; the first run compiles them for tens of seconds, cached in
~/.cache/warp afterwards): the vector env's plumbing, and how close the trajectories stay to CPU MuJoCo's.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from vlmrm.envs.humanoid.options import HumanoidOptions
from vlmrm.errors import ConfigError, RenderBackendError

HAS_WARP = all(importlib.util.find_spec(name) is not None for name in ("warp", "mujoco_warp"))
needs_warp = pytest.mark.skipif(
    not HAS_WARP, reason="warp-lang and mujoco-warp are not installed (pip install 'vlmrm[warp]')"
)

SIZE = 32
STEPS = 20  # env steps (100 physics steps) compared with CPU MuJoCo
QPOS_TOLERANCE = 1e-3
"""Largest joint-position difference (metres or radians) allowed within :data:`STEPS` steps of the same actions.

Measured on Warp's CPU device (Newton, float32) against CPU MuJoCo (PGS, float64) from the same states, 4 worlds,
uniform random actions: at most 3.6e-7 after 1 step, 8.5e-7 after 10, 4.2e-6 after 25 (5.4e-5 after 50; then the
falls' contacts amplify it: 3.5e-2 after 75, 0.1 after 100). 1e-3 leaves over a hundredfold margin for other
CPUs and GPUs (float32 sums in another order) and still fails on a wrong solver setting, a missed substep or a
wrong actuator, which move joints by 1e-2 or more within a step."""


def test_warp_physics_needs_the_warp_renderer() -> None:
    with pytest.raises(ValueError, match="physics: warp draws the device data with MuJoCo Warp's renderer"):
        HumanoidOptions(physics="warp")
    assert HumanoidOptions(physics="warp", renderer="warp").physics == "warp"
    assert HumanoidOptions().physics == "mujoco"


def test_warp_physics_needs_the_vectorized_env() -> None:
    from vlmrm.envs.humanoid.env import make_humanoid

    with pytest.raises(ConfigError, match=r"set env\.vectorized: true"):
        make_humanoid(32, 5, HumanoidOptions(physics="warp", renderer="warp"))


def test_warp_physics_on_a_cpu_model_is_the_renderers_clear_error() -> None:
    from vlmrm.rl.vec_env_factory import make_vec_env

    with pytest.raises(RenderBackendError, match="renderer: warp cannot render here"):
        make_vec_env(
            "humanoid", 2, 32, episode_length=5, options={"renderer": "warp", "physics": "warp"}, vectorized=True
        )


def _cpu_envs(n: int, options: HumanoidOptions) -> list:
    from vlmrm.envs.humanoid.env import VLMHumanoidEnv

    single = options.model_copy(update={"renderer": "mujoco", "physics": "mujoco"})
    return [VLMHumanoidEnv(SIZE, single) for _ in range(n)]


@pytest.mark.slow
@needs_warp
def test_the_vector_env_on_warps_cpu_device() -> None:
    """Resets as Gymnasium's Humanoid does for the same seeds, steps all worlds, truncates, resets one world."""
    from vlmrm.envs.humanoid.warp_physics import WarpHumanoidSimulation
    from vlmrm.envs.vector.vec_env import BatchedVecEnv

    options = HumanoidOptions(task="kneeling", renderer="warp", physics="warp")
    sim = WarpHumanoidSimulation(options, SIZE, 2, "cpu")
    venv = BatchedVecEnv(sim, episode_length=2)
    cpu = _cpu_envs(2, options)
    try:
        venv.seed(7)
        obs = venv.reset()
        expected = np.stack([env.reset(seed=7 + i)[0] for i, env in enumerate(cpu)])
        assert obs.shape == (2, 348) and obs.dtype == np.float64
        np.testing.assert_allclose(obs[:, :45], expected[:, :45], atol=1e-6)  # joint positions and velocities
        np.testing.assert_allclose(obs, expected, atol=1e-3, rtol=1e-4)  # inertias, velocities, forces: float32

        actions = np.full((2, 17), 0.2, dtype=np.float32)
        obs, rewards, dones, infos = venv.step(actions)
        assert obs.shape == (2, 348) and rewards.shape == (2,) and not dones.any()
        assert all(isinstance(info["is_success"], bool) and "success_margin" in info for info in infos)
        frames = venv.step_frames()
        assert frames.dtype == torch.uint8 and tuple(frames.shape) == (2, SIZE, SIZE, 3)
        np.testing.assert_allclose(sim.renderer.qpos.numpy(), sim.qpos.numpy())  # drawn from the stepped data
        for env in cpu:
            _, reward, *_ = env.step(actions[0])
        assert rewards == pytest.approx([reward] * 2, abs=0.05)  # the same reward terms, as after one CPU step

        before = sim.qpos.numpy().copy()
        obs, _, dones, infos = venv.step(actions)  # the time limit: both truncate, both reset
        assert dones.all() and all(info["TimeLimit.truncated"] for info in infos)
        assert all(info["episode"]["l"] == 2 for info in infos)
        assert not np.allclose(infos[0]["terminal_observation"], obs[0])
        np.testing.assert_allclose(obs[:, :22], sim.qpos.numpy()[:, 2:], atol=1e-6)  # new episodes' states

        after_reset = sim.qpos.numpy().copy()
        sim.set_states(np.array([1]), before[1:2], np.zeros((1, 23)))  # one world alone
        np.testing.assert_allclose(sim.qpos.numpy()[0], after_reset[0])
        np.testing.assert_allclose(sim.qpos.numpy()[1], before[1], atol=1e-7)
        np.testing.assert_allclose(sim.qvel.numpy()[1], 0.0)
    finally:
        venv.close()
        for env in cpu:
            env.close()


@pytest.mark.slow
@needs_warp
def test_trajectories_stay_close_to_cpu_mujoco() -> None:
    """From the same states with the same actions, MuJoCo Warp (Newton, float32) follows CPU MuJoCo (PGS, float64)
    within :data:`QPOS_TOLERANCE` for :data:`STEPS` steps, joints moving and feet on the floor."""
    from vlmrm.envs.humanoid.warp_physics import WarpHumanoidSimulation

    n = 2
    options = HumanoidOptions(renderer="warp", physics="warp")
    sim = WarpHumanoidSimulation(options, SIZE, n, "cpu")
    cpu = _cpu_envs(n, options)
    try:
        for i, env in enumerate(cpu):
            env.reset(seed=i)
            sim.reset_env(i, i, None)
        actions = np.random.default_rng(0).uniform(-0.4, 0.4, size=(STEPS, n, 17)).astype(np.float32)
        start, worst, contacts = sim.qpos.numpy().copy(), 0.0, 0
        for t in range(STEPS):
            sim.step(actions[t])
            for i, env in enumerate(cpu):
                env.step(actions[t, i])
                contacts += env.data.ncon
            cpu_qpos = np.stack([env.data.qpos for env in cpu])
            worst = max(worst, float(np.abs(sim.qpos.numpy() - cpu_qpos).max()))
        assert worst < QPOS_TOLERANCE, f"largest joint-position difference {worst:.3g}"
        # Not a trivial comparison: the joints moved, and the feet pressed on the floor (contact forces).
        assert np.abs(sim.qpos.numpy() - start).max() > 0.1 and contacts > 0
    finally:
        sim.close()
        for env in cpu:
            env.close()
