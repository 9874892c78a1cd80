"""The training matrix: every env and renderer a GPU user runs, in each scoring mode, trains to a complete
``summary.json``.

On a CPU (CI) it runs with tiny models: the CPU half of the proof. On a CUDA machine the same tests train with
the model on the GPU, the batched envs drawing there (the GPU check scripts run this file; they may set
``VLMRM_MATRIX_MODEL`` to a bigger random-weight model). The Humanoid on Warp needs an NVIDIA GPU and
``vlmrm[warp]``, and skips elsewhere with the reason.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

import vlmrm
from vlmrm.config import config_from_dict
from vlmrm.envs.humanoid.warp_support import warp_problem

MODEL = os.environ.get("VLMRM_MATRIX_MODEL", "tiny-random")
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

ENVS: dict[str, dict[str, Any]] = {
    "cartpole-batched-torch": {
        "env": {"name": "cartpole", "vectorized": True, "options": {"renderer": "torch"}},
        "rl": {"algorithm": "dqn"},
    },
    "mountaincar-batched-torch": {
        "env": {"name": "mountaincar", "vectorized": True, "options": {"renderer": "torch"}},
        "rl": {"algorithm": "sac"},
    },
    "mountaincar-textured-batched-torch": {
        "env": {"name": "mountaincar", "vectorized": True, "options": {"renderer": "torch", "textured": True}},
        "rl": {"algorithm": "sac"},
    },
    "humanoid-opengl-subproc": {
        "env": {"name": "humanoid", "vectorized": False, "options": {"renderer": "mujoco"}},
        "rl": {"algorithm": "sac", "vec_env": "subproc"},
    },
    "humanoid-batched-warp": {
        "env": {"name": "humanoid", "vectorized": True, "options": {"renderer": "warp"}},
        "rl": {"algorithm": "sac"},
    },
}
MODES: dict[str, dict[str, Any]] = {
    "step": {"episode_end_batching": False},
    "episode": {"episode_end_batching": True, "overlap_scoring": False},
    "overlap": {"episode_end_batching": True, "overlap_scoring": True},
}
SUMMARY_KEYS = {
    "env",
    "model",
    "algorithm",
    "total_steps",
    "steps_per_second",
    "episode_end_batching",
    "overlap_scoring",
    "eval_episodes",
    "eval_env_return",
    "eval_vlm_return",
    "eval_success_rate",
    "eval_history",
    "final_checkpoint",
}


@pytest.mark.slow
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("env", list(ENVS))
def test_every_env_and_scoring_mode_trains_to_a_complete_summary(env: str, mode: str, tmp_path: Path) -> None:
    if env.endswith("warp") and (problem := warp_problem(torch.device(DEVICE))) is not None:
        pytest.skip(f"renderer: warp cannot render here: {problem}")
    n_envs, episode_length, total_steps = 2, 5, 30
    data: dict[str, Any] = {
        "env": {**ENVS[env]["env"], "episode_length": episode_length},
        "reward": {"model": MODEL, "device": DEVICE, **MODES[mode]},
        "rl": {
            **ENVS[env]["rl"],
            "n_envs": n_envs,
            "total_steps": total_steps,
            # a few gradient steps after the first episodes end, with small batches
            "hyperparameters": {"learning_starts": n_envs * episode_length, "batch_size": 8, "buffer_size": 1000},
        },
        "logging": {"eval_freq": 20, "eval_episodes": 1, "checkpoint_freq": 20, "video_freq": 0, "progress_bar": False},
    }
    run_dir = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # random weights; SB3 on a GPU
        result = vlmrm.train(config_from_dict(data), run_dir=run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary == result.summary
    assert set(summary) >= SUMMARY_KEYS, f"missing: {SUMMARY_KEYS - set(summary)}"
    assert summary["total_steps"] >= total_steps
    assert summary["episode_end_batching"] is (mode != "step") and summary["overlap_scoring"] is (mode == "overlap")
    assert summary["eval_episodes"] == 1 and len(summary["eval_history"]) >= 2
    for key in ("eval_env_return", "eval_vlm_return", "steps_per_second"):
        assert math.isfinite(summary[key]), f"{key}: {summary[key]}"
    assert (run_dir / summary["final_checkpoint"]).is_file()
