"""The learning study's cheap version: the shipped CartPole preset learns from a pixel oracle (one seed, short).

The full study (3 seeds, the preset's steps) is ``benchmarks/learning_study.py``; docs/learning.md shows it.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from learning_oracles import cartpole_upright, mountaincar_progress  # noqa: E402
from learning_study import study_overrides, train_seed  # noqa: E402

from vlmrm.envs.cartpole.draw import render_cartpole  # noqa: E402
from vlmrm.envs.mountaincar.draw import render_mountaincar  # noqa: E402


@pytest.mark.parametrize("size", [64, 224])
def test_the_cartpole_oracle_reads_the_tilt_from_the_pixels(size: int) -> None:
    for theta in np.linspace(-math.pi, math.pi, 37):
        frame = render_cartpole(np.array([0.0, 0.0, theta, 0.0]), size)
        assert cartpole_upright(frame[None])[0] == pytest.approx(1 - 2 * abs(theta) / math.pi, abs=0.08)
    # A pole the frame cuts off (the cart at the track's end, the pole leaning out) is not rewarded.
    assert cartpole_upright(render_cartpole(np.array([-2.3, 0.0, -1.2, 0.0]), size)[None])[0] == -1


def test_the_mountaincar_oracle_grows_towards_the_flag() -> None:
    positions = np.linspace(-1.2, 0.45, 12)
    rewards = [mountaincar_progress(render_mountaincar(float(x), 64)[None])[0] for x in positions]
    assert np.all(np.diff(rewards) > 0) and rewards[-1] > 0.85


@pytest.mark.slow
def test_the_cartpole_preset_learns_from_the_pixel_oracle(tmp_path: Path) -> None:
    """Random scores 0 %; the preset succeeds from 15,000 steps here (docs/learning.md).

    64 px frames (the oracle reads the tilt at any size) make it six times cheaper than the study's
    224 px, and 30,000 steps leave room for the CPU: float rounding differs between CPUs, and with it
    the step at which a seed first succeeds.
    """
    overrides = study_overrides(seed=0, steps=30_000, eval_freq=5_000, eval_episodes=5)
    result = train_seed("cartpole", 0, tmp_path, [*overrides, "env.render_size=64"])
    assert result["best"]["success_rate"] >= 0.6, result["history"]
    assert max(entry["step_success_rate"] for entry in result["history"]) >= 0.8
