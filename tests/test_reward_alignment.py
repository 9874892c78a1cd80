"""Each reward belongs to the frame its own step rendered: single env, vector env, replay buffer."""

from __future__ import annotations

import numpy as np
import pytest
from stable_baselines3 import DQN, SAC
from stable_baselines3.common.vec_env import DummyVecEnv

from conftest import ColorEmbedder, StepColorEnv, color_reward_reference
from vlmrm.reward import VLMReward
from vlmrm.rl import RelabelingReplayBuffer, RenderFrameInInfo, VecVLMReward, VLMRewardWrapper

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
                episode = infos[i]["vlm_episode_rewards"]
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
    checked = 0
    for pos in range(buffer.pos):
        for env in range(3):
            t, env_id = buffer.next_observations[pos, env]
            # next_obs of a transition says which frame followed it: (t, env_id).
            assert env_id == env
            if buffer.ready[pos, env]:
                assert buffer.rewards[pos, env] == pytest.approx(expected_reward(int(t), env), abs=1e-6)
                checked += 1
            else:
                # Only the running episode of each env may still wait for its rewards.
                assert buffer.rewards[pos, env] == 0.0
    assert checked >= 3 * 40 - sum(lengths)
    samples = buffer.sample(256)
    t, env_id = samples.next_observations[:, 0].numpy(), samples.next_observations[:, 1].numpy()
    expected = [expected_reward(int(a), int(b)) for a, b in zip(t, env_id, strict=True)]
    np.testing.assert_allclose(samples.rewards[:, 0].numpy(), expected, atol=1e-6)


def test_sampling_before_any_episode_ends_is_an_error() -> None:
    venv = VecVLMReward(make_venv([50], continuous=True), color_reward(), mode="episode")
    model = SAC("MlpPolicy", venv, replay_buffer_class=RelabelingReplayBuffer, learning_starts=10_000, seed=0)
    model.learn(total_timesteps=5)
    with pytest.raises(RuntimeError, match="learning_starts"):
        model.replay_buffer.sample(4)
