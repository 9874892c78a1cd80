"""The Humanoid through MuJoCo Warp: clear errors where it cannot render, and the plumbing on Warp's CPU device.

No GPU here: the renderer's frames on a GPU are not checked (docs/gpu.md says so). Warp's CPU device runs the
same kernels, slowly, which is enough to check the upload of joint positions, the camera and the frames' form.
"""

from __future__ import annotations

import importlib.util
import logging
import sys

import mujoco
import numpy as np
import pytest
import torch

from vlmrm.config import config_from_dict
from vlmrm.envs.humanoid.options import HumanoidCamera, HumanoidOptions
from vlmrm.envs.humanoid.warp_renderer import free_camera_pose, render_model, resolve_renderer, warp_problem
from vlmrm.errors import ConfigError, RenderBackendError
from vlmrm.rl.vec_env_factory import make_vec_env

HAS_WARP = all(importlib.util.find_spec(name) is not None for name in ("warp", "mujoco_warp"))


def test_warp_on_a_cpu_model_is_a_clear_error() -> None:
    with pytest.raises(RenderBackendError, match=r"NVIDIA GPU.*renderer: mujoco"):
        resolve_renderer("warp", torch.device("cpu"))
    with pytest.raises(RenderBackendError, match="renderer: warp cannot render here"):
        make_vec_env("humanoid", 2, 32, episode_length=5, options={"renderer": "warp"}, vectorized=True)


def test_missing_warp_packages_are_named_with_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "warp", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "mujoco_warp", None)
    problem = warp_problem(torch.device("cuda"))
    assert problem is not None and "not installed" in problem and "vlmrm[warp]" in problem


def test_auto_falls_back_to_opengl_with_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        venv = make_vec_env("humanoid", 2, 32, episode_length=5, options={"renderer": "auto"}, vectorized=True)
    try:
        assert venv.sim.renderer_name == "mujoco"  # type: ignore[attr-defined]
        lines = [r.getMessage() for r in caplog.records if "renderer auto" in r.getMessage()]
        assert len(lines) == 1 and "OpenGL" in lines[0]
        venv.reset()
        venv.step(np.zeros((2, 17), dtype=np.float32))
        assert tuple(venv.step_frames().shape) == (2, 32, 32, 3)  # type: ignore[attr-defined]
    finally:
        venv.close()


def test_warp_needs_the_vectorized_env_in_a_config() -> None:
    with pytest.raises(ConfigError, match=r"renderer: warp .* needs env.vectorized: true"):
        config_from_dict(
            {
                "env": {"name": "humanoid", "vectorized": False, "options": {"renderer": "warp"}},
                "rl": {"algorithm": "sac", "total_steps": 9},
            }
        )
    config = config_from_dict(
        {
            "env": {"name": "humanoid", "vectorized": True, "options": {"renderer": "warp"}},
            "rl": {"algorithm": "sac", "total_steps": 9},
        }
    )
    assert config.env.vectorized and config.env.options["renderer"] == "warp"


def test_the_render_model_has_the_free_camera_as_a_fixed_camera() -> None:
    """The fixed camera sits where MuJoCo's free camera of the options does, looking at the look-at point."""
    camera = HumanoidCamera()
    model, camera_id = render_model(HumanoidOptions(camera=camera), 32)
    position, right, up = free_camera_pose(camera)
    np.testing.assert_allclose(model.cam_pos[camera_id], position, atol=1e-9)
    forward = np.cross(up, right)  # MuJoCo cameras look along -z = up x right
    to_target = np.asarray(camera.lookat) - position
    np.testing.assert_allclose(forward, to_target / np.linalg.norm(to_target), atol=1e-9)
    assert model.opt.solver == mujoco.mjtSolver.mjSOL_CG  # MuJoCo Warp has no PGS (only kinematics run here)


@pytest.mark.slow
@pytest.mark.skipif(not HAS_WARP, reason="warp-lang and mujoco-warp are not installed (pip install 'vlmrm[warp]')")
def test_warp_renderer_plumbing_on_warps_cpu_device() -> None:
    """Joint positions go up as given, tracking moves the camera with each torso, frames are uint8 RGB of each pose.

    The first run compiles Warp's kernels for the CPU (tens of seconds; cached in ~/.cache/warp afterwards).
    """
    from vlmrm.envs import make_env
    from vlmrm.envs.humanoid.warp_renderer import WarpHumanoidRenderer

    env = make_env("humanoid", render_size=32)
    env.reset(seed=0)
    standing = env.unwrapped.data.qpos.copy()  # type: ignore[attr-defined]
    moved = standing.copy()
    moved[0] += 1.0  # one metre along x
    moved[7:] += 0.4  # and every joint bent
    options = HumanoidOptions(camera=HumanoidCamera(tracking=True))
    renderer = WarpHumanoidRenderer(options, 32, nworld=2, device="cpu")
    frames = renderer.render(np.stack([standing, moved]))
    assert frames.dtype == torch.uint8 and tuple(frames.shape) == (2, 32, 32, 3) and frames.device.type == "cpu"
    np.testing.assert_allclose(renderer.qpos.numpy(), np.stack([standing, moved]), atol=1e-6)
    camera, torso = renderer.camera_positions.numpy(), renderer.torso_positions.numpy()
    base, _, _ = free_camera_pose(options.camera)
    np.testing.assert_allclose(camera[:, :2] - torso[:, :2], np.stack([base[:2]] * 2), atol=1e-5)
    assert camera[1, 0] - camera[0, 0] == pytest.approx(1.0, abs=1e-5)
    sky = frames[:, 0].float().mean(dim=1)  # the top row: sky, blue above red
    assert (sky[:, 2] > sky[:, 0]).all()
    assert not torch.equal(frames[0], frames[1])  # the bent pose looks different
    env.close()


def test_warp_physics_needs_the_vectorized_env_in_a_config_and_says_so_alone() -> None:
    with pytest.raises(
        ConfigError, match=r"physics: warp steps all envs together .* needs env.vectorized: true"
    ) as error:
        config_from_dict(
            {
                "env": {"name": "humanoid", "vectorized": False, "options": {"renderer": "warp", "physics": "warp"}},
                "rl": {"algorithm": "sac", "total_steps": 9},
            }
        )
    assert "renderer: auto" not in str(error.value)  # physics: warp needs renderer: warp: no advice against it
