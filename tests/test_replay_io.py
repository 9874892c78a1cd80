"""Replay buffers in checkpoints: only the filled part is written, and it comes back exactly."""

from __future__ import annotations

import pickle
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pytest
from gymnasium import spaces
from stable_baselines3 import DQN
from stable_baselines3.common.buffers import ReplayBuffer

from vlmrm.errors import CheckpointError
from vlmrm.rl.buffers import RelabelingReplayBuffer
from vlmrm.rl.replay_io import load_replay_buffer, save_replay_buffer
from vlmrm.rl.vec_env import EPISODE_REWARDS_KEY, PendingRewards
from vlmrm.run.checkpoints import (
    checkpoint_path,
    prune_checkpoints,
    remove_orphan_companions,
    replay_path,
    restore_replay_buffer,
    set_aside,
    verify_checkpoint,
    write_checkpoint,
)
from vlmrm.training.resume import drop_unfinished_episodes

OBS = spaces.Box(-np.inf, np.inf, shape=(5,), dtype=np.float64)
ACT = spaces.Box(-1, 1, shape=(2,), dtype=np.float32)
ARRAYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")


def make(cls: type[ReplayBuffer], size: int, n_envs: int = 2, **kwargs) -> ReplayBuffer:
    return cls(size, OBS, ACT, device="cpu", n_envs=n_envs, **kwargs)


def fill(buffer: ReplayBuffer, adds: int, seed: int = 0, infos: list[list[dict]] | None = None) -> None:
    """``adds`` random transitions (one per env each); ``infos[i]`` are those of the ``i``-th add."""
    rng = np.random.default_rng(seed)
    n = buffer.n_envs
    for i in range(adds):
        buffer.add(
            rng.normal(size=(n, 5)),
            rng.normal(size=(n, 5)),
            rng.uniform(-1, 1, size=(n, 2)).astype(np.float32),
            rng.normal(size=n).astype(np.float32),
            rng.integers(0, 2, size=n).astype(np.float32),
            infos[i] if infos else [{"TimeLimit.truncated": bool(rng.integers(0, 2))} for _ in range(n)],
        )


def assert_same(a: ReplayBuffer, b: ReplayBuffer, names: tuple[str, ...] = ARRAYS) -> None:
    assert (a.pos, a.full) == (b.pos, b.full)
    for name in names:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


@pytest.mark.parametrize(("adds", "full"), [(0, False), (37, False), (130, True)])
def test_a_replay_buffer_round_trips(tmp_path: Path, adds: int, full: bool) -> None:
    saved = make(ReplayBuffer, 200)  # 100 positions of 2 envs
    fill(saved, adds)
    assert saved.full == full
    info = save_replay_buffer(saved, tmp_path / "b.replay")
    assert info.transitions == (200 if full else 2 * adds) and info.size == (tmp_path / "b.replay").stat().st_size
    restored = make(ReplayBuffer, 200)
    assert load_replay_buffer(restored, tmp_path / "b.replay") == info.transitions
    assert_same(saved, restored)


def test_a_memory_optimised_buffer_keeps_the_last_next_observation(tmp_path: Path) -> None:
    kwargs = dict(optimize_memory_usage=True, handle_timeout_termination=False)
    saved = make(ReplayBuffer, 100, n_envs=1, **kwargs)
    fill(saved, 10)
    save_replay_buffer(saved, tmp_path / "b.replay")
    restored = make(ReplayBuffer, 100, n_envs=1, **kwargs)
    load_replay_buffer(restored, tmp_path / "b.replay")
    assert_same(saved, restored, ("observations", "actions", "rewards", "dones", "timeouts"))
    assert np.any(restored.observations[10] != 0)  # the 10th transition's next observation


