"""Where rewards are computed: in this process (``local``) or elsewhere.

The trainer scores frames through a plain callable, ``frames -> rewards``; this module builds it
from the ``reward`` section of a config.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from vlmrm.config import RewardConfig
from vlmrm.reward.vlm_reward import VLMReward

RewardFn = Callable[[np.ndarray], np.ndarray]


def build_reward(config: RewardConfig) -> VLMReward:
    """The in-process reward model described by ``config``."""
    return VLMReward.from_pretrained(
        config.model,
        target_prompts=config.target_prompts,
        baseline_prompts=config.baseline_prompts or None,
        alpha=config.alpha,
        device=config.device,
        dtype=config.dtype,
        batch_size=config.batch_size,
    )


def make_reward_fn(config: RewardConfig, local_reward: VLMReward) -> RewardFn:
    """The callable the wrappers use to score frames; ``local`` scores with ``local_reward`` itself."""
    return local_reward
