"""Each reward belongs to the frame its own step rendered: single env, vector env, replay buffer."""

from __future__ import annotations

import pickle
import threading

import numpy as np
import pytest
from stable_baselines3 import DQN, SAC
from stable_baselines3.common.vec_env import DummyVecEnv

from vlmrm.reward import FunctionReward, VLMReward
from vlmrm.rl import RelabelingReplayBuffer, RenderFrameInInfo, VecVLMReward, VLMRewardWrapper
from vlmrm.rl.vec_env import PendingRewards
from vlmrm.testing import ColorEmbedder, StepColorEnv, color_reward_reference

RED = (1.0, 0.0, 0.0)


def expected_reward(t: int, env_id: int) -> float:
    return float(color_reward_reference(StepColorEnv.frame_for(t, env_id)[None], RED)[0])


def color_reward() -> VLMReward:
    return VLMReward(ColorEmbedder(), ["red"], batch_size=4)


def make_venv(lengths: list[int], continuous: bool = False) -> DummyVecEnv:
    return DummyVecEnv(
        [lambda i=i, n=n: RenderFrameInInfo(StepColorEnv(i, n, continuous=continuous)) for i, n in enumerate(lengths)]
    )


def test_single_env_wrapper() -> None:
    env = VLMRewardWrapper(StepColorEnv(env_id=2, length=4), color_reward())
    env.reset(seed=0)
    total = 0.0
    for t in range(1, 5):
        _, reward, terminated, _, info = env.step(0)
        assert reward == pytest.approx(expected_reward(t, 2), abs=1e-6)
        assert info["env_reward"] == t
        total += reward
    assert terminated
    assert info["vlm_episode"]["vlm_return"] == pytest.approx(total, abs=1e-5)
    assert info["vlm_episode"]["env_return"] == 10 and info["vlm_episode"]["length"] == 4


def test_vec_env_step_mode_scores_all_envs_in_one_batch() -> None:
    reward = color_reward()
    reward.batch_size = 64
    venv = VecVLMReward(make_venv([3, 4, 5]), reward, mode="step")
    venv.reset()
    steps = np.zeros(3, dtype=int)
    for _ in range(12):
        calls_before = reward.encoder.image_calls
        _, rewards, dones, infos = venv.step(np.zeros(3, dtype=int))
        assert reward.encoder.image_calls == calls_before + 1
        steps += 1
        for i in range(3):
            # The frame of the step that ends an episode is the terminal state, not the reset state.
            assert rewards[i] == pytest.approx(expected_reward(steps[i], i), abs=1e-6)
            assert infos[i]["env_reward"] == steps[i]
            assert "frame" not in infos[i]
        steps[dones] = 0


def test_vec_env_episode_mode_returns_whole_episodes() -> None:
    venv = VecVLMReward(make_venv([3, 5]), color_reward(), mode="episode")
    venv.reset()
    seen = {0: 0, 1: 0}
    for _ in range(15):
        _, rewards, dones, infos = venv.step(np.zeros(2, dtype=int))
        for i in range(2):
            if dones[i]:
                pending = infos[i]["vlm_episode_rewards"]
                assert pending.done()  # scored inline, at once
                episode = pending.result()
                length = [3, 5][i]
                np.testing.assert_allclose(episode, [expected_reward(t, i) for t in range(1, length + 1)], atol=1e-6)
                assert rewards[i] == pytest.approx(episode[-1])
                assert infos[i]["vlm_episode"]["vlm_return"] == pytest.approx(float(episode.sum()), abs=1e-5)
                seen[i] += 1
            else:
                assert rewards[i] == 0.0
    assert seen == {0: 5, 1: 3}
    assert venv.pending_frames() == 0


def test_episode_mode_batches_all_finished_episodes_together() -> None:
    reward = color_reward()
    reward.batch_size = 1000
    venv = VecVLMReward(make_venv([4, 4, 4]), reward, mode="episode")
    venv.reset()
    for _ in range(4):
        venv.step(np.zeros(3, dtype=int))
    assert reward.encoder.image_calls == 1  # 12 frames of 3 episodes, one model call


