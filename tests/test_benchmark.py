"""``vlmrm bench`` and the fast reward path: same rewards as the reference way, bounded memory, the CLI."""

from __future__ import annotations

import json
import re
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest

from vlmrm.benchmark import RandomActions, load_rewards, make_reference_vec_env, time_rewarded_steps
from vlmrm.cli.main import main
from vlmrm.reward import VLMReward
from vlmrm.rl import VecVLMReward
from vlmrm.rl.vec_env_factory import make_vec_env

pytestmark = pytest.mark.filterwarnings("ignore:vlmrm. model:UserWarning")

PROMPT = "pole vertically upright on top of the cart"


@pytest.fixture(scope="module")
def rewards() -> tuple[VLMReward, VLMReward]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return load_rewards("tiny-random", PROMPT, "bf16", "cpu", batch=8)


def fast_path_rewards(reward: VLMReward, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-step rewards of the fast path (episode batches scored in the background) and the frames scored."""
    venv = VecVLMReward(
        make_vec_env("cartpole", 2, reward.image_size, episode_length=12), reward, mode="episode", overlap=True
    )
    venv.reset()
    actions = RandomActions(venv, seed=0)
    frames, episodes = [], {0: [], 1: []}
    for _ in range(steps):
        _, _, dones, infos = venv.step(actions())
        frames.append(venv.last_frames)
        for i in np.flatnonzero(dones):
            episodes[int(i)].append(infos[i]["vlm_episode_rewards"])
    venv.drain()
    per_env = []
    for i in range(2):
        scored = [pending.result() for pending in episodes[i]]
        running = venv.running_episode_frames()[i]
        per_env.append(np.concatenate([*scored, reward(np.stack(running)) if running else np.zeros(0)]))
    venv.close()
    return np.stack(per_env, axis=1), np.stack(frames)


def test_fast_path_gives_the_reference_rewards_on_the_same_frames(rewards: tuple[VLMReward, VLMReward]) -> None:
    fast, reference = rewards
    assert fast.dtype != reference.dtype and fast.encoder.model is not reference.encoder.model
    # Pipeline mechanics (episode batches, chunks of 8, background thread) change nothing: fp32 vs fp32.
    fp32_fast, frames = fast_path_rewards(reference, steps=30)
    per_step = np.stack([reference(step_frames) for step_frames in frames])  # the reference way: per step
    np.testing.assert_allclose(fp32_fast, per_step, atol=1e-5)
    # The fast dtype differs from fp32 by rounding only.
    bf16_fast, bf16_frames = fast_path_rewards(fast, steps=30)
    np.testing.assert_array_equal(bf16_frames, frames)  # same seeds, same frames
    np.testing.assert_allclose(bf16_fast, per_step, atol=0.01)
    flat = frames.reshape(-1, *frames.shape[2:])
    cosine = (fast.embed_images(flat) * reference.embed_images(flat)).sum(dim=1)
    assert float(cosine.min()) > 0.99


def test_reference_env_renders_gymnasium_native_frames() -> None:
    venv = make_reference_vec_env("cartpole", 2, episode_length=10, seed=0)
    venv.reset()
    _, _, _, infos = venv.step(np.zeros(2, dtype=int))
    assert infos[0]["frame"].shape == (400, 600, 3)
    venv.close()


@pytest.mark.parametrize("mode, overlap", [("step", False), ("episode", False), ("episode", True)])
def test_peak_memory_does_not_grow_with_steps(rewards: tuple[VLMReward, VLMReward], mode: str, overlap: bool) -> None:
    """Python-heap peak (tracemalloc, which sees numpy frames) of 3N steps stays that of N steps."""
    fast, _ = rewards

    def peak(steps: int) -> int:
        venv = VecVLMReward(make_vec_env("cartpole", 2, 224, episode_length=5), fast, mode=mode, overlap=overlap)
        tracemalloc.start()
        try:
            time_rewarded_steps(venv, steps, seed=0)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            venv.close()

    peak(3)  # first-call allocations (caches, kernels) out of the way
    short, long = peak(15), peak(45)
    assert long <= 1.25 * short + 256 * 1024, (short, long)


def test_bench_cli_prints_the_two_ratios_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    args = ["cartpole", "--model", "tiny-random", "--steps", "4", "--repeats", "1", "--n-envs", "2", "--batch", "8"]
    code = main(["bench", *args, "--json", str(out)])
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"end_to_end_speedup_vs_reference_style: \d+\.\d\d", lines[-2])
    assert re.fullmatch(r"end_to_end_over_embed_only: \d+\.\d\d", lines[-1])
    data = json.loads(out.read_text())
    assert set(data["phases"]) == {
        "render_only",
        "embed_only",
        "e2e_step",
        "e2e_episode",
        "e2e_episode_overlap",
        "reference",
    }
    assert data["reference_frame_shape"] == [400, 600, 3] and data["model"]["image_size"] == 224
    assert data["best_end_to_end"] in ("e2e_step", "e2e_episode", "e2e_episode_overlap")
    for phase in data["phases"].values():
        assert len(phase["rates"]) == 1 and phase["rates"][0] > 0 and phase["peak_rss_mib"][0] > 0
    printed = float(lines[-1].split(": ")[1])
    assert printed == pytest.approx(data["end_to_end_over_embed_only"], abs=0.006)
