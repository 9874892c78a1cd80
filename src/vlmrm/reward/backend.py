"""Where rewards are computed: in this process (``local``) or on a pool of Ray actors (``ray``).

The trainer scores frames through a plain callable, ``frames -> rewards``; this module builds it
from the ``reward`` section of a config. Whatever the backend, the callable has ``close()``, which
the trainer calls when the run ends (a no-op for ``local``; ``ray`` stops its actors).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from vlmrm.config import RewardConfig
from vlmrm.errors import ConfigError
from vlmrm.reward.ray_pool import RAY_ONLY_FIELDS
from vlmrm.reward.vlm_reward import VLMReward


class RewardFn(Protocol):
    """``reward_fn(frames)``: uint8 ``(N, H, W, 3)`` frames in, float32 ``(N,)`` rewards out."""

    def __call__(self, frames: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...


def check_backend_fields(config: RewardConfig) -> None:
    """Refuse Ray settings with the local backend instead of silently ignoring them."""
    if config.backend == "ray":
        return
    given = [name for name in RAY_ONLY_FIELDS if getattr(config, name) is not None]
    if given:
        raise ConfigError(
            f"reward.{given[0]} only applies to reward.backend: ray (the backend is {config.backend!r}); "
            f"set reward.backend: ray or remove reward.{given[0]}."
        )


def build_reward(config: RewardConfig) -> VLMReward:
    """The in-process reward model described by ``config``."""
    check_backend_fields(config)
    return VLMReward.from_pretrained(
        config.model,
        target_prompts=config.target_prompts,
        baseline_prompts=config.baseline_prompts or None,
        alpha=config.alpha,
        device=config.device,
        dtype=config.dtype,
        batch_size=config.batch_size,
    )


class LocalRewardFn:
    """The ``local`` backend: frames are scored by ``reward`` in this process; ``close()`` does nothing.

    Other attributes are those of the wrapped :class:`VLMReward` (``reward_fn.image_size``, ...).
    """

    def __init__(self, reward: VLMReward):
        self.reward = reward

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        return self.reward(frames)

    def close(self) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        if name == "reward":  # not set yet (e.g. during unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.reward, name)

    def __repr__(self) -> str:
        return f"LocalRewardFn({self.reward!r})"


def make_reward_fn(config: RewardConfig, local_reward: VLMReward) -> RewardFn:
    """The callable the wrappers use to score frames; call its ``close()`` when done.

    ``local`` scores with ``local_reward`` itself; ``ray`` starts a
    :class:`~vlmrm.reward.ray_pool.RayRewardPool` (each actor builds its own model from ``config``).
    """
    check_backend_fields(config)
    if config.backend == "ray":
        from vlmrm.reward.ray_pool import RayRewardPool

        return RayRewardPool(config)
    return LocalRewardFn(local_reward)
