"""RunDir, the one owner of a run's files: its checkpoints by name, the one loader, and the old module names."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vlmrm.config import config_from_dict
from vlmrm.errors import CheckpointError, RunDirectoryError
from vlmrm.evaluation.dataset import load_sb3_policy
from vlmrm.run import RunDir
from vlmrm.run.checkpoints import saved_algorithm, saved_step
from vlmrm.training.trainer import train

ROOT = Path(__file__).parents[1]


def redness(frames: np.ndarray) -> np.ndarray:
    return frames[..., 0].mean(axis=(1, 2)) / 255.0


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 40-step CartPole DQN run with checkpoints at 20 and 40."""
    config = config_from_dict(
        {
            "env": {"name": "cartpole", "episode_length": 20, "render_size": 32},
            "rl": {"algorithm": "dqn", "total_steps": 40},
            "logging": {
                "eval_episodes": 1,
                "video_freq": 0,
                "progress_bar": False,
                "inspect": False,
                "checkpoint_freq": 20,
            },
        }
    )
    return train(config, run_dir=tmp_path_factory.mktemp("runs") / "run", reward_fn=redness).run_dir


def test_a_run_names_its_checkpoints(run: Path) -> None:
    run_dir = RunDir(run)
    assert [step for step, _ in run_dir.checkpoints()] == [20, 40]
    assert run_dir.checkpoint().step == run_dir.checkpoint("final").step == 40
    assert run_dir.checkpoint(20).path == run_dir.checkpoint_path(20)
    with pytest.raises(CheckpointError, match="no checkpoint at step 30; its steps: 20, 40"):
        run_dir.checkpoint(30)
    best = run_dir.checkpoint("best")  # kept at the evaluation with the highest VLM return
    assert best.path.name == "best.zip" and best.step in (20, 40) and run_dir.policy() == best
    assert run_dir.config() is run_dir.config()  # read and checked once
    assert run_dir.finished(40) and not run_dir.finished(41)


def test_best_and_foreign_zips_are_taken_with_their_step(run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    best = RunDir(copy).checkpoint("best")
    assert saved_step(best.path) == best.step and saved_algorithm(best.path) == "dqn"
    foreign = tmp_path / "foreign.zip"
    shutil.copy(copy / "checkpoints" / "step_0000000020.zip", foreign)
    assert RunDir(copy).checkpoint(foreign).step == 20  # a .zip of no run: its step read from the file
    for name in ("best.zip", "best_previous.zip"):
        (copy / "checkpoints" / name).unlink(missing_ok=True)
    with pytest.raises(CheckpointError, match="no sound best policy"):
        RunDir(copy).checkpoint("best")
    assert RunDir(copy).policy().step == 40  # no best: the newest checkpoint


def test_an_unfinished_run_has_no_final_checkpoint(run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "summary.json").unlink()
    with pytest.raises(CheckpointError, match="has not finished"):
        RunDir(copy).checkpoint("final")
    assert RunDir(copy).checkpoint().step == 40


def test_one_loader_reads_the_runs_algorithm_and_refuses_another_env(run: Path, tmp_path: Path) -> None:
    import gymnasium as gym

    model = RunDir(run).load_model()
    assert type(model).__name__ == "DQN" and model.num_timesteps == 40
    # A loose .zip (outside any run) loads as the algorithm that saved it.
    loose = tmp_path / "policy.zip"
    shutil.copy(run / "checkpoints" / "step_0000000040.zip", loose)
    env = gym.make("CartPole-v1")  # Gymnasium's own: other angle bounds than vlmrm's, the same shapes
    act = load_sb3_policy(loose, env, deterministic=True)
    assert env.action_space.contains(int(act(env.reset(seed=0)[0])))
    with pytest.raises(CheckpointError, match="is of another environment"):
        load_sb3_policy(loose, gym.make("MountainCarContinuous-v0"))
    with pytest.raises(CheckpointError, match="not a stable-baselines3 checkpoint"):
        (tmp_path / "junk.zip").write_bytes(b"not a zip")
        load_sb3_policy(tmp_path / "junk.zip", env)


def test_a_directory_without_a_config_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(RunDirectoryError, match=r"Cannot resume: run directory .* does not exist"):
        RunDir(tmp_path / "nowhere").require("Cannot resume")
    with pytest.raises(RunDirectoryError, match="is not a vlmrm run directory"):
        RunDir(tmp_path).config()


def test_old_module_names_import_the_new_modules_with_a_warning() -> None:
    code = (
        "import warnings\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    from vlmrm.rl.run_dir import RunDir\n"
        "import vlmrm.run.run_dir\n"
        "assert RunDir is vlmrm.run.run_dir.RunDir\n"
        "print(caught[0].category.__name__, caught[0].message)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert "DeprecationWarning vlmrm.rl.run_dir moved to vlmrm.run.run_dir" in result.stdout
