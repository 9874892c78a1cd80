"""What TensorBoard shows of a run: the policy video of an evaluation, and the run under its own name.

``tensorboard --logdir runs/`` names a run by the directory that holds its events files: they are written at the
top of the run directory (``cartpole-x``, not ``cartpole-x/logs``); runs of older vlmrm versions keep theirs in
``logs/``, and resuming one continues there.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence
from stable_baselines3.common.logger import Video

from vlmrm.config import config_from_dict
from vlmrm.errors import RunDirectoryError
from vlmrm.reward.contract import FunctionReward
from vlmrm.run.run_dir import RunDir
from vlmrm.training.callbacks import TENSORBOARD_VIDEO_SIZE
from vlmrm.training.logs import EventsOutputFormat, gif_bytes, video_frames
from vlmrm.training.trainer import resume, train

SIZE = 32
EPISODE = 16


def brightness(frames: np.ndarray) -> np.ndarray:
    return frames.mean(axis=(1, 2, 3)) / 255.0


def reward() -> FunctionReward:
    return FunctionReward(brightness, image_size=SIZE)


def config(run_dir: Path, steps: int, video_freq: int = 0) -> Any:
    return config_from_dict(
        {
            "env": {"name": "cartpole", "episode_length": EPISODE, "render_size": SIZE},
            "rl": {"algorithm": "ppo", "total_steps": steps, "hyperparameters": {"n_steps": 16, "batch_size": 16}},
            "logging": {
                "run_dir": str(run_dir),
                "checkpoint_freq": 16,
                "eval_freq": 16,
                "video_freq": video_freq,
                "eval_episodes": 1,
                "progress_bar": False,
                "inspect": False,
            },
        }
    )


def tensorboard_runs(root: Path) -> set[str]:
    """The run names TensorBoard lists for ``tensorboard --logdir root``."""
    from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer

    return set(EventMultiplexer().AddRunsFromDirectory(str(root)).Runs())


def images(events_dir: Path, tag: str) -> list[Any]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(events_dir), size_guidance={"images": 0})
    events.Reload()
    return list(events.Images(tag)) if tag in events.Tags()["images"] else []


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``runs/cartpole-x``: 32 steps, a video at step 16 (periodic) and 32 (final)."""
    root = tmp_path_factory.mktemp("runs")
    train(config(root / "cartpole-x", 32, video_freq=16), reward_fn=reward())
    return root


def test_tensorboard_lists_a_run_by_its_own_name(runs: Path) -> None:
    run = runs / "cartpole-x"
    assert tensorboard_runs(runs) == {"cartpole-x"}
    assert RunDir(run).events_dir == run and not list((run / "logs").glob("events.out.tfevents.*"))
    assert (run / "logs" / "progress.csv").is_file()  # the CSV log stays in logs/


def test_each_policy_video_is_an_animated_image_in_tensorboard(runs: Path) -> None:
    videos = images(runs / "cartpole-x", "eval/video")
    assert [event.step for event in videos] == [16, 32]  # the periodic and the final evaluation
    for event in videos:
        assert (event.width, event.height) == (TENSORBOARD_VIDEO_SIZE, TENSORBOARD_VIDEO_SIZE)  # 512 px, halved
        gif = Image.open(io.BytesIO(event.encoded_image_string))
        # The evaluation's first episode, whole, at 30 fps (Pillow merges equal frames, adding their durations).
        # GIF counts in 10 ms: a frame's 33 ms is stored as 30, two merged frames' 66 as 60.
        duration = sum(frame.info["duration"] for frame in ImageSequence.Iterator(gif))
        assert gif.format == "GIF" and EPISODE * 30 <= duration <= EPISODE * 34
    with open(runs / "cartpole-x" / "logs" / "progress.csv") as handle:
        assert "eval/video" not in handle.readline()  # TensorBoard only


def test_video_frames_are_read_as_stable_baselines3_logs_them() -> None:
    frames = np.random.default_rng(0).integers(0, 255, size=(3, 6, 8, 3), dtype=np.uint8)
    clip = torch.from_numpy(frames).permute(0, 3, 1, 2).unsqueeze(0)  # (1, T, C, H, W)
    np.testing.assert_array_equal(video_frames(Video(clip, fps=10)), frames)
    grey = video_frames(Video(torch.ones(1, 2, 1, 4, 4), fps=10))  # floats in [0, 1], one channel
    assert grey.shape == (2, 4, 4, 3) and grey.dtype == np.uint8 and (grey == 255).all()
    with pytest.raises(ValueError, match=r"\(1, T, C, H, W\)"):
        video_frames(Video(torch.zeros(4, 4), fps=10))
    gif = Image.open(io.BytesIO(gif_bytes(frames, fps=10)))
    assert gif.n_frames == 3 and gif.info["duration"] == 100 and gif.size == (8, 6)


def test_a_video_excluded_from_tensorboard_is_not_written(tmp_path: Path) -> None:
    output = EventsOutputFormat(str(tmp_path))
    clip = Video(torch.zeros(1, 2, 3, 4, 4, dtype=torch.uint8), fps=10)
    output.write({"a": clip, "b": clip, "c": 1.0}, {"a": ("tensorboard",), "b": (), "c": ()}, step=3)
    output.close()
    assert images(tmp_path, "a") == [] and [event.step for event in images(tmp_path, "b")] == [3]


def test_a_run_of_the_old_layout_resumes_with_its_events_in_logs(runs: Path, tmp_path: Path) -> None:
    """A run whose events files are in ``logs/`` (vlmrm 0.2) keeps them there: one run in TensorBoard."""
    old = tmp_path / "runs" / "old"
    shutil.copytree(runs / "cartpole-x", old)
    for events in old.glob("events.out.tfevents.*"):
        events.rename(old / "logs" / events.name)
    assert RunDir(old).events_dir == old / "logs"
    resume(old, ["rl.total_steps=48"], reward_fn=reward())
    assert not list(old.glob("events.out.tfevents.*")) and len(list((old / "logs").glob("events.out.*"))) == 2
    assert tensorboard_runs(tmp_path / "runs") == {"old/logs"}
    steps = [event.step for event in images(old / "logs", "eval/video")]
    assert steps[-1] == 48 and steps == sorted(set(steps))


def test_overwrite_accepts_events_files_at_the_top_and_refuses_foreign_files(runs: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(runs / "cartpole-x", run)
    RunDir(run).check_free(overwrite=True)  # events files, wandb/: all vlmrm's
    (run / "wandb").mkdir()
    RunDir(run).check_free(overwrite=True)
    (run / "notes.txt").write_text("mine")
    with pytest.raises(RunDirectoryError, match=r"holds files vlmrm did not write \(notes\.txt\)"):
        RunDir(run).check_free(overwrite=True)
