"""Helpers for the fault tests (test_resume, test_faults, test_bad_inputs): fast runs and log readers.

In-process runs score frames with :class:`vlmrm.testing.ColorEmbedder` (16-pixel frames, no network)
instead of a CLIP model, passed to ``train``/``resume`` as their ``reward_fn``, so a few hundred
training steps take seconds.
"""

from __future__ import annotations

import collections
import csv
import itertools
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3 import DQN

from vlmrm.run.checkpoints import replay_path, restore_replay_buffer
from vlmrm.run.run_dir import RunDir
from vlmrm.testing import ColorEmbedder, color_reward  # noqa: F401 (the tests import it from here)

ROOT = Path(__file__).parents[1]


class NaNEmbedder(ColorEmbedder):
    """A :class:`ColorEmbedder` whose ``nan_call``-th image batch embeds its first frame as NaN."""

    def __init__(self, nan_call: int):
        super().__init__()
        self.nan_call = nan_call

    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        embeddings = super().encode_images(pixel_values)
        if self.image_calls == self.nan_call:
            embeddings[0] = float("nan")
        return embeddings


def run_config(run_dir: Path, total_steps: int, **logging: Any) -> dict[str, Any]:
    """A DQN CartPole run that takes seconds with ``reward_fn=color_reward()``."""
    return {
        "env": {"name": "cartpole", "episode_length": 20},
        "reward": {"model": "tiny-random", "target_prompts": ["a red pole"]},
        "rl": {
            "algorithm": "dqn",
            "total_steps": total_steps,
            "seed": 0,
            "hyperparameters": {
                "learning_starts": 40,
                "train_freq": 8,
                "gradient_steps": 2,
                "buffer_size": 1000,
                "policy_kwargs": {"net_arch": [32]},
            },
        },
        "logging": {
            "run_dir": str(run_dir),
            "checkpoint_freq": 50,
            "video_freq": 0,
            "eval_freq": 25,
            "eval_episodes": 1,
            "keep_checkpoints": 3,
            "progress_bar": False,
            **logging,
        },
    }


def load_dqn_checkpoint(run_dir: Path, step: int) -> DQN:
    """The DQN checkpoint of ``step`` in ``run_dir`` with its replay buffer."""
    checkpoint = run_dir / "checkpoints" / f"step_{step:010d}.zip"
    model = DQN.load(checkpoint)
    restore_replay_buffer(model, replay_path(checkpoint))
    return model


def tensorboard_steps(events_dir: Path) -> dict[str, list[int]]:
    """Steps of every scalar tag over all events files of ``events_dir`` (a run's is ``RunDir.events_dir``), oldest
    file first, read with TensorBoard's EventAccumulator (one per file, without its purging of out-of-order steps)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulators = []
    for path in events_dir.glob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(path), size_guidance={"scalars": 0}, purge_orphaned_data=False)
        accumulator.Reload()
        accumulators.append(accumulator)
    accumulators.sort(key=lambda accumulator: accumulator.FirstEventTimestamp())
    steps: dict[str, list[int]] = collections.defaultdict(list)
    for accumulator in accumulators:
        for tag in accumulator.Tags()["scalars"]:
            steps[tag] += [event.step for event in accumulator.Scalars(tag)]
    return dict(steps)


def events_files(events_dir: Path) -> list[Path]:
    """The events files of ``events_dir``, oldest first (by their first event's time, not their name)."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    def started(path: Path) -> float:
        return next(iter(EventFileLoader(str(path)).Load())).wall_time

    return sorted(events_dir.glob("events.out.tfevents.*"), key=started)


def events_file_steps(path: Path) -> list[int]:
    """The steps of the scalar events in one events file."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    return [event.step for event in EventFileLoader(str(path)).Load() if event.HasField("summary")]


def csv_steps(logs_dir: Path) -> dict[str, list[int]]:
    """For every column of progress.csv, the ``step`` of the rows that have a value in it."""
    with open(logs_dir / "progress.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    steps: dict[str, list[int]] = collections.defaultdict(list)
    for row in rows:
        for column, value in row.items():
            if column != "step" and value not in ("", None):
                steps[column].append(int(row["step"]))
    return dict(steps)


def assert_no_gap_or_overlap(run_dir: Path, eval_freq: int, total_steps: int) -> None:
    """The step axis of a run's logs (its events files and ``logs/progress.csv``), however often it was interrupted
    and resumed.

    No overlap: in TensorBoard and in progress.csv, every tag's steps are strictly increasing
    (no step logged twice, nothing logged out of order). No gap: the periodic evaluation appears
    at every multiple of ``eval_freq`` below ``total_steps`` and the final one at ``total_steps``,
    each exactly once, whichever process logged it.
    """
    expected_eval = [*range(eval_freq, total_steps, eval_freq), total_steps]
    run = RunDir(run_dir)
    for source, steps in (
        ("TensorBoard", tensorboard_steps(run.events_dir)),
        ("progress.csv", csv_steps(run.logs_dir)),
    ):
        assert steps, f"{source}: nothing logged"
        for tag, tag_steps in steps.items():
            assert all(a < b for a, b in itertools.pairwise(tag_steps)), (
                f"{source}: {tag} steps overlap or go back: {tag_steps}"
            )
        assert steps["eval/env_return"] == expected_eval, f"{source}: eval steps {steps['eval/env_return']}"
        assert max(max(s) for s in steps.values()) == total_steps


def frame_of_png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))
