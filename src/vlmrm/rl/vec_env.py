"""Score the frames of all environments of a vector env in one batch.

Two modes:

- ``"step"``: after every vector step, the frames of all envs are scored in one batch and
  returned as the rewards (works with any algorithm).
- ``"episode"`` (episode-end batching, for off-policy algorithms): frames of running episodes
  are kept; when episodes end, all their frames are scored in one batch. The finished
  episode's rewards travel in ``info["vlm_episode_rewards"]`` to a
  :class:`~vlmrm.rl.buffers.RelabelingReplayBuffer`, which writes them over the placeholder
  rewards (0) stored for that episode's transitions. Large batches use the model far better
  than one frame per env per step.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn

from vlmrm.rl.wrappers import ENV_REWARD_KEY, EPISODE_KEY, FRAME_KEY, RewardFn

EPISODE_REWARDS_KEY = "vlm_episode_rewards"
RewardMode = Literal["step", "episode"]


class VecVLMReward(VecEnvWrapper):
    """Replace the rewards of a vector env with VLM rewards of the frames in ``info["frame"]``.

    The wrapped envs must be wrapped in :class:`~vlmrm.rl.wrappers.RenderFrameInInfo`.
    ``last_frames`` holds the frames of the latest step (for videos).
    """

    def __init__(self, venv: VecEnv, reward_fn: RewardFn, mode: RewardMode = "step"):
        super().__init__(venv)
        if mode not in ("step", "episode"):
            raise ValueError(f"mode must be 'step' or 'episode', got {mode!r}")
        self.reward_fn = reward_fn
        self.mode = mode
        self.last_frames: np.ndarray | None = None
        self._episode_frames: list[list[np.ndarray]] = [[] for _ in range(self.num_envs)]
        self._vlm_returns = np.zeros(self.num_envs, dtype=np.float64)
        self._env_returns = np.zeros(self.num_envs, dtype=np.float64)
        self._lengths = np.zeros(self.num_envs, dtype=np.int64)

    def reset(self) -> Any:
        self._episode_frames = [[] for _ in range(self.num_envs)]
        self._vlm_returns[:] = 0.0
        self._env_returns[:] = 0.0
        self._lengths[:] = 0
        return self.venv.reset()

    def _pop_frames(self, infos: list[dict[str, Any]]) -> np.ndarray:
        try:
            frames = [info.pop(FRAME_KEY) for info in infos]
        except KeyError:
            raise RuntimeError("no frame in info: wrap each env in vlmrm.rl.wrappers.RenderFrameInInfo") from None
        return np.stack(frames)

    def step_wait(self) -> VecEnvStepReturn:
        obs, env_rewards, dones, infos = self.venv.step_wait()
        frames = self._pop_frames(infos)
        self.last_frames = frames
        for i, info in enumerate(infos):
            info[ENV_REWARD_KEY] = float(env_rewards[i])
        self._env_returns += env_rewards
        self._lengths += 1
        if self.mode == "step":
            rewards = np.asarray(self.reward_fn(frames), dtype=np.float32)
        else:
            rewards = self._episode_end_rewards(frames, dones, infos)
        self._vlm_returns += rewards
        for i in np.flatnonzero(dones):
            infos[i][EPISODE_KEY] = {
                "vlm_return": float(self._vlm_returns[i]),
                "env_return": float(self._env_returns[i]),
                "length": int(self._lengths[i]),
            }
            self._vlm_returns[i] = self._env_returns[i] = 0.0
            self._lengths[i] = 0
        return obs, rewards, dones, infos

    def _episode_end_rewards(self, frames: np.ndarray, dones: np.ndarray, infos: list[dict[str, Any]]) -> np.ndarray:
        for i, frame in enumerate(frames):
            self._episode_frames[i].append(frame)
        rewards = np.zeros(self.num_envs, dtype=np.float32)
        finished = np.flatnonzero(dones)
        if finished.size == 0:
            return rewards
        episodes = [self._episode_frames[i] for i in finished]
        scored = np.asarray(self.reward_fn(np.stack([f for episode in episodes for f in episode])), dtype=np.float32)
        start = 0
        for i, episode in zip(finished, episodes, strict=True):
            episode_rewards = scored[start : start + len(episode)]
            start += len(episode)
            infos[i][EPISODE_REWARDS_KEY] = episode_rewards
            # The step that ends the episode gets its true reward now; the buffer relabels the rest.
            rewards[i] = episode_rewards[-1]
            # Until relabelled, the running return counts only the final reward: make it exact.
            self._vlm_returns[i] = float(episode_rewards[:-1].sum(dtype=np.float64))
            self._episode_frames[i] = []
        return rewards

    def pending_frames(self) -> int:
        """Frames kept for running episodes (bounded by the episode length times the number of envs)."""
        return sum(len(frames) for frames in self._episode_frames)
