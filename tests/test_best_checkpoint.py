"""A run keeps the best policy it evaluated (``checkpoints/best.zip``), across resumes and corruption."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import vlmrm
from vlmrm.run.checkpoints import (
    BEST_FILE,
    BEST_RECORD_FILE,
    PREVIOUS_BEST_FILE,
    BestRecord,
    read_best,
    recover_best,
    write_best,
)
from vlmrm.run.run_dir import RunDir

STEPS, EVERY = 60, 20


class Schedule:
    """A reward whose value the test controls: ``values[i]`` for every frame of the ``i``-th call, then the last."""

    def __init__(self, values: list[float]):
        self.values = values
        self.calls = 0

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        value = self.values[min(self.calls, len(self.values) - 1)]
        self.calls += 1
        return np.full(len(frames), value)


def config(total_steps: int = STEPS, checkpoint_freq: int = EVERY) -> vlmrm.TrainConfig:
    return vlmrm.config_from_dict({
        "env": {"name": "cartpole", "episode_length": 20, "render_size": 32},
        "rl": {"algorithm": "dqn", "total_steps": total_steps},
        "logging": {"eval_freq": EVERY, "eval_episodes": 1, "video_freq": 0, "checkpoint_freq": checkpoint_freq,
                    "progress_bar": False, "inspect": False},
    })  # fmt: skip


def falling() -> Schedule:
    """Every call scores lower than the one before: the first evaluation is the best."""
    return Schedule([-float(i) for i in range(1000)])


def test_the_best_policy_is_kept_when_later_evaluations_score_lower(tmp_path: Path) -> None:
    result = vlmrm.train(config(), run_dir=tmp_path / "run", reward_fn=falling())
    summary, checkpoints = result.summary, tmp_path / "run" / "checkpoints"
    steps = [entry["step"] for entry in summary["eval_history"]]
    assert steps == [20, 40, 60]
    assert summary["best"]["step"] == 20 and summary["best"]["checkpoint"] == f"checkpoints/{BEST_FILE}"
    assert summary["best"]["vlm_return"] == summary["eval_history"][0]["vlm_return"]
    assert summary["final"]["step"] == 60 and summary["final"]["vlm_return"] < summary["best"]["vlm_return"]
    assert json.loads((checkpoints / BEST_RECORD_FILE).read_text()) == {
        key: value for key, value in summary["best"].items() if key != "checkpoint"
    }
    assert read_best(checkpoints) == BestRecord.from_dict(summary["best"])
    run = RunDir(tmp_path / "run")
    policy, latest = run.policy(), run.policy("latest")  # "the policy of the run": its best
    assert (policy.path, policy.step) == (checkpoints / BEST_FILE, 20)
    assert (latest.path, latest.step) == (checkpoints / "step_0000000060.zip", 60)
    assert vlmrm.rl.algorithms.algorithm_class("dqn").load(checkpoints / BEST_FILE).num_timesteps == 20


def test_a_rising_reward_makes_the_final_policy_the_best(tmp_path: Path) -> None:
    result = vlmrm.train(config(), run_dir=tmp_path / "run", reward_fn=Schedule([float(i) for i in range(1000)]))
    assert result.summary["best"]["step"] == 60 == result.summary["final"]["step"]
    assert not (tmp_path / "run" / "checkpoints" / f"{BEST_FILE}.corrupt").exists()


@pytest.mark.slow
def test_a_killed_and_resumed_run_keeps_its_best_policy_and_score(tmp_path: Path) -> None:
    run = tmp_path / "run"
    reward = falling()
    vlmrm.train(config(checkpoint_freq=40), run_dir=run, reward_fn=reward)
    best = read_best(run / "checkpoints")
    assert best is not None and best.step == 20
    best_bytes = (run / "checkpoints" / BEST_FILE).read_bytes()
    # As if killed after the checkpoint at 40, before the run finished: no final checkpoint, no summary.
    (run / "summary.json").unlink()
    for path in (run / "checkpoints").glob("step_0000000060*"):
        path.unlink()
    result = vlmrm.resume(run, reward_fn=reward)  # lower still: the resumed evaluations do not beat the best
    assert result.summary["resumed_at_steps"] == [40]
    assert result.summary["best"]["step"] == 20 and result.summary["best"]["vlm_return"] == best.vlm_return
    assert (run / "checkpoints" / BEST_FILE).read_bytes() == best_bytes


def test_a_corrupt_best_falls_back_to_the_one_before_it(tmp_path: Path) -> None:
    from stable_baselines3 import DQN

    model = DQN("MlpPolicy", "CartPole-v1", learning_starts=0, buffer_size=100, seed=0)
    first, second = BestRecord(step=10, vlm_return=1.0), BestRecord(step=20, vlm_return=2.0)
    write_best(model, tmp_path, first)
    write_best(model, tmp_path, second)
    assert read_best(tmp_path) == second and (tmp_path / PREVIOUS_BEST_FILE).exists()
    best = tmp_path / BEST_FILE
    best.write_bytes(best.read_bytes()[: best.stat().st_size // 2])  # truncated
    assert read_best(tmp_path) is None
    assert recover_best(tmp_path) == first
    assert read_best(tmp_path) == first and (tmp_path / f"{BEST_FILE}.corrupt").exists()
    assert json.loads((tmp_path / BEST_RECORD_FILE).read_text())["step"] == 10
    # Nothing sound left: no best, and "the policy of the run" is its newest checkpoint.
    best.write_bytes(b"not a zip")
    assert recover_best(tmp_path) is None
    assert not (tmp_path / BEST_RECORD_FILE).exists() and (tmp_path / f"{BEST_FILE}.corrupt.1").exists()
    assert read_best(tmp_path) is None


@pytest.mark.slow
def test_a_resumed_run_with_a_corrupt_best_falls_back_and_goes_on(tmp_path: Path) -> None:
    run = tmp_path / "run"
    reward = Schedule([float(i) for i in range(1000)])  # rising: every evaluation is a new best
    vlmrm.train(config(checkpoint_freq=40), run_dir=run, reward_fn=reward)
    checkpoints = run / "checkpoints"
    previous = BestRecord.from_dict(json.loads((checkpoints / BEST_RECORD_FILE).read_text()))
    assert previous.step == 60
    (run / "summary.json").unlink()
    for path in checkpoints.glob("step_0000000060*"):
        path.unlink()
    (checkpoints / BEST_FILE).write_bytes(b"corrupt")
    result = vlmrm.resume(run, reward_fn=reward)
    assert (checkpoints / f"{BEST_FILE}.corrupt").read_bytes() == b"corrupt"
    assert result.summary["best"]["step"] == 60  # the fallback (40) was beaten again by the rising reward
    assert read_best(checkpoints) is not None


def test_asking_for_the_best_of_a_run_without_one_says_how_to_go_on(tmp_path: Path) -> None:
    run = tmp_path / "run"
    vlmrm.train(config(), run_dir=run, reward_fn=falling())
    (run / "checkpoints" / BEST_FILE).unlink()
    (run / "checkpoints" / PREVIOUS_BEST_FILE).unlink(missing_ok=True)
    assert RunDir(run).policy().step == 60  # no best: the newest checkpoint
    with pytest.raises(vlmrm.errors.CheckpointError, match="--checkpoint latest"):
        RunDir(run).policy("best")
