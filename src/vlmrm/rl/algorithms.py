"""Build the stable-baselines3 algorithm of a resolved config (the rules were checked by :mod:`vlmrm.config`)."""

from __future__ import annotations

from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from vlmrm.config import TrainConfig, algorithm_class
from vlmrm.errors import ConfigError
from vlmrm.rl.buffers import RelabelingReplayBuffer


def make_algorithm(config: TrainConfig, env: VecEnv, device: str = "auto") -> BaseAlgorithm:
    """Instantiate ``config.rl.algorithm`` on ``env`` with ``config.rl.hyperparameters``.

    With episode-end batching the replay buffer is a :class:`RelabelingReplayBuffer` (and the
    resolved ``learning_starts`` lets the first gradient step find finished, relabelled episodes).
    """
    rl = config.rl
    cls = algorithm_class(rl.algorithm)
    kwargs: dict[str, Any] = dict(rl.hyperparameters)
    if config.reward.episode_end_batching:
        kwargs["replay_buffer_class"] = RelabelingReplayBuffer
    try:
        return cls(rl.policy, env, seed=rl.seed, verbose=0, device=device, **kwargs)
    except MemoryError as exc:
        size = kwargs.get("buffer_size", "the default")
        raise ConfigError(
            f"rl.hyperparameters.buffer_size={size}: the replay buffer does not fit in memory ({exc}); "
            "lower rl.hyperparameters.buffer_size."
        ) from None
    except (TypeError, ValueError, AssertionError) as exc:
        raise ConfigError(f"stable-baselines3 rejected the rl settings for {cls.__name__}: {exc}") from exc
