"""The ``humanoid`` environment: contract, task info, scene, camera, GL backend, ``vlmrm render``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vlmrm.envs import gl
from vlmrm.envs.humanoid.env import VLMHumanoidEnv
from vlmrm.envs.humanoid.options import GYMNASIUM_CAMERA, PAPER_CAMERA
from vlmrm.envs.humanoid.success import humanoid_pose, named_pose
from vlmrm.envs.humanoid.tasks import TASKS
from vlmrm.envs.registry import get_env_spec, make_env
from vlmrm.envs.spec import half_of_steps_succeed
from vlmrm.errors import ConfigError, RenderBackendError

SMALL = 64


@pytest.fixture(scope="module")
def env() -> Iterator[VLMHumanoidEnv]:
    """A small, task-free humanoid shared by tests that only set poses and render."""
    wrapped = make_env("humanoid", render_size=SMALL)
    wrapped.reset(seed=0)
    yield wrapped.unwrapped
    wrapped.close()


def test_spec_matches_the_paper_setup() -> None:
    spec = get_env_spec("humanoid")
    assert spec.uses_mujoco
    assert spec.default_episode_length == 100
    assert spec.episode_success is half_of_steps_succeed
    assert spec.option_names() == ["task", "camera", "look", "reset_noise_scale", "renderer", "physics"]
    options = spec.options()
    assert options.camera == PAPER_CAMERA and not options.camera.tracking  # the authors' free camera
    assert (PAPER_CAMERA.distance, PAPER_CAMERA.lookat, PAPER_CAMERA.elevation, PAPER_CAMERA.azimuth) == (
        3.5,
        (0.0, 0.0, 1.0),
        -10.0,
        180.0,
    )
    assert options.look.textured and options.look.shadows


def test_default_frame_and_camera() -> None:
    wrapped = make_env("humanoid")
    try:
        obs, _ = wrapped.reset(seed=0)
        assert obs.shape == wrapped.observation_space.shape == (348,)
        assert wrapped.action_space.shape == (17,)
        frame = wrapped.render()
        assert frame.shape == (224, 224, 3) and frame.dtype == np.uint8
        humanoid = wrapped.unwrapped
        assert humanoid.camera.distance == PAPER_CAMERA.distance == 3.5
        assert humanoid.camera.elevation == -10.0 and humanoid.camera.azimuth == 180.0
        np.testing.assert_allclose(humanoid.camera.lookat, (0.0, 0.0, 1.0))
    finally:
        wrapped.close()


def test_reset_without_noise_is_the_start_pose() -> None:
    wrapped = make_env("humanoid", render_size=SMALL, reset_noise_scale=0.0)
    try:
        wrapped.reset(seed=3)
        np.testing.assert_array_equal(wrapped.unwrapped.data.qpos, humanoid_pose(None, "start"))
    finally:
        wrapped.close()


def test_truncates_at_episode_length_and_never_terminates_when_fallen() -> None:
    wrapped = make_env("humanoid", render_size=SMALL, episode_length=6, task="standing")
    try:
        wrapped.reset(seed=1)
        humanoid = wrapped.unwrapped
        humanoid.set_qpos(named_pose("fallen"))
        zero = np.zeros(wrapped.action_space.shape, dtype=np.float32)
        for step in range(1, 7):
            _, reward, terminated, truncated, info = wrapped.step(zero)
            assert not humanoid.is_healthy  # Humanoid-v5 would have terminated here
            assert terminated is False
            assert truncated is (step == 6)
            assert info["is_success"] is False
            assert info["success_margin"] < 0
            assert np.isfinite(reward)
    finally:
        wrapped.close()


def test_task_info_follows_the_detector() -> None:
    wrapped = make_env("humanoid", render_size=SMALL, task="kneeling")
    try:
        wrapped.reset(seed=0)
        humanoid = wrapped.unwrapped
        zero = np.zeros(wrapped.action_space.shape, dtype=np.float32)
        humanoid.set_qpos(humanoid_pose("kneeling"))
        _, _, _, _, info = wrapped.step(zero)
        assert info["is_success"] is True and info["success_margin"] > 0
        humanoid.set_qpos(humanoid_pose("kneeling", "start"))
        _, _, _, _, info = wrapped.step(zero)
        assert info["is_success"] is False and info["success_margin"] < 0
    finally:
        wrapped.close()


def test_no_success_flag_without_task(env: VLMHumanoidEnv) -> None:
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.zeros(env.action_space.shape, dtype=np.float32))
    assert "is_success" not in info
    with pytest.raises(ConfigError, match="No task"):
        env.check_pose()
    assert env.check_pose("standing").task == "standing"


def test_options_are_validated() -> None:
    with pytest.raises(ConfigError, match="Did you mean 'kneeling'"):
        make_env("humanoid", task="kneel")
    with pytest.raises(ConfigError, match=r"Did you mean 'camera\.distance'"):
        make_env("humanoid", camera={"distanse": 3.0})
    with pytest.raises(ConfigError, match=r"camera\.lookat"):
        make_env("humanoid", camera={"lookat": (0.0, 1.0)})
    with pytest.raises(ConfigError, match="Did you mean 'gymnasium'"):
        make_env("humanoid", camera="gymnasum")
    with pytest.raises(ConfigError, match=r"look\.shadows"):
        make_env("humanoid", look={"shadows": "no"})


def test_flat_options_of_vlmrm_0_1_still_work_with_a_warning() -> None:
    from vlmrm.envs.registry import get_env_spec, parse_options

    with pytest.warns(FutureWarning, match="flat humanoid options are deprecated"):
        options = parse_options(get_env_spec("humanoid"), {"camera_distance": 4.0, "shadows": False})
    assert options.camera.distance == 4.0 and options.look.shadows is False and options.look.textured is True


def test_gymnasium_camera_preset_is_humanoid_v5s_default() -> None:
    from gymnasium.envs.mujoco.humanoid_v5 import DEFAULT_CAMERA_CONFIG

    assert GYMNASIUM_CAMERA.distance == DEFAULT_CAMERA_CONFIG["distance"]
    assert GYMNASIUM_CAMERA.elevation == DEFAULT_CAMERA_CONFIG["elevation"]
    assert GYMNASIUM_CAMERA.lookat == tuple(DEFAULT_CAMERA_CONFIG["lookat"])
    assert not GYMNASIUM_CAMERA.tracking  # trackbodyid is ignored on Gymnasium's free camera


def test_set_qpos_sets_pose_at_rest(env: VLMHumanoidEnv) -> None:
    qpos = humanoid_pose("splits")
    env.data.qvel[:] = 1.0
    env.set_qpos(qpos)
    np.testing.assert_array_equal(env.data.qpos, qpos)
    assert not env.data.qvel.any()
    assert env.data.body("pelvis").xpos[2] < 0.3  # positions were recomputed
    with pytest.raises(ConfigError, match="24"):
        env.set_qpos(qpos[:10])


@pytest.mark.parametrize("task", TASKS)
def test_camera_frames_the_whole_body(env: VLMHumanoidEnv, task: str) -> None:
    env.set_qpos(humanoid_pose(task))
    mask = env.body_mask()
    assert mask.sum() > 40, "the humanoid should be visible"
    border = np.concatenate([mask[0], mask[-1], mask[:, 0], mask[:, -1]])
    assert not border.any(), f"{task}: the body touches the frame edge"


def test_camera_tracks_the_torso() -> None:
    """Moving the humanoid by one floor-texture period (2 m) leaves a tracked frame unchanged."""
    frames: dict[bool, list[np.ndarray]] = {}
    for tracking in (True, False):
        wrapped = make_env("humanoid", render_size=SMALL, camera={"tracking": tracking})
        try:
            wrapped.reset(seed=0)
            humanoid = wrapped.unwrapped
            qpos = humanoid_pose("standing")
            moved = qpos.copy()
            moved[:2] += (2.0, -4.0)
            frames[tracking] = []
            for pose in (qpos, moved):
                humanoid.set_qpos(pose)
                frames[tracking].append(humanoid.body_mask())
                frames[tracking].append(humanoid.render().astype(np.int16))
        finally:
            wrapped.close()
    mask_a, frame_a, mask_b, frame_b = frames[True]
    np.testing.assert_array_equal(mask_a, mask_b)
    assert np.abs(frame_a - frame_b).max() <= 2
    still_a, _, still_b, _ = frames[False]
    assert still_a.sum() > 40 and still_b.sum() == 0  # a fixed camera loses the humanoid


def test_textured_scene_looks_like_sky_floor_and_metal(env: VLMHumanoidEnv) -> None:
    import mujoco

    model = env.model
    floor = model.geom("floor")
    assert model.mat_reflectance[floor.matid[0]] == 0.0
    assert mujoco.mjtTexture.mjTEXTURE_SKYBOX in set(model.tex_type)
    body_rgba = model.mat_rgba[model.geom("torso1").matid[0]]
    assert body_rgba[:3].min() > 0.7 and model.mat_specular[model.geom("torso1").matid[0]] > 0.5
    env.set_qpos(humanoid_pose("standing"))
    frame = env.render().astype(float)
    sky = frame[: SMALL // 8].reshape(-1, 3).mean(axis=0)
    assert sky[2] > sky[0] + 30, f"the top of the frame should be blue sky, got {sky}"
    ground = frame[-SMALL // 8 :].reshape(-1, 3)
    assert ground.std(axis=0).mean() > 5, "the floor should be tiled, not flat"


def test_render_flags_change_the_frame() -> None:
    frames = {}
    for name, options in {
        "all": {},
        "no_shadows": {"shadows": False},
        "no_sky": {"skybox": False},
        "no_antialiasing": {"antialiasing": False},
        "plain": {"textured": False},
    }.items():
        wrapped = make_env("humanoid", render_size=SMALL, look=options)
        try:
            wrapped.reset(seed=0)
            wrapped.unwrapped.set_qpos(humanoid_pose("standing"))
            frames[name] = wrapped.render().astype(np.int16)
        finally:
            wrapped.close()
    for name in ("no_shadows", "no_sky", "no_antialiasing", "plain"):
        assert np.abs(frames[name] - frames["all"]).mean() > 0.5, name
    assert frames["no_sky"][:4].max() < 30  # no skybox: black background


def test_no_gl_backend_names_egl_and_osmesa(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MUJOCO_GL", raising=False)
    monkeypatch.setattr(gl, "probe_backend", lambda backend, timeout=60.0: (False, f"{backend} is missing"))
    with pytest.raises(RenderBackendError) as error:
        gl.ensure_gl_backend()
    message = str(error.value)
    assert "MUJOCO_GL=egl: egl is missing" in message
    assert "MUJOCO_GL=osmesa: osmesa is missing" in message
    with pytest.raises(RenderBackendError, match="osmesa"):
        make_env("humanoid", render_size=SMALL)


@pytest.mark.slow
@pytest.mark.parametrize("first", ["", "import mujoco\n"], ids=["humanoid-first", "mujoco-first"])
def test_importing_the_module_chooses_a_backend(first: str) -> None:
    """In a fresh process without MUJOCO_GL, importing vlmrm.envs.humanoid.env makes rendering work,
    even when MuJoCo was imported before."""
    code = first + (
        "import os, vlmrm.envs.humanoid.env as h\n"
        "env = h.make_humanoid(16, 100, h.HumanoidOptions())\n"
        "env.reset(seed=0)\n"
        "print(os.environ['MUJOCO_GL'], 'x'.join(map(str, env.render().shape)))\n"
    )
    environment = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "PYOPENGL_PLATFORM")}
    result = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    backend, shape = result.stdout.split()[-2:]
    assert backend in gl.CANDIDATE_BACKENDS and shape == "16x16x3"


def test_render_cli_writes_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from vlmrm.cli.main import main

    out = tmp_path / "poses" / "lotus.png"
    assert main(["render", "lotus", "--out", str(out), "--size", "48", "--no-shadows"]) == 0
    with Image.open(out) as image:
        assert image.size == (48, 48) and image.mode == "RGB"
    assert "lotus detector accepts it" in capsys.readouterr().out
    start = tmp_path / "start.png"
    assert main(["render", "lotus", "--pose", "start", "--out", str(start), "--size", "48"]) == 0
    assert "lotus detector rejects it" in capsys.readouterr().out


def test_render_cli_rejects_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from vlmrm.cli.main import main

    assert main(["render", "lotos", "--out", str(tmp_path / "x.png")]) == 2
    assert "Did you mean 'lotus'" in capsys.readouterr().err
    assert main(["render", "lotus", "--out", str(tmp_path / "x.jpg")]) == 2
    assert main(["render", "lotus", "--out", str(tmp_path / "x.png"), "--size", "0"]) == 2
    assert not (tmp_path / "x.png").exists()


def test_render_cli_contact_sheet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from vlmrm.cli.main import main

    out = tmp_path / "sheet.png"
    assert main(["render", "all", "--out", str(out), "--size", "32", "--no-shadows"]) == 0
    with Image.open(out) as image:
        assert image.width == 3 * 32 and image.height > 3 * 32  # 3 x 3 frames with labels
    assert "8 success poses" in capsys.readouterr().out


@pytest.mark.parametrize("task", TASKS)
def test_preset_config_loads(task: str) -> None:
    from vlmrm.config import load_config
    from vlmrm.envs.humanoid.tasks import BASELINE_PROMPT, TASK_PROMPTS

    path = Path(__file__).resolve().parents[1] / "configs" / f"humanoid-{task}.yaml"
    config = load_config(path)
    assert config.env.name == "humanoid" and config.env.options["task"] == task
    assert set(config.env.options) <= set(get_env_spec("humanoid").option_names())
    assert config.reward.target_prompts == [TASK_PROMPTS[task]]
    assert config.reward.baseline_prompts == [BASELINE_PROMPT]
    assert config.rl.algorithm == "sac"
    paper = {"gamma": 0.95, "learning_rate": 6e-4, "tau": 0.005, "train_freq": 100, "gradient_steps": 100}
    assert {key: config.rl.hyperparameters[key] for key in paper} == paper
    assert config.rl.hyperparameters["learning_starts"] == 50_000
