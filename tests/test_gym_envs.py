"""``env.name: gym:<id>``: any Gymnasium id that renders frames, made square, with the id's episode length."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import imageio.v2 as imageio
import numpy as np
import pytest
import yaml

from markers import requires_box2d
from vlmrm.cli.main import main
from vlmrm.config import config_from_dict
from vlmrm.envs import get_env_spec, make_env
from vlmrm.envs.gym_env import last_step_succeeds, square_frame
from vlmrm.errors import ConfigError
from vlmrm.rl.video import video_encoder_problem

pytestmark = pytest.mark.filterwarnings("ignore:vlmrm. model:UserWarning")

PROMPTS = {"target_prompts": ["a pole standing straight up"], "baseline_prompts": ["a pole"]}


@pytest.mark.parametrize(
    ("name", "kind", "length", "mujoco"),
    [
        ("gym:Pendulum-v1", "continuous", 200, False),
        ("gym:CartPole-v1", "discrete", 500, False),
        ("gym:InvertedPendulum-v5", "continuous", 1000, True),
        pytest.param("gym:LunarLander-v3", "discrete", 1000, False, marks=requires_box2d),
    ],
)
def test_gym_id_renders_square_frames_and_truncates(name: str, kind: str, length: int, mujoco: bool) -> None:
    spec = get_env_spec(name)
    assert (spec.name, spec.action_kind, spec.default_episode_length, spec.uses_mujoco) == (name, kind, length, mujoco)
    assert spec.episode_success is None  # none of these reports info["is_success"]
    env = make_env(name, render_size=48, episode_length=3)
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (48, 48, 3) and frame.dtype == np.uint8 and frame.std() > 0
    steps, done = 0, False
    while not done:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        steps, done = steps + 1, terminated or truncated
    assert steps <= 3 and (steps == 3) == truncated  # the episode length given replaces the id's own
    env.close()


def test_pad_keeps_the_whole_scene_and_crop_the_centre() -> None:
    frame = np.zeros((20, 40, 3), dtype=np.uint8)
    frame[:, :2] = 255  # a mark at the left edge: padding keeps it, a centre crop cuts it off
    assert square_frame(frame, 40, "pad")[:, :2].min() == 255
    assert square_frame(frame, 40, "pad").shape == (40, 40, 3)
    assert square_frame(frame, 20, "crop").max() == 0
    tall = np.zeros((40, 20, 3), dtype=np.uint8)
    assert square_frame(tall, 40, "pad").shape == (40, 40, 3)


def test_crop_option_and_make_kwargs_reach_the_env() -> None:
    env = make_env("gym:Pendulum-v1", render_size=32, square="crop", make_kwargs={"g": 5.0})
    assert env.unwrapped.g == 5.0
    with pytest.raises(ConfigError, match="Did you mean 'square'"):
        make_env("gym:Pendulum-v1", sqaure="pad")


@requires_box2d
def test_make_kwargs_may_not_change_the_action_kind() -> None:
    with pytest.raises(ConfigError, match="give gym:LunarLander-v3 Box"):
        make_env("gym:LunarLander-v3", render_size=16, make_kwargs={"continuous": True})
    with pytest.raises(ConfigError, match=r"cannot be made: .*gravity"):
        make_env("gym:Pendulum-v1", render_size=16, make_kwargs={"gravity": 5.0})


def test_unknown_id_and_missing_prompts_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match="Did you mean: `Pendulum`"):
        get_env_spec("gym:Pendulm-v1")
    with pytest.raises(ConfigError, match="Did you mean 'gym:Pendulum-v1'"):
        get_env_spec("Pendulum-v1")
    with pytest.raises(ConfigError, match=r"has no default prompts: set reward\.target_prompts"):
        config_from_dict({"env": {"name": "gym:Pendulum-v1"}, "rl": {"algorithm": "sac", "total_steps": 10}})
    with pytest.raises(ConfigError, match=r"rl\.algorithm: dqn needs discrete actions"):
        config_from_dict(
            {"env": {"name": "gym:Pendulum-v1"}, "reward": PROMPTS, "rl": {"algorithm": "dqn", "total_steps": 10}}
        )


def test_missing_prompts_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"env": {"name": "gym:Pendulum-v1"}, "rl": {"algorithm": "sac", "total_steps": 9}}))
    assert main(["train", str(path), "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: env.name 'gym:Pendulum-v1' has no default prompts")
    assert not (tmp_path / "run").exists()


class _Reaching(gym.Env):
    """A one-number env whose goal is reached when the state passes 2: it reports info["is_success"]."""

    metadata = {"render_modes": ["rgb_array"]}  # noqa: RUF012

    def __init__(self, render_mode: str | None = None):
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(-10, 10, (1,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.x = 0.0

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.x = 0.0
        return np.array([self.x], dtype=np.float32), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.x += 1.0 if action == 1 else -1.0
        return np.array([self.x], dtype=np.float32), 0.0, False, False, {"is_success": self.x > 2}

    def render(self) -> np.ndarray:
        return np.full((30, 60, 3), int(np.clip(100 + 20 * self.x, 0, 255)), dtype=np.uint8)


def test_success_comes_from_is_success_at_the_last_step() -> None:
    gym.register("VlmrmTest/Reaching-v0", entry_point=_Reaching, max_episode_steps=7)
    try:
        spec = get_env_spec("gym:VlmrmTest/Reaching-v0")
        assert spec.episode_success is last_step_succeeds and spec.default_episode_length == 7
        assert spec.episode_success([False, True, True]) and not spec.episode_success([True, False])
        assert make_env("gym:VlmrmTest/Reaching-v0", render_size=16).render is not None
    finally:
        gym.registry.pop("VlmrmTest/Reaching-v0")


def test_the_module_id_form_imports_the_module_that_registers_the_id() -> None:
    spec = get_env_spec("gym:vlmrm.envs.gym_ids:vlmrm/CartPole-v0")
    assert spec.name == "gym:vlmrm.envs.gym_ids:vlmrm/CartPole-v0" and spec.action_kind == "discrete"
    with pytest.raises(ConfigError, match=r"has no default episode length; set env\.episode_length"):
        make_env(spec.name, render_size=16)  # the id has no max_episode_steps
    env = make_env(spec.name, render_size=16, episode_length=5)
    env.reset(seed=0)
    assert env.render().shape == (16, 16, 3)
    with pytest.raises(ConfigError, match="cannot import 'no_such_package'"):
        get_env_spec("gym:no_such_package:Thing-v0")


def write_config(tmp_path: Path, name: str, algorithm: str, **hyperparameters: Any) -> Path:
    path = tmp_path / f"{algorithm}.yaml"
    config = {
        "env": {"name": name, "episode_length": 20},
        "reward": {"model": "tiny-random", **PROMPTS, "alpha": 0.5},
        "rl": {"algorithm": algorithm, "total_steps": 60, "hyperparameters": {"learning_starts": 20} | hyperparameters},
        "logging": {"checkpoint_freq": 0, "video_freq": 0, "eval_freq": 0, "eval_episodes": 2, "progress_bar": False},
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "algorithm", "hyperparameters"),
    [
        ("gym:Pendulum-v1", "sac", {"batch_size": 16}),
        pytest.param("gym:LunarLander-v3", "dqn", {"batch_size": 16, "train_freq": 4}, marks=requires_box2d),
    ],
)
def test_train_on_a_gym_id_end_to_end(
    name: str, algorithm: str, hyperparameters: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert main(["train", str(write_config(tmp_path, name, algorithm, **hyperparameters)), "--run-dir", str(run)]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["total_steps"] == 60 and summary["eval_success_rate"] is None
    assert yaml.safe_load((run / "config.yaml").read_text())["env"]["name"] == name
    assert (run / "checkpoints" / "step_0000000060.zip").is_file()
    # vlmrm enjoy on that run: the three figures and a playable video of both episodes at a viewing size.
    capsys.readouterr()
    video = tmp_path / "enjoy.mp4"
    assert main(["enjoy", str(run), "--episodes", "2", "--video", str(video), "--video-size", "96"]) == 0
    out = capsys.readouterr().out
    assert "env return: " in out and "VLM return: " in out and "success: not reported" in out
    if video_encoder_problem() is None:
        frames = list(imageio.get_reader(video).iter_data())
        assert len(frames) == 40 and frames[0].shape == (96, 96, 3)


def test_vlm_reward_wrapper_is_one_line_on_any_gymnasium_env() -> None:
    import vlmrm

    reward = vlmrm.VLMReward.from_pretrained("tiny-random", target_prompts=["a pendulum pointing up"])
    env = vlmrm.VLMRewardWrapper(gym.make("Pendulum-v1", render_mode="rgb_array", max_episode_steps=2), reward)
    env.reset(seed=0)
    _, first, *_ = env.step(env.action_space.sample())
    _, second, _, truncated, info = env.step(env.action_space.sample())
    assert truncated and info["vlm_episode"]["vlm_return"] == pytest.approx(first + second)
    assert info["vlm_episode"]["length"] == 2 and isinstance(info["env_reward"], float)