def assert_rewards_match_their_frames(buffer: RelabelingReplayBuffer, lengths: list[int], steps: int) -> None:
    """Every ready transition holds the reward of the frame that followed it; the rest hold the placeholder 0.

    ``next_obs`` of a transition says which frame followed it: ``(t, env_id)``. Only the running
    episode of each env may still wait for its rewards, and samples carry the same rewards.
    """
    n_envs = len(lengths)
    checked = 0
    for pos in range(buffer.pos):
        for env in range(n_envs):
            t, env_id = buffer.next_observations[pos, env]
            assert env_id == env
            if buffer.ready[pos, env]:
                assert buffer.rewards[pos, env] == pytest.approx(expected_reward(int(t), env), abs=1e-6)
                checked += 1
            else:
                assert buffer.rewards[pos, env] == 0.0
    assert checked >= n_envs * steps - sum(lengths)
    samples = buffer.sample(256)
    t, env_id = samples.next_observations[:, 0].cpu().numpy(), samples.next_observations[:, 1].cpu().numpy()
    expected = [expected_reward(int(a), int(b)) for a, b in zip(t, env_id, strict=True)]
    np.testing.assert_allclose(samples.rewards[:, 0].cpu().numpy(), expected, atol=1e-6)


@pytest.mark.parametrize("algorithm", ["sac", "dqn"])
def test_relabelled_rewards_land_on_their_own_transitions(algorithm: str) -> None:
    lengths = [3, 4, 6]
    venv = VecVLMReward(make_venv(lengths, continuous=algorithm == "sac"), color_reward(), mode="episode")
    cls = SAC if algorithm == "sac" else DQN
    model = cls(
        "MlpPolicy",
        venv,
        replay_buffer_class=RelabelingReplayBuffer,
        learning_starts=10_000,  # collect only: the test inspects the buffer
        buffer_size=1000,
        seed=0,
    )
    model.learn(total_timesteps=3 * 40)
    buffer = model.replay_buffer
    assert isinstance(buffer, RelabelingReplayBuffer)
    assert_rewards_match_their_frames(buffer, lengths, steps=40)


def test_sampling_before_any_episode_ends_is_an_error() -> None:
    venv = VecVLMReward(make_venv([50], continuous=True), color_reward(), mode="episode")
    model = SAC("MlpPolicy", venv, replay_buffer_class=RelabelingReplayBuffer, learning_starts=10_000, seed=0)
    model.learn(total_timesteps=5)
    with pytest.raises(RuntimeError, match="learning_starts"):
        model.replay_buffer.sample(4)


# -- episode mode with overlap: episodes are scored in a background thread, rewards land later --


class GatedReward:
    """A reward function that waits for ``gate`` before scoring, so rewards arrive many steps late."""

    def __init__(self, reward: VLMReward):
        self.reward = reward
        self.batch_size = reward.batch_size
        self.gate = threading.Event()
        self.calls: list[int] = []

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        assert self.gate.wait(timeout=30), "the test never opened the gate"
        self.calls.append(len(frames))
        return self.reward(frames)


def test_overlapped_episode_mode_returns_whole_episodes_later() -> None:
    venv = VecVLMReward(make_venv([3, 5]), color_reward(), mode="episode", overlap=True)
    venv.reset()
    pending: dict[int, list[PendingRewards]] = {0: [], 1: []}
    reported: dict[int, list[dict]] = {0: [], 1: []}
    for _ in range(15):
        _, rewards, dones, infos = venv.step(np.zeros(2, dtype=int))
        assert (rewards == 0.0).all()  # every reward is a placeholder until the episode is scored
        for i in range(2):
            if dones[i]:
                assert isinstance(infos[i]["vlm_episode_rewards"], PendingRewards)
                pending[i].append(infos[i]["vlm_episode_rewards"])
            if "vlm_episode" in infos[i]:
                reported[i].append(infos[i]["vlm_episode"])
    venv.drain()
    assert venv.in_flight_frames() == 0
    for i, length in enumerate([3, 5]):
        assert len(pending[i]) == 15 // length
        for episode in pending[i]:
            assert len(episode) == length
            np.testing.assert_allclose(
                episode.result(), [expected_reward(t, i) for t in range(1, length + 1)], atol=1e-6
            )
        # Returns are reported in the info of a later step of the same env, in order.
        for stats, episode in zip(reported[i], pending[i], strict=False):
            assert stats["vlm_return"] == pytest.approx(float(episode.result().sum()), abs=1e-5)
            assert stats["length"] == length and stats["env_return"] == length * (length + 1) / 2
    venv.close()


