"""TensorBoard as a stable-baselines3 user reads it: ``rollout/ep_rew_mean`` and ``eval/mean_reward`` are the VLM
reward the agent trains on; the env's own return is ``rollout/env_return`` and ``eval/env_return``."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from vlmrm.config import config_from_dict
from vlmrm.rl.vec_env import monitor_episode
from vlmrm.rl.wrappers import EPISODE_KEY
from vlmrm.training.trainer import train


def quarter(frames: np.ndarray) -> np.ndarray:
    """0.25 for every frame: an episode of 20 steps returns 5.0 (CartPole's own reward is 1 per step up)."""
    return np.full(len(frames), 0.25, dtype=np.float32)


def test_monitor_statistics_carry_the_vlm_return() -> None:
    ended = {
        "episode": {"r": 17.0, "l": 20, "t": 0.1},
        EPISODE_KEY: {"vlm_return": 5.0, "env_return": 17.0, "length": 20},
    }
    monitor_episode(ended)
    assert ended["episode"] == {"r": 5.0, "l": 20, "env_r": 17.0}
    scored_later = {"episode": {"r": 17.0, "l": 20, "t": 0.1}}  # overlap: the VLM return comes at a later step
    monitor_episode(scored_later)
    assert "episode" not in scored_later


@pytest.mark.parametrize("overlap", [False, True])
def test_ep_rew_mean_and_eval_mean_reward_are_the_vlm_return(tmp_path: Path, overlap: bool) -> None:
    config = config_from_dict(
        {
            "env": {"name": "cartpole", "episode_length": 20, "render_size": 16},
            "reward": {"overlap_scoring": overlap},
            "rl": {"algorithm": "dqn", "total_steps": 200, "hyperparameters": {"learning_starts": 20}},
            "logging": {"eval_freq": 100, "eval_episodes": 1, "video_freq": 0, "progress_bar": False, "inspect": False},
        }
    )
    run = train(config, run_dir=tmp_path / "run", reward_fn=quarter).run_dir
    with open(run / "logs" / "progress.csv") as handle:
        rows = list(csv.DictReader(handle))
    sb3 = [float(row["rollout/ep_rew_mean"]) for row in rows if row["rollout/ep_rew_mean"]]
    assert sb3 and all(value == pytest.approx(5.0) for value in sb3)
    evals = [row for row in rows if row["eval/mean_reward"]]
    assert evals and all(row["eval/mean_reward"] == row["eval/vlm_return"] for row in evals)
    assert any(row["rollout/env_return"] for row in rows)  # the env's return, under its own name
