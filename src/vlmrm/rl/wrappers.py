"""Gymnasium wrappers: render the frame after each step and replace the reward with the VLM's.

``RenderFrameInInfo`` renders inside the environment, *before* a vector env auto-resets it, so
the frame that ends an episode is the terminal state and not the next episode's first frame.
``VLMRewardWrapper`` is the single-env version of the reward replacement, for use without
stable-baselines3; :mod:`vlmrm.rl.vec_env` holds the batched one used for training.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

FRAME_KEY = "frame"
ENV_REWARD_KEY = "env_reward"
EPISODE_KEY = "vlm_episode"


class RenderFrameInInfo(gym.Wrapper):
    """Put ``env.render()`` of the state reached by each step into ``info["frame"]``."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        if env.render_mode != "rgb_array":
            raise ValueError(f"the environment must render rgb_array frames, got render_mode={env.render_mode!r}")

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        info[FRAME_KEY] = self.env.render()
        return obs, reward, terminated, truncated, info


class VLMRewardWrapper(gym.Wrapper):
    """Replace the reward with ``reward_fn`` of the frame rendered after each step.

    ``reward_fn`` maps uint8 frames ``(N, H, W, 3)`` to ``N`` rewards (a
    :class:`~vlmrm.reward.contract.RewardFunction`, or any such function). The environment's
    reward is kept in ``info["env_reward"]``; when an episode ends, ``info["vlm_episode"]`` holds
    ``{"vlm_return", "env_return", "length"}``.

    >>> from vlmrm.envs import make_env
    >>> def whiteness(frames):  # the share of white pixels: the background around cart and pole
    ...     return (frames == 255).all(axis=-1).mean(axis=(1, 2))
    >>> env = VLMRewardWrapper(make_env("cartpole", render_size=32), whiteness)
    >>> _ = env.reset(seed=0)
    >>> _, reward, _, _, info = env.step(0)
    >>> 0.8 < reward < 1.0, info["env_reward"]
    (True, 1.0)
    """

    def __init__(self, env: gym.Env, reward_fn: Callable[[np.ndarray], np.ndarray]):
        super().__init__(env)
        if env.render_mode != "rgb_array":
            raise ValueError(f"the environment must render rgb_array frames, got render_mode={env.render_mode!r}")
        self.reward_fn = reward_fn
        self._vlm_return = 0.0
        self._env_return = 0.0
        self._length = 0

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        self._vlm_return = self._env_return = 0.0
        self._length = 0
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, env_reward, terminated, truncated, info = self.env.step(action)
        frame = np.asarray(self.env.render())
        reward = float(self.reward_fn(frame[None])[0])
        info[ENV_REWARD_KEY] = float(env_reward)
        self._vlm_return += reward
        self._env_return += float(env_reward)
        self._length += 1
        if terminated or truncated:
            info[EPISODE_KEY] = {"vlm_return": self._vlm_return, "env_return": self._env_return, "length": self._length}
        return obs, reward, terminated, truncated, info


__all__ = [
    "RenderFrameInInfo",
    "VLMRewardWrapper",
]