def test_overlap_needs_episode_mode() -> None:
    with pytest.raises(ValueError, match="overlap"):
        VecVLMReward(make_venv([3]), color_reward(), mode="step", overlap=True)


def test_background_scorer_batches_queued_episodes_together() -> None:
    gated = GatedReward(color_reward())
    gated.batch_size = 100
    venv = VecVLMReward(make_venv([4, 4, 4]), gated, mode="episode", overlap=True)
    venv.reset()
    for _ in range(8):  # two episodes per env, all queued behind the closed gate
        venv.step(np.zeros(3, dtype=int))
    gated.gate.set()
    venv.drain()
    # The first episode may be taken alone before the others arrive; the rest go together.
    assert sum(gated.calls) == 24 and len(gated.calls) <= 2
    venv.close()


@pytest.mark.parametrize("algorithm", ["sac", "dqn"])
def test_late_rewards_land_on_their_own_transitions(algorithm: str) -> None:
    lengths = [3, 4, 6]
    gated = GatedReward(color_reward())
    venv = VecVLMReward(
        make_venv(lengths, continuous=algorithm == "sac"),
        gated,
        mode="episode",
        overlap=True,
        max_in_flight_frames=10_000,
    )
    cls = SAC if algorithm == "sac" else DQN
    model = cls(
        "MlpPolicy", venv, replay_buffer_class=RelabelingReplayBuffer, learning_starts=10_000, buffer_size=1000, seed=0
    )
    model.learn(total_timesteps=3 * 40)
    buffer = model.replay_buffer
    assert isinstance(buffer, RelabelingReplayBuffer)
    assert not buffer.ready.any()  # nothing scored yet: every finished episode is in flight
    gated.gate.set()
    assert buffer.receive_rewards(wait=True) == 0
    assert_rewards_match_their_frames(buffer, lengths, steps=40)
    venv.close()


def test_late_rewards_skip_positions_the_ring_buffer_overwrote() -> None:
    gated = GatedReward(color_reward())
    venv = VecVLMReward(
        make_venv([5], continuous=True), gated, mode="episode", overlap=True, max_in_flight_frames=10_000
    )
    model = SAC(
        "MlpPolicy", venv, replay_buffer_class=RelabelingReplayBuffer, learning_starts=10_000, buffer_size=8, seed=0
    )
    model.learn(total_timesteps=23)  # episodes end at 5, 10, 15, 20; positions 0-7 are rewritten twice
    buffer = model.replay_buffer
    gated.gate.set()
    buffer.receive_rewards(wait=True)
    for pos in range(8):
        t = int(buffer.next_observations[pos, 0, 0])
        if buffer.ready[pos, 0]:
            assert buffer.rewards[pos, 0] == pytest.approx(expected_reward(t, 0), abs=1e-6)
    # Steps 16-20 (episode 4) sit at positions 7, 0-3 and are ready; steps 21-23 (running) at 4-6 are not:
    # the late rewards of episodes 1-3, whose positions were overwritten, were dropped.
    np.testing.assert_array_equal(buffer.ready[:, 0], [True] * 4 + [False] * 3 + [True])
    assert (buffer.rewards[4:7, 0] == 0.0).all()
    venv.close()


def test_sample_waits_for_late_rewards_and_pickling_resolves_them() -> None:
    reward = color_reward()
    venv = VecVLMReward(make_venv([4], continuous=True), reward, mode="episode", overlap=True)
    model = SAC("MlpPolicy", venv, replay_buffer_class=RelabelingReplayBuffer, learning_starts=10_000, seed=0)
    model.learn(total_timesteps=6)
    buffer = model.replay_buffer
    samples = buffer.sample(8)  # the first episode may still be in flight: sample waits for it
    assert set(samples.next_observations[:, 0].cpu().numpy().astype(int)) <= {1, 2, 3, 4}
    restored = pickle.loads(pickle.dumps(buffer))
    assert restored.num_ready() == 4 and restored.receive_rewards() == 0
    venv.close()


def test_scorer_errors_reach_the_training_loop() -> None:
    def broken(frames: np.ndarray) -> np.ndarray:
        raise ValueError("model exploded")

    venv = VecVLMReward(make_venv([2]), FunctionReward(broken, image_size=16), mode="episode", overlap=True)
    venv.reset()
    with pytest.raises(ValueError, match="model exploded"):
        for _ in range(10):
            venv.step(np.zeros(1, dtype=int))
            venv.drain()
    venv.close()
