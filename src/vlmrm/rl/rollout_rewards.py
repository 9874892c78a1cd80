"""PPO with a reward that needs the episode's earlier frames (a video model): score each rollout when it ends.

On-policy algorithms use a rollout's rewards only once it is collected. In ``"rollout"`` mode
:class:`~vlmrm.rl.vec_env.VecVLMReward` returns the placeholder reward 0 at each step and keeps the
frames; :class:`RolloutRewards`, a callback, has it score the whole rollout when it ends (each step by
the clip of its episode's frames up to that step, frames of earlier rollouts included), adds the
rewards to the rollout buffer and computes the returns and advantages again, before the update.

The rewards are those the steps would have had if scored as they were taken: the placeholder is 0,
and what stable-baselines3 adds to a truncated episode's last reward (the discounted value of the
state it was cut at) stays added.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from vlmrm.rl.vec_env import VecVLMReward


def find_vlm_reward(env: VecEnv) -> VecVLMReward | None:
    """The :class:`VecVLMReward` in ``env``'s stack of vector-env wrappers, if any."""
    while True:
        if isinstance(env, VecVLMReward):
            return env
        if not isinstance(env, VecEnvWrapper):
            return None
        env = env.venv


class RolloutRewards(BaseCallback):
    """Give each PPO rollout its VLM rewards when it ends (a :class:`VecVLMReward` in ``"rollout"`` mode).

    Args:
        venv: the training env's :class:`VecVLMReward` (default: found in the model's env).
    """

    def __init__(self, venv: VecVLMReward | None = None):
        super().__init__()
        self.venv = venv

    def _on_training_start(self) -> None:
        if self.venv is None:
            self.venv = find_vlm_reward(self.model.get_env())  # type: ignore[arg-type]
        if self.venv is None or self.venv.mode != "rollout":
            raise RuntimeError("RolloutRewards needs the model's env to be a VecVLMReward in 'rollout' mode")

    def _on_rollout_start(self) -> None:
        assert self.venv is not None
        self.venv.begin_rollout()

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        assert self.venv is not None
        buffer: Any = self.model.rollout_buffer  # type: ignore[attr-defined]
        rewards = self.venv.score_rollout()
        if rewards.shape != buffer.rewards.shape:
            raise RuntimeError(f"{rewards.shape} VLM rewards for a rollout buffer of {buffer.rewards.shape}")
        buffer.rewards += rewards.astype(buffer.rewards.dtype, copy=False)
        # The values and done flags of the state after the rollout, as collect_rollouts used them.
        last_values, dones = self.locals["values"], np.asarray(self.locals["dones"])
        buffer.compute_returns_and_advantage(last_values=last_values, dones=dones)


__all__ = ["RolloutRewards", "find_vlm_reward"]
