"""Evaluation tools on the humanoid: pose-interpolation landscapes and detector-labelled datasets."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vlmrm.envs import make_env
from vlmrm.envs.humanoid.options import interpolate_qpos
from vlmrm.envs.humanoid.success import humanoid_pose
from vlmrm.envs.humanoid.tasks import BASELINE_PROMPT, TASK_PROMPTS
from vlmrm.evaluation.dataset import collect_dataset, load_dataset, task_sentence
from vlmrm.evaluation.epic_study import labelled_frames
from vlmrm.evaluation.landscape import default_prompts, make_sweep, run_landscape
from vlmrm.reward import VLMReward
from vlmrm.testing import ColorEmbedder

SIZE = 48


@pytest.mark.slow
def test_humanoid_sweep_runs_from_the_start_pose_to_the_success_pose(tmp_path: Path) -> None:
    sweep = make_sweep("humanoid", points=3, task="lotus")
    np.testing.assert_allclose(sweep.values, [0.0, 0.5, 1.0])
    assert sweep.goal == 1.0 and "lotus" in sweep.variable
    frames = sweep.frames(SIZE)
    assert frames.shape == (3, SIZE, SIZE, 3) and frames.dtype == np.uint8

    env = make_env("humanoid", render_size=SIZE)
    env.reset(seed=0)
    for t, frame in zip((0.0, 1.0), (frames[0], frames[-1]), strict=True):
        qpos = interpolate_qpos(humanoid_pose("lotus", "start"), humanoid_pose("lotus", "success"), t)
        env.unwrapped.set_qpos(qpos)
        np.testing.assert_array_equal(env.render(), frame)
    env.close()
    assert not np.array_equal(frames[0], frames[-1])

    models = {"color": VLMReward(ColorEmbedder(size=SIZE), ["a red robot"], [BASELINE_PROMPT])}
    csv_path, png_path, _ = run_landscape("humanoid", models, [0.0, 1.0], tmp_path, points=3, task="lotus")
    with csv_path.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6 and {r["env"] for r in rows} == {"humanoid"}
    assert png_path.stat().st_size > 5_000


def test_humanoid_default_prompts_are_the_papers() -> None:
    assert default_prompts("humanoid", "kneeling") == ([TASK_PROMPTS["kneeling"]], [BASELINE_PROMPT])
    assert task_sentence("lotus", "humanoid") == TASK_PROMPTS["lotus"]


def test_humanoid_dataset_with_detector_labels(tmp_path: Path) -> None:
    dataset = collect_dataset(
        "humanoid", tmp_path / "h", episodes=1, episode_length=4, render_size=SIZE, task="standing",
        label_with_detector=True,
    )  # fmt: skip
    assert dataset.metadata["env_options"] == {"task": "standing"}
    assert len(dataset.records) == 4
    env = make_env("humanoid", render_size=SIZE)
    env.reset(seed=0)
    for record in load_dataset(tmp_path / "h").records:
        assert isinstance(record["is_success"], bool)
        assert len(record["qpos"]) == env.unwrapped.model.nq and len(record["qvel"]) == env.unwrapped.model.nv
        env.unwrapped.set_sim_state(record)
        stored = np.asarray(Image.open(tmp_path / "h" / record["frame"]).convert("RGB")).astype(int)
        difference = np.abs(env.render().astype(int) - stored)
        # The same state renders the same picture, up to rounding of the GL rasteriser (a few levels on a few
        # pixels: the paper's fixed camera sees the body at other pixels than the tracking one did, up to 3).
        assert difference.max() <= 3 and (difference > 0).mean() < 0.01
    env.close()
    # The humanoid starts standing, so the standing detector says yes at first.
    assert dataset.records[0]["is_success"] is True
    if len({r["is_success"] for r in dataset.records}) == 1:
        with pytest.raises(Exception, match="both yes and no"):
            labelled_frames(dataset, "detector")
