"""A replay buffer that receives each episode's VLM rewards when the episode ends.

With episode-end batching the rewards stored for the transitions of a running episode are
placeholders. This buffer remembers where each env's running episode was stored; when
``infos[i]["vlm_episode_rewards"]`` (a :class:`~vlmrm.rl.vec_env.PendingRewards`) arrives with the
episode's last transition, it remembers that episode's positions and writes the rewards when they
are known: at once when the vector env scored them inline, later when a background thread scores
them (``overlap=True``; checked at every ``add`` and ``sample``, and ``sample`` waits for them when
nothing else is ready). Written transitions are marked ready; ``sample`` draws only ready
transitions, so no gradient step ever sees a placeholder. A position overwritten in the meantime
(a ring buffer smaller than the delay) is left alone, so a late reward never lands on another
transition.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.vec_env import VecNormalize

from vlmrm.rl.vec_env import EPISODE_REWARDS_KEY, PendingRewards


class RelabelingReplayBuffer(ReplayBuffer):
    """A :class:`~stable_baselines3.common.buffers.ReplayBuffer` for episode-end VLM rewards."""

    def __init__(self, *args: Any, **kwargs: Any):
        if kwargs.get("optimize_memory_usage"):
            raise ValueError("RelabelingReplayBuffer does not support optimize_memory_usage=True")
        super().__init__(*args, **kwargs)
        self.ready = np.zeros((self.buffer_size, self.n_envs), dtype=bool)
        self._pending: list[list[int]] = [[] for _ in range(self.n_envs)]
        # Which add() wrote each position, so that late rewards skip positions overwritten since.
        self._written_by = np.full(self.buffer_size, -1, dtype=np.int64)
        self._adds = 0
        # Finished episodes whose rewards are being computed: (env index, positions, writers, rewards).
        self._in_flight: list[tuple[int, np.ndarray, np.ndarray, PendingRewards]] = []

    def add(
        self,
        obs: np.ndarray,
        next_obs: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        done: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        self.receive_rewards()
        pos = self.pos
        self.ready[pos] = False
        self._written_by[pos] = self._adds
        self._adds += 1
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
            positions = np.asarray(pending, dtype=np.int64)
            pending.clear()
            self._in_flight.append((env_index, positions, self._written_by[positions].copy(), episode_rewards))
        self.receive_rewards()  # rewards scored inline are known already

    def receive_rewards(self, wait: bool = False) -> int:
        """Write the rewards of finished episodes that have been scored (all of them with ``wait``).

        Returns the number of episodes still waiting for their rewards. Raises the scorer's error.
        """
        waiting = []
        for entry in self._in_flight:
            env_index, positions, writers, episode_rewards = entry
            if not (wait or episode_rewards.done()):
                waiting.append(entry)
                continue
            values = episode_rewards.result()
            intact = self._written_by[positions] == writers
            self.rewards[positions[intact], env_index] = values[intact]
            self.ready[positions[intact], env_index] = True
        self._in_flight = waiting
        return len(waiting)

    def num_ready(self) -> int:
        return int(self.ready.sum())

    def drop_unfinished_episodes(self) -> int:
        """Forget the stored transitions of the episodes running now (after a resume, say).

        With episode-end batching their rewards are placeholders that arrive when the episode ends;
        envs that start fresh episodes (a resumed run) never end these, so they never will. The
        transitions stay unready (never sampled) and are overwritten as the buffer wraps, as
        stable-baselines3's ``HerReplayBuffer.truncate_last_trajectory`` repairs its own state.
        Returns how many transitions there were.
        """
        count = 0
        for env_index, positions in enumerate(self._pending):
            if positions:
                self.ready[positions, env_index] = False
                count += len(positions)
                positions.clear()
        return count

    # -- checkpoints (vlmrm.rl.replay_io) -----------------------------------------------------------------------

    def extra_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """What a checkpoint must hold beyond a ``ReplayBuffer``'s arrays, after every reward in flight has arrived.

        Returns ``(arrays, values)``: ``arrays`` are this buffer's own per-position arrays (first axis
        ``buffer_size``, like ``observations``), so a loader can read saved rows straight into them;
        ``values`` are JSON-serialisable (the add counter and the positions of each env's running
        episode). Futures do not outlive the process, so the rewards in flight are waited for.
        """
        self.receive_rewards(wait=True)
        arrays = {"ready": self.ready, "written_by": self._written_by}
        values = {"adds": int(self._adds), "pending": [[int(pos) for pos in positions] for positions in self._pending]}
        return arrays, values

    def load_extra_state(self, values: dict[str, Any], rows: int) -> None:
        """Finish a restore whose loader has read rows ``[0, rows)`` of the :meth:`extra_state` arrays in place.

        The rows after ``rows`` were never written in the saved buffer: they are reset to unready
        and unwritten, whatever this buffer held there.
        """
        pending = values["pending"]
        if len(pending) != self.n_envs:
            raise ValueError(f"the saved buffer has running episodes for {len(pending)} envs, not {self.n_envs}")
        if any(not 0 <= pos < rows for positions in pending for pos in positions):
            raise ValueError(f"a running episode's position lies outside the {rows} saved rows")
        self.ready[rows:] = False
        self._written_by[rows:] = -1
        self._adds = int(values["adds"])
        self._pending = [[int(pos) for pos in positions] for positions in pending]
        self._in_flight = []

    def __getstate__(self) -> dict[str, Any]:
        # Futures do not pickle: a saved buffer holds every reward computed so far.
        self.receive_rewards(wait=True)
        return self.__dict__.copy()

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        # Buffers pickled before late rewards existed.
        if "_written_by" not in state:
            self._written_by = np.full(self.buffer_size, -1, dtype=np.int64)
            self._adds = 0
            self._in_flight = []

    def sample(self, batch_size: int, env: VecNormalize | None = None) -> ReplayBufferSamples:
        if self.receive_rewards() and not self.ready.any():
            self.receive_rewards(wait=True)
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
