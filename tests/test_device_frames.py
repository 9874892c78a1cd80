"""Frames born as tensors stay tensors: the reward, the reward wrapper and the guard take them as they are.

This machine has no GPU; "the device" here is the CPU device of torch (and ``meta`` where only the routing is
checked). The batched envs draw with the torch renderer (``renderer: torch``), the one that runs on GPUs.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from vlmrm.envs import make_env
from vlmrm.envs.cartpole.draw import render_cartpole
from vlmrm.errors import RewardError
from vlmrm.reward import FunctionReward, VLMReward
from vlmrm.reward.preprocessing import FramePreprocessor, ImageSpec
from vlmrm.rl import VecVLMReward
from vlmrm.rl.vec_env import frames_for, score_frames
from vlmrm.rl.vec_env_factory import make_vec_env
from vlmrm.testing import ColorEmbedder
from vlmrm.training.guards import RewardGuard


@pytest.fixture(scope="module")
def tiny() -> VLMReward:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return VLMReward.from_pretrained("tiny-random", ["pole vertically upright on top of the cart"], dtype="fp32")


def cartpole_states(n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.stack([rng.uniform(-2, 2, n), np.zeros(n), rng.uniform(-1.5, 1.5, n), np.zeros(n)], 1)


def test_rewards_from_device_frames_equal_rewards_from_host_frames(tiny: VLMReward) -> None:
    """The batched env's torch frames and the single env's Pillow frames of the same states score the same."""
    states = cartpole_states(12)
    venv = make_vec_env("cartpole", 12, tiny.image_size, options={"renderer": "torch"}, vectorized=True)
    venv.reset()
    venv.sim.set_states(states)  # type: ignore[attr-defined]
    device_frames = venv.sim.render()  # type: ignore[attr-defined]
    assert isinstance(device_frames, torch.Tensor)
    env = make_env("cartpole", render_size=tiny.image_size)
    env.reset(seed=0)
    host_frames = []
    for state in states:
        env.unwrapped.set_sim_state({"state": state})  # type: ignore[attr-defined]
        host_frames.append(env.render())
    np.testing.assert_array_equal(tiny(device_frames), tiny(np.stack(host_frames)))


def test_preprocessing_keeps_a_tensor_where_it_is() -> None:
    spec = ImageSpec(16, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "squash")
    frames = torch.from_numpy(np.stack([render_cartpole(s, 16) for s in cartpole_states(3)]))
    meta = FramePreprocessor(spec, torch.device("meta"), torch.float32)(frames.to("meta"))
    assert meta.device.type == "meta" and tuple(meta.shape) == (3, 3, 16, 16)  # no trip through the host
    host = FramePreprocessor(spec, torch.device("cpu"), torch.float32)
    torch.testing.assert_close(host(frames), host(frames.numpy()))


def test_frames_go_where_the_reward_wants_them() -> None:
    frames = torch.zeros((2, 4, 4, 3), dtype=torch.uint8)
    on_cpu = frames_for(FunctionReward(lambda f: f, image_size=4), frames)
    assert isinstance(on_cpu, np.ndarray) and np.shares_memory(on_cpu, frames.numpy())  # a view, not a copy
    meta = FunctionReward(lambda f: f, image_size=4, device="meta")
    moved = frames_for(meta, frames)
    assert isinstance(moved, torch.Tensor) and moved.device.type == "meta"
    assert frames_for(meta, moved) is moved  # already there: untouched
    host = np.zeros((2, 4, 4, 3), dtype=np.uint8)
    assert frames_for(meta, host) is host  # host arrays stay host arrays (VLMReward moves them itself)


@pytest.mark.parametrize("mode", ["step", "episode"])
def test_the_reward_wrapper_scores_device_frames(mode: str) -> None:
    reward = VLMReward(ColorEmbedder(), ["red"], batch_size=5)
    received: list[object] = []

    def recording(frames: np.ndarray) -> np.ndarray:
        received.append(frames)
        return reward(frames)

    venv = VecVLMReward(
        make_vec_env("cartpole", 3, 16, episode_length=4, options={"renderer": "torch"}, vectorized=True),
        FunctionReward(recording, image_size=16),
        mode=mode,  # type: ignore[arg-type]
    )
    venv.reset()
    step_frames, rewards = [], []
    for _ in range(8):
        _, step_rewards, dones, infos = venv.step(np.zeros(3, dtype=int))
        assert isinstance(venv.last_frames, np.ndarray)  # for videos: on the host
        step_frames.append(venv.last_frames.copy())
        if mode == "step":
            rewards.append(step_rewards)
        else:
            if dones.all():
                rewards += list(np.stack([infos[i]["vlm_episode_rewards"].result() for i in range(3)], 1))
            else:  # the running episodes' frames are views of the step tensors, kept until the episode ends
                running = venv.running_episode_frames()
                assert all(isinstance(frame, torch.Tensor) for episode in running for frame in episode)
    assert all(isinstance(frames, np.ndarray) for frames in received)  # a CPU reward gets host arrays
    expected = [reward(frames) for frames in step_frames]
    np.testing.assert_allclose(np.stack(rewards), np.stack(expected), atol=1e-6)


def test_score_frames_stacks_tensor_lists_in_chunks() -> None:
    frames = [torch.full((4, 4, 3), i, dtype=torch.uint8) for i in range(7)]
    sizes: list[int] = []

    def mean(batch: np.ndarray) -> np.ndarray:
        sizes.append(len(batch))
        return batch.reshape(len(batch), -1).mean(axis=1)

    scores = score_frames(FunctionReward(mean, image_size=4), frames, max_batch_frames=3)
    np.testing.assert_array_equal(scores, np.arange(7, dtype=np.float32))
    assert sizes == [3, 3, 1]


def test_the_guard_saves_a_bad_device_frame(tmp_path: Path) -> None:
    frames = torch.full((2, 8, 8, 3), 200, dtype=torch.uint8)
    guard = RewardGuard(FunctionReward(lambda f: np.array([0.0, np.nan]), image_size=8), tmp_path)
    with pytest.raises(RewardError, match="NaN"):
        guard(frames)
    (saved,) = tmp_path.glob("*.png")
    assert saved.stat().st_size > 0


@pytest.mark.filterwarnings("ignore:vlmrm. model:UserWarning")
def test_bench_measures_the_batched_env_and_says_how_frames_were_drawn(capsys: pytest.CaptureFixture[str]) -> None:
    from vlmrm.cli.main import main

    argv = ["bench", "cartpole", "--model", "tiny-random", "--n-envs", "2", "--steps", "3", "--repeats", "1"]
    assert main([*argv, "--no-reference", "--vectorized", "--renderer", "torch"]) == 0
    out = capsys.readouterr().out
    # The model's device: auto. On a GPU CartPole's states live there too; on the CPU numpy steps them.
    drawn = "torch (state on device) on cuda" if torch.cuda.is_available() else "torch on cpu"
    assert f"frames: batched, {drawn}" in " ".join(out.split())  # the title wraps
    assert "end_to_end_over_embed_only:" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--renderer", "torch"], "add --vectorized"),
        (["--renderer", "warp", "--vectorized"], "renderer"),
        (["--vectorized", "--vec-env", "subproc"], "subproc does not apply"),
    ],
)
def test_bench_refuses_renderers_that_do_not_apply(
    extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from vlmrm.cli.main import main

    assert main(["bench", "cartpole", "--model", "tiny-random", *extra]) == 2
    assert message in capsys.readouterr().err