def test_the_file_grows_with_the_transitions_held_not_the_buffer_size(tmp_path: Path) -> None:
    buffer = make(ReplayBuffer, 100_000, n_envs=1)
    fill(buffer, 100)
    payload = sum(getattr(buffer, name)[:100].nbytes for name in ARRAYS)
    info = save_replay_buffer(buffer, tmp_path / "b.replay")
    assert info.size < 2 * payload
    assert info.size < sum(getattr(buffer, name).nbytes for name in ARRAYS) / 100


def test_a_buffer_of_another_configuration_is_refused(tmp_path: Path) -> None:
    saved = make(ReplayBuffer, 200)
    fill(saved, 3)
    save_replay_buffer(saved, tmp_path / "b.replay")
    with pytest.raises(ValueError, match="buffer_size=100; this one has 50"):
        load_replay_buffer(make(ReplayBuffer, 100), tmp_path / "b.replay")
    with pytest.raises(ValueError, match="buffer='ReplayBuffer'; this one has 'RelabelingReplayBuffer'"):
        load_replay_buffer(make(RelabelingReplayBuffer, 200), tmp_path / "b.replay")
    data = (tmp_path / "b.replay").read_bytes()
    (tmp_path / "cut.replay").write_bytes(data[:-7])
    with pytest.raises(ValueError, match="the file ends inside array timeouts"):
        load_replay_buffer(make(ReplayBuffer, 200), tmp_path / "cut.replay")
    (tmp_path / "other.replay").write_bytes(pickle.dumps(saved))
    with pytest.raises(ValueError, match="not a vlmrm replay buffer file"):
        load_replay_buffer(make(ReplayBuffer, 200), tmp_path / "other.replay")


def episode_end(rewards: np.ndarray | PendingRewards) -> dict:
    return {EPISODE_REWARDS_KEY: rewards if isinstance(rewards, PendingRewards) else PendingRewards.known(rewards)}


def test_relabelling_state_round_trips_and_unfinished_episodes_are_dropped(tmp_path: Path) -> None:
    """Env 0: an episode of 3 ends with known rewards, one of 4 ends in flight, one of 2 is running.
    Env 1: an episode of 4 ends in flight, one of 5 is running."""
    job: Future = Future()
    infos = [[{}, {}], [{}, {}], [episode_end(np.array([1, 2, 3], np.float32)), {}]]
    infos += [[{}, episode_end(PendingRewards(job, 0, 4))], [{}, {}], [{}, {}]]
    infos += [[episode_end(PendingRewards(job, 4, 8)), {}], [{}, {}], [{}, {}]]
    saved = make(RelabelingReplayBuffer, 20)  # 10 positions of 2 envs
    fill(saved, len(infos), infos=infos)
    job.set_result(np.arange(10, 18, dtype=np.float32))
    assert saved.num_ready() == 3 and len(saved._in_flight) == 2

    save_replay_buffer(saved, tmp_path / "b.replay")  # waits for the rewards in flight
    assert saved.num_ready() == 3 + 4 + 4 and saved._in_flight == []
    restored = make(RelabelingReplayBuffer, 20)
    restored.ready[:] = True  # whatever the target held must not survive
    load_replay_buffer(restored, tmp_path / "b.replay")
    assert_same(saved, restored, (*ARRAYS, "ready", "_written_by"))
    assert restored._adds == saved._adds == 9 and restored._in_flight == []
    assert restored._pending == saved._pending == [[7, 8], [4, 5, 6, 7, 8]]
    np.testing.assert_array_equal(restored.rewards[0:4, 1], [10, 11, 12, 13])
    np.testing.assert_array_equal(restored.rewards[3:7, 0], [14, 15, 16, 17])

    assert drop_unfinished_episodes(restored) == 7
    assert restored._pending == [[], []] and restored.num_ready() == 11
    # A fresh episode of 2 (positions 9, then 0 as the buffer wraps) gets its 2 rewards.
    fill(restored, 2, infos=[[{}, {}], [episode_end(np.array([5, 6], np.float32)), {}]])
    np.testing.assert_array_equal(np.flatnonzero(restored.ready[:, 0]), [0, 1, 2, 3, 4, 5, 6, 9])
    np.testing.assert_array_equal(restored.rewards[[9, 0], 0], [5, 6])


