"""Build the stable-baselines3 algorithm of a resolved config (the rules were checked by :mod:`vlmrm.config`)."""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv

import vlmrm.memory as memory
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
        model = cls(rl.policy, env, seed=rl.seed, verbose=0, device=device, **kwargs)
    except MemoryError as exc:
        size = kwargs.get("buffer_size", "the default")
        raise ConfigError(
            f"rl.hyperparameters.buffer_size={size}: the replay buffer does not fit in memory ({exc}); "
            "lower rl.hyperparameters.buffer_size."
        ) from None
    except (TypeError, ValueError, AssertionError) as exc:
        raise ConfigError(f"stable-baselines3 rejected the rl settings for {cls.__name__}: {exc}") from exc
    check_replay_buffer_fits(model, kwargs.get("buffer_size"))
    return model


def replay_buffer_bytes(buffer: Any) -> int:
    """The bytes of a stable-baselines3 replay buffer's arrays (allocated lazily: not yet in use)."""
    total = 0
    for value in vars(buffer).values():
        arrays = value.values() if isinstance(value, dict) else [value]
        total += sum(array.nbytes for array in arrays if isinstance(array, np.ndarray))
    return total


def check_replay_buffer_fits(model: BaseAlgorithm, configured: Any = None) -> None:
    """Refuse a replay buffer larger than the memory available now (it would fail, or be killed, when full)."""
    buffer = getattr(model, "replay_buffer", None)
    if buffer is None:
        return
    need, transitions = replay_buffer_bytes(buffer), buffer.buffer_size * buffer.n_envs
    available = memory.available_memory()
    per_transition = need / max(transitions, 1)
    fit = int(available / per_transition) if available is not None and per_transition else None
    memory.check_fits(
        need,
        f"rl.hyperparameters.buffer_size={configured or transitions}: the replay buffer does not fit in memory: "
        f"{transitions} transitions × {per_transition:.0f} bytes",
        f"Lower rl.hyperparameters.buffer_size (to at most {fit} here).",
        available=available,
    )
