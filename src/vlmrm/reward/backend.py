"""Build the reward function a config's ``reward`` section describes: in this process, or on Ray actors.

Both backends give a :class:`~vlmrm.reward.contract.RewardFunction`: ``local`` a
:class:`~vlmrm.reward.VLMReward` (the model in this process), ``ray`` a
:class:`~vlmrm.reward.ray_pool.RayRewardPool` (the model in each actor, none here; for a ``video:``
model a :class:`~vlmrm.reward.ray_pool.RayVideoRewardPool`, which also scores whole episodes). The trainer
calls ``close()`` when the run ends (a no-op for ``local``; ``ray`` stops its actors).
"""

from __future__ import annotations

from vlmrm.config import RewardConfig, RewardFacts
from vlmrm.reward.contract import RewardFunction
from vlmrm.reward.devices import dtype_name
from vlmrm.reward.ray_pool import RayRewardPool, RayVideoRewardPool
from vlmrm.reward.vlm_reward import VLMReward


def build_reward_function(config: RewardConfig) -> RewardFunction:
    """The reward function of ``config``: a :class:`VLMReward` (``local``) or a :class:`RayRewardPool` (``ray``)."""
    if config.backend == "ray":
        # A video: model's pool also scores whole episodes (each step's clip), as the model here would.
        return RayVideoRewardPool(config) if config.model.strip().startswith("video:") else RayRewardPool(config)
    return VLMReward.from_config(config)


def reward_facts(reward: RewardFunction) -> RewardFacts:
    """What config resolution needs to know of a built reward function (its size, where and how it runs)."""
    if isinstance(reward, RayRewardPool):
        return RewardFacts(reward.image_size, reward.worker_device, reward.worker_dtype)
    if isinstance(reward, VLMReward):
        return RewardFacts(reward.image_size, str(reward.device), dtype_name(reward.dtype))
    return RewardFacts(reward.image_size, str(reward.device))
