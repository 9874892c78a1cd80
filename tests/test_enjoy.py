"""``vlmrm enjoy RUN``: a trained policy's env return, VLM return and success with intervals, and a video."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import imageio.v2 as imageio
import numpy as np
import pytest

from markers import requires_pygame, requires_video_encoder
from vlmrm.cli.main import main
from vlmrm.config import config_from_dict
from vlmrm.evaluation.enjoy import DEFAULT_VIDEO_SIZE, enjoy_run
from vlmrm.training.trainer import train

pytestmark = pytest.mark.filterwarnings("ignore:vlmrm. model:UserWarning")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 40-step CartPole DQN run with tiny-random (20-step episodes, 32 px frames)."""
    run_dir = tmp_path_factory.mktemp("enjoy") / "run"
    config = config_from_dict(
        {
            "env": {"name": "cartpole", "episode_length": 20, "render_size": 32},
            "reward": {"model": "tiny-random"},
            "rl": {"algorithm": "dqn", "total_steps": 40, "hyperparameters": {"learning_starts": 20}},
            "logging": {
                "run_dir": str(run_dir),
                "checkpoint_freq": 20,
                "eval_episodes": 1,
                "video_freq": 0,
                "progress_bar": False,
                "inspect": False,
            },
        }
    )
    return train(config).run_dir


@requires_video_encoder
def test_enjoy_prints_three_figures_and_writes_a_video(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["enjoy", str(run), "--episodes", "3", "--video-size", "100"]) == 0
    out = capsys.readouterr().out
    best = json.loads((run / "summary.json").read_text())["best"]
    assert f"best.zip (step {best['step']})" in out  # the run's policy: its best
    interval = r"-?\d+\.\d+  95% CI \[-?\d+\.\d+, -?\d+\.\d+\]"
    for figure in ("env return", "VLM return", "success rate"):
        assert re.search(rf"^{figure}: {interval}$", out, flags=re.MULTILINE), out
    video = run / "videos" / "enjoy_policy.mp4"
    assert f"video: {video}" in out
    frames = list(imageio.get_reader(video).iter_data())
    assert len(frames) == 3 * 20 and frames[0].shape == (100, 100, 3)  # every episode, drawn at 100 px


def test_a_step_one_episode_and_no_video(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["enjoy", str(run), "--checkpoint", "20", "--episodes", "1", "--no-video"]) == 0
    out = capsys.readouterr().out
    assert "(step 20)" in out and "(one episode: no interval)" in out and "video:" not in out


def test_best_checkpoint_where_the_run_has_one(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    best = json.loads((run / "summary.json").read_text())["best"]
    assert main(["enjoy", str(run), "--checkpoint", "best", "--episodes", "1", "--no-video"]) == 0
    assert f"checkpoint: {run / 'checkpoints' / 'best.zip'} (step {best['step']})\n" in capsys.readouterr().out
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    for name in ("best.zip", "best_previous.zip"):  # a run without one (vlmrm before best policies were kept)
        (copy / "checkpoints" / name).unlink(missing_ok=True)
    assert main(["enjoy", str(copy), "--checkpoint", "best", "--no-video"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: Run {str(copy)!r} has no best checkpoint (checkpoints/best.zip); " + (
        "use --checkpoint final or a step number."
    )
    assert main(["enjoy", str(copy), "--episodes", "1", "--no-video"]) == 0  # the default: the newest
    assert "step_0000000040.zip (step 40)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--checkpoint", "99"], "has no checkpoint at step 99; its steps: 20, 40."),
        (["--episodes", "0"], "--episodes must be a positive number of episodes, got 0."),
        (["--video-size", "0"], "--video-size must be a positive number of pixels, got 0."),
    ],
)
def test_bad_arguments_are_one_line_errors(
    run: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["enjoy", str(run), "--no-video", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith(message)


def test_not_a_run_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["enjoy", str(tmp_path)]) == 2
    assert "is not a vlmrm run directory" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing written into a directory that is not a run


def redness(frames: Any) -> Any:
    return frames[..., 0].mean(axis=(1, 2)) / 255.0


@requires_video_encoder
@pytest.mark.parametrize(
    "env",
    [
        "cartpole",
        "mountaincar",
        "humanoid",
        pytest.param("gym:Pendulum-v1", marks=requires_pygame),
    ],
)
def test_the_default_video_is_at_a_viewing_size_for_every_kind_of_env(env: str, tmp_path: Path) -> None:
    """Not the model's 32 px frames: every frame of the default video is DEFAULT_VIDEO_SIZE pixels square."""
    config = config_from_dict(
        {
            "env": {"name": env, "episode_length": 4, "render_size": 32},
            "reward": {"target_prompts": ["the goal"]},  # gym:<id> envs have no default prompts
            "rl": {"algorithm": "ppo", "total_steps": 8, "hyperparameters": {"n_steps": 8, "batch_size": 8}},
            "logging": {"checkpoint_freq": 8, "eval_episodes": 1, "video_freq": 0, "progress_bar": False},
        }
    )
    run = train(config, run_dir=tmp_path / "run", reward_fn=redness).run_dir
    watched = enjoy_run(run, episodes=1, video=tmp_path / "enjoy.mp4", reward_fn=redness)
    assert watched.video is not None
    frames = list(imageio.get_reader(watched.video).iter_data())
    assert len(frames) == 4 and {frame.shape for frame in frames} == {(DEFAULT_VIDEO_SIZE, DEFAULT_VIDEO_SIZE, 3)}


def test_the_video_is_drawn_again_at_its_size_from_each_step_state() -> None:
    """SharpView's frames are the env's own drawing at the video size of the state after each step (the last step
    of an episode included, before the vector env resets it), not the model's frames enlarged."""
    from vlmrm.envs import make_env
    from vlmrm.envs.cartpole.draw import render_cartpole
    from vlmrm.rl.vec_env_factory import make_vec_env
    from vlmrm.rl.video import SharpView, enlarge

    venv = make_vec_env("cartpole", n_envs=1, render_size=32, episode_length=3, seed=5)
    view = SharpView(venv, make_env("cartpole", render_size=128, episode_length=3))
    venv.reset()
    states = []
    for action in [0, 1, 1, 0]:  # four steps: an episode of three, then one of the next
        states.append(venv.envs[0].unwrapped.get_sim_state()["state"])
        venv.step([action])
        stepped = venv.envs[0].unwrapped.get_sim_state()["state"]
        frame = view.next_frame()
        if len(states) == 3:  # the episode ended and the env was reset: the frame shows where it ended
            assert not np.array_equal(frame, render_cartpole(stepped, 128))
        else:
            np.testing.assert_array_equal(frame, render_cartpole(stepped, 128))
            assert not np.array_equal(frame, enlarge(render_cartpole(stepped, 32), 128))
    assert not view.frames
    view.close()
    venv.close()


def test_a_view_draws_at_most_its_limit_and_gives_the_env_its_step_back() -> None:
    from vlmrm.envs import make_env
    from vlmrm.rl.vec_env_factory import make_vec_env
    from vlmrm.rl.video import SharpView

    venv = make_vec_env("cartpole", n_envs=1, render_size=32, episode_length=10, seed=5)
    env = venv.envs[0]
    view = SharpView(venv, make_env("cartpole", render_size=64, episode_length=10), limit=2)
    venv.reset()
    for _ in range(4):
        venv.step([0])
    assert len(view.frames) == 2  # one video's episode, not every evaluation episode
    view.close()
    assert "step" not in vars(env)  # the env's own step again: later evaluations draw nothing more
    venv.step([0])
    assert len(view.frames) == 2
    venv.close()
