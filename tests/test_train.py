"""Short real training runs with tiny-random that must write every run artefact."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest
from stable_baselines3 import DQN, PPO, SAC

from faultkit import load_dqn_checkpoint
from vlmrm.config import config_from_dict
from vlmrm.errors import ConfigError, RunDirectoryError
from vlmrm.rl.video import video_encoder_problem
from vlmrm.training.trainer import train

pytestmark = pytest.mark.filterwarnings("ignore:vlmrm. model:UserWarning")


def config(env: str, algorithm: str, steps: int, run_dir: Path, **rl_extra) -> dict:
    return {
        "env": {"name": env, "episode_length": 50},
        "reward": {
            "model": "tiny-random",
            "target_prompts": ["pole vertically upright on top of the cart"],
            "baseline_prompts": ["pole and cart"],
            "alpha": 0.5,
        },
        "rl": {"algorithm": algorithm, "total_steps": steps, "seed": 0, **rl_extra},
        "logging": {
            "run_dir": str(run_dir),
            "checkpoint_freq": 150,
            "video_freq": 200,
            "eval_freq": 150,
            "eval_episodes": 2,
            "progress_bar": False,
        },
    }


def read_scalars(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "logs" / "progress.csv") as handle:
        return list(csv.DictReader(handle))


def test_cartpole_dqn_writes_every_artefact(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    cfg = config("cartpole", "dqn", 300, run_dir, hyperparameters={"learning_starts": 100, "train_freq": 4})
    result = train(config_from_dict(cfg))
    assert result.run_dir == run_dir
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["total_steps"] == 300  # exactly, although DQN collects in chunks
    assert summary["episode_end_batching"] is True
    assert summary["eval_episodes"] == 2 and summary["steps_per_second"] > 0
    assert 0.0 <= summary["eval_success_rate"] <= 1.0  # CartPole: the pole never fell
    assert 0.0 <= summary["eval_step_success_rate"] <= 1.0  # the share of steps with the pole up
    assert (run_dir / "config.yaml").read_text().startswith("env:")
    # TensorBoard events and the VLM return next to the env return.
    assert list(run_dir.glob("events.out.tfevents.*"))  # at the top: TensorBoard lists the run by its name
    columns = set(read_scalars(run_dir)[0])
    assert {"rollout/vlm_return", "rollout/env_return", "eval/vlm_return", "eval/env_return"} <= columns
    # Checkpoints at 150 and 300 (the final one) load.
    checkpoints = sorted((run_dir / "checkpoints").glob("step_*.zip"))
    assert [p.name for p in checkpoints] == ["step_0000000150.zip", "step_0000000300.zip"]
    DQN.load(checkpoints[-1])
    # Videos at 200 and the end, drawn again at logging.video_size (512 px; the model sees 64). Without an encoder
    # (the GPU image has none) they are skipped with one log line, and the run still completes.
    videos = sorted((run_dir / "videos").glob("*.mp4"))
    if video_encoder_problem() is not None:
        assert videos == []
        return
    assert [p.name for p in videos] == ["step_0000000200.mp4", "step_0000000300.mp4"]
    frames = list(imageio.get_reader(videos[-1]).iter_data())
    assert frames and frames[0].shape == (512, 512, 3)


@pytest.mark.parametrize(
    ("video_size", "env_extra", "side"),
    [
        (None, {}, 64),  # the model's frames, as they are
        (128, {}, 128),  # drawn again from each step's state
        (128, {"vectorized": True}, 128),  # a batched env cannot be drawn again: its frames enlarged
    ],
    ids=["model-frames", "drawn-again", "enlarged"],
)
def test_policy_videos_are_written_at_logging_video_size(
    tmp_path: Path, video_size: int | None, env_extra: dict, side: int, caplog: pytest.LogCaptureFixture
) -> None:
    run_dir = tmp_path / "run"
    cfg = config("cartpole", "dqn", 100, run_dir, hyperparameters={"learning_starts": 100})
    cfg["env"] = {**cfg["env"], "episode_length": 20, **env_extra}
    cfg["logging"] = {**cfg["logging"], "video_freq": 0, "video_size": video_size, "inspect": False}
    with caplog.at_level("INFO", logger="vlmrm"):
        train(config_from_dict(cfg))
    said_enlarged = "the cartpole env is batched or steps in worker processes: the video's frames are enlarged"
    assert (said_enlarged in caplog.text) is bool(env_extra)
    if video_encoder_problem() is not None:
        pytest.skip(f"no video encoder: {video_encoder_problem()}")
    (video,) = (run_dir / "videos").glob("*.mp4")
    frames = list(imageio.get_reader(video).iter_data())
    assert len(frames) == 20 and {frame.shape for frame in frames} == {(side, side, 3)}


def test_mountaincar_sac_episode_end_batching_trains(tmp_path: Path) -> None:
    hyperparameters = {"learning_starts": 100, "batch_size": 32}
    cfg = config("mountaincar", "sac", 200, tmp_path / "run", n_envs=2, hyperparameters=hyperparameters)
    cfg["env"]["options"] = {"terminate_at_goal": False}
    summary = train(config_from_dict(cfg)).summary
    assert summary["total_steps"] == 200
    assert summary["eval_success_rate"] is not None  # MountainCar reports reaching the flag
    model = SAC.load(tmp_path / "run" / "checkpoints" / "step_0000000200.zip")
    assert model.num_timesteps == 200


def test_overlapped_scoring_fills_the_replay_buffer_like_inline_scoring(tmp_path: Path) -> None:
    """A background thread scores finished episodes; the saved buffer holds the same rewards as inline scoring."""
    # learning_starts = total: no gradient step, so both runs take the same actions on the same frames.
    hyperparameters = {"learning_starts": 200, "train_freq": 4}
    buffers = {}
    for overlap in (False, True):
        run_dir = tmp_path / f"overlap_{overlap}"
        cfg = config("cartpole", "dqn", 200, run_dir, n_envs=2, hyperparameters=hyperparameters)
        cfg["reward"]["overlap_scoring"] = overlap
        summary = train(config_from_dict(cfg)).summary
        assert summary["overlap_scoring"] is overlap and summary["total_steps"] == 200
        buffers[overlap] = load_dqn_checkpoint(run_dir, 200).replay_buffer
    inline, overlapped = buffers[False], buffers[True]
    assert overlapped._in_flight == []  # saving waited for every scored episode
    assert inline.ready.sum() >= 2 * 50  # every env finished at least one 50-step episode
    np.testing.assert_array_equal(overlapped.ready, inline.ready)
    np.testing.assert_array_equal(overlapped.observations, inline.observations)
    ready = inline.ready
    assert np.all(inline.rewards[ready] != 0)  # relabelled, not placeholders
    np.testing.assert_allclose(overlapped.rewards[ready], inline.rewards[ready], rtol=1e-5, atol=1e-6)


def test_overlapped_scoring_defaults_off_on_a_cpu_and_needs_episode_batching(tmp_path: Path) -> None:
    cfg = config("cartpole", "dqn", 100, tmp_path / "run", hyperparameters={"learning_starts": 100})
    cfg["reward"]["device"] = "cpu"  # the model on the envs' CPU cores, whatever the machine has
    assert train(config_from_dict(cfg)).summary["overlap_scoring"] is False
    cfg = config("cartpole", "ppo", 64, tmp_path / "ppo", hyperparameters={"n_steps": 32, "batch_size": 32})
    cfg["reward"]["overlap_scoring"] = True
    with pytest.raises(ConfigError, match=r"reward\.overlap_scoring: needs episode-end batching"):
        train(config_from_dict(cfg))


def test_ppo_uses_per_step_rewards(tmp_path: Path) -> None:
    cfg = config("cartpole", "ppo", 128, tmp_path / "run", n_envs=2, hyperparameters={"n_steps": 32, "batch_size": 32})
    summary = train(config_from_dict(cfg)).summary
    assert summary["episode_end_batching"] is False
    PPO.load(tmp_path / "run" / "checkpoints" / f"step_{summary['total_steps']:010d}.zip")


def test_existing_run_directory_is_not_overwritten(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "precious.txt").write_text("results")
    with pytest.raises(RunDirectoryError, match="--overwrite"):
        train(config_from_dict(config("cartpole", "dqn", 10, run_dir)))
    assert (run_dir / "precious.txt").read_text() == "results"


@pytest.mark.parametrize(
    ("algorithm", "env", "hyperparameters", "message"),
    [
        ("dqn", "mountaincar", {}, "dqn needs discrete actions"),
        ("sac", "cartpole", {}, "sac needs continuous actions"),
        ("dqn", "cartpole", {"learning_rat": 0.1}, "Did you mean 'learning_rate'?"),
        ("dqn", "cartpole", {"seed": 3}, "set by vlmrm"),
    ],
)
def test_rl_setting_errors(tmp_path: Path, algorithm: str, env: str, hyperparameters: dict, message: str) -> None:
    cfg = config(env, algorithm, 10, tmp_path / "run", hyperparameters=hyperparameters)
    with warnings.catch_warnings(), pytest.raises(ConfigError, match=message):
        warnings.simplefilter("ignore")
        train(config_from_dict(cfg))
    assert not (tmp_path / "run").exists(), "a rejected config must not leave a run directory behind"
