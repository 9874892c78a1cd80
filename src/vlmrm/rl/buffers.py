"""A replay buffer that receives each episode's VLM rewards when the episode ends.

With episode-end batching the rewards stored for the transitions of a running episode are
placeholders. This buffer remembers where each env's running episode was stored; when
``infos[i]["vlm_episode_rewards"]`` arrives with the episode's last transition, it writes the
rewards in place and marks those transitions ready. ``sample`` draws only ready transitions, so
no gradient step ever sees a placeholder.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.vec_env import VecNormalize

from vlmrm.rl.vec_env import EPISODE_REWARDS_KEY


class RelabelingReplayBuffer(ReplayBuffer):
    """A :class:`~stable_baselines3.common.buffers.ReplayBuffer` for episode-end VLM rewards."""

    def __init__(self, *args: Any, **kwargs: Any):
        if kwargs.get("optimize_memory_usage"):
            raise ValueError("RelabelingReplayBuffer does not support optimize_memory_usage=True")
        super().__init__(*args, **kwargs)
        self.ready = np.zeros((self.buffer_size, self.n_envs), dtype=bool)
        self._pending: list[list[int]] = [[] for _ in range(self.n_envs)]

    def add(
        self,
        obs: np.ndarray,
        next_obs: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        done: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        pos = self.pos
        self.ready[pos] = False
        super().add(obs, next_obs, action, reward, done, infos)
        for env_index, info in enumerate(infos):
            pending = self._pending[env_index]
            pending.append(pos)
            episode_rewards = info.get(EPISODE_REWARDS_KEY)
            if episode_rewards is None:
                if len(pending) > self.buffer_size:
                    raise ValueError(
                        f"an episode is longer than the replay buffer ({self.buffer_size} transitions per env); "
                        "increase buffer_size"
                    )
                continue
            if len(episode_rewards) != len(pending):
                raise RuntimeError(
                    f"env {env_index}: {len(episode_rewards)} episode rewards for {len(pending)} stored transitions; "
                    "was the vector env reset without resetting the buffer?"
                )
            self.rewards[pending, env_index] = episode_rewards
            self.ready[pending, env_index] = True
            pending.clear()

    def num_ready(self) -> int:
        return int(self.ready.sum())

    def sample(self, batch_size: int, env: VecNormalize | None = None) -> ReplayBufferSamples:
        ready = np.flatnonzero(self.ready)
        if ready.size == 0:
            raise RuntimeError(
                "no finished episode in the replay buffer yet, so no VLM reward to learn from: set the algorithm's "
                "learning_starts to at least n_envs * episode_length"
            )
        chosen = ready[np.random.randint(0, ready.size, size=batch_size)]
        batch_inds, env_indices = np.divmod(chosen, self.n_envs)
        return self._samples_at(batch_inds, env_indices, env)

    def _samples_at(
        self, batch_inds: np.ndarray, env_indices: np.ndarray, env: VecNormalize | None
    ) -> ReplayBufferSamples:
        data = (
            self._normalize_obs(self.observations[batch_inds, env_indices, :], env),
            self.actions[batch_inds, env_indices, :],
            self._normalize_obs(self.next_observations[batch_inds, env_indices, :], env),
            # Time-limit truncations are not terminal (same rule as stable-baselines3).
            (self.dones[batch_inds, env_indices] * (1 - self.timeouts[batch_inds, env_indices])).reshape(-1, 1),
            self._normalize_reward(self.rewards[batch_inds, env_indices].reshape(-1, 1), env),
        )
        return ReplayBufferSamples(*tuple(map(self.to_torch, data)))