def dqn(**kwargs) -> DQN:
    """A DQN whose buffer holds 60 CartPole transitions (no gradient step)."""
    model = DQN("MlpPolicy", "CartPole-v1", buffer_size=5000, learning_starts=10**6, seed=0, device="cpu", **kwargs)
    model.learn(60)
    return model


def test_checkpoints_write_the_compact_file_and_reject_a_damaged_one(tmp_path: Path) -> None:
    model = dqn()
    path = checkpoint_path(tmp_path, 60)
    write_checkpoint(model, path, {"step": 60}, save_replay_buffer=True)
    replay = replay_path(path)
    assert replay.name == "step_0000000060.replay" and sorted(p.name for p in tmp_path.iterdir()) == [
        "step_0000000060.replay",
        "step_0000000060.zip",
    ]
    assert verify_checkpoint(path).replay == replay
    loaded = DQN.load(path, device="cpu")
    assert restore_replay_buffer(loaded, replay) == 60
    assert_same(model.replay_buffer, loaded.replay_buffer)

    data = replay.read_bytes()
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x10
    replay.write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match=r"its replay buffer step_0000000060.replay does not match its SHA-256"):
        verify_checkpoint(path)
    replay.write_bytes(data[:-100])
    with pytest.raises(CheckpointError, match=rf"has {len(data) - 100} bytes, not {len(data)} \(truncated\)"):
        verify_checkpoint(path)


class OtherBuffer(ReplayBuffer):
    """A buffer the compact format does not know (a subclass may hold more state)."""


def test_other_buffers_and_old_checkpoints_use_the_pickle(tmp_path: Path) -> None:
    model = dqn(replay_buffer_class=OtherBuffer)
    path = checkpoint_path(tmp_path, 60)
    write_checkpoint(model, path, {"step": 60}, save_replay_buffer=True)
    legacy = replay_path(path, pickled=True)
    assert legacy.name == "step_0000000060.replay.pkl" and not replay_path(path).exists()
    assert verify_checkpoint(path).replay == legacy
    loaded = DQN.load(path, device="cpu")
    assert restore_replay_buffer(loaded, legacy) == 60
    assert isinstance(loaded.replay_buffer, OtherBuffer)
    assert_same(model.replay_buffer, loaded.replay_buffer)
    # The same step written again in the compact format does not leave the pickle behind.
    write_checkpoint(dqn(), path, {"step": 60}, save_replay_buffer=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_0000000060.replay", "step_0000000060.zip"]


def test_pruning_orphans_and_set_aside_handle_both_suffixes(tmp_path: Path) -> None:
    for step in (1, 2, 3, 4):
        checkpoint_path(tmp_path, step).write_bytes(b"zip")
    replay_path(checkpoint_path(tmp_path, 1), pickled=True).write_bytes(b"old")
    replay_path(checkpoint_path(tmp_path, 2)).write_bytes(b"new")
    replay_path(checkpoint_path(tmp_path, 3), pickled=True).write_bytes(b"old")
    replay_path(checkpoint_path(tmp_path, 4)).write_bytes(b"new")
    replay_path(checkpoint_path(tmp_path, 5)).write_bytes(b"orphan")
    replay_path(checkpoint_path(tmp_path, 6), pickled=True).write_bytes(b"orphan")

    prune_checkpoints(tmp_path, keep=2)
    removed = remove_orphan_companions(tmp_path)
    assert sorted(p.name for p in removed) == ["step_0000000005.replay", "step_0000000006.replay.pkl"]
    set_aside(checkpoint_path(tmp_path, 3))
    set_aside(checkpoint_path(tmp_path, 4))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "step_0000000003.replay.pkl.corrupt",
        "step_0000000003.zip.corrupt",
        "step_0000000004.replay.corrupt",
        "step_0000000004.zip.corrupt",
    ]
