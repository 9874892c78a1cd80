"""Build a stable-baselines3 algorithm from the ``rl`` section of a config."""

from __future__ import annotations

import difflib
import inspect
from typing import Any

from gymnasium import spaces
from stable_baselines3 import DQN, PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from vlmrm.config import RLConfig
from vlmrm.errors import ConfigError
from vlmrm.rl.buffers import RelabelingReplayBuffer

ALGORITHMS: dict[str, type[BaseAlgorithm]] = {"sac": SAC, "dqn": DQN, "ppo": PPO}
# Set by vlmrm itself, not by rl.hyperparameters.
_RESERVED = ("policy", "env", "seed", "tensorboard_log", "verbose", "device", "_init_setup_model")


def is_off_policy(algorithm: str) -> bool:
    return issubclass(ALGORITHMS[algorithm], OffPolicyAlgorithm)


def check_hyperparameters(algorithm: str, hyperparameters: dict[str, Any]) -> None:
    """Reject keyword arguments the algorithm does not take, naming the closest valid one."""
    cls = ALGORITHMS[algorithm]
    valid = [name for name in inspect.signature(cls.__init__).parameters if name not in ("self", *_RESERVED)]
    for key in hyperparameters:
        if key in _RESERVED:
            raise ConfigError(f"rl.hyperparameters.{key}: set by vlmrm; use rl.seed, rl.policy or reward.device.")
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"rl.hyperparameters.{key}: {cls.__name__} has no such parameter.{hint} Valid: {', '.join(valid)}."
            )


def make_algorithm(
    rl: RLConfig,
    env: VecEnv,
    episode_end_batching: bool,
    episode_length: int,
    device: str = "auto",
) -> BaseAlgorithm:
    """Instantiate ``rl.algorithm`` on ``env`` with ``rl.hyperparameters``.

    With episode-end batching the replay buffer is a :class:`RelabelingReplayBuffer` and
    ``learning_starts`` is at least ``n_envs * episode_length``, so the first gradient step finds
    finished, relabelled episodes.
    """
    cls = ALGORITHMS[rl.algorithm]
    check_hyperparameters(rl.algorithm, rl.hyperparameters)
    if rl.algorithm == "dqn" and not isinstance(env.action_space, spaces.Discrete):
        raise ConfigError(
            f"rl.algorithm=dqn needs discrete actions; this env's actions are {env.action_space}. Use sac."
        )
    if rl.algorithm == "sac" and not isinstance(env.action_space, spaces.Box):
        raise ConfigError(
            f"rl.algorithm=sac needs continuous actions; this env's actions are {env.action_space}. Use dqn."
        )
    kwargs = dict(rl.hyperparameters)
    if episode_end_batching:
        if not is_off_policy(rl.algorithm):
            raise ConfigError(
                f"reward.episode_end_batching needs an off-policy algorithm (sac, dqn), not {rl.algorithm}; "
                "set it to false."
            )
        if kwargs.get("replay_buffer_class") not in (None, RelabelingReplayBuffer):
            raise ConfigError("rl.hyperparameters.replay_buffer_class cannot be set with episode-end batching.")
        kwargs["replay_buffer_class"] = RelabelingReplayBuffer
        minimum = env.num_envs * episode_length
        if "learning_starts" not in kwargs:
            kwargs["learning_starts"] = max(minimum, 100)
        elif kwargs["learning_starts"] < minimum:
            raise ConfigError(
                f"rl.hyperparameters.learning_starts={kwargs['learning_starts']} is below n_envs * episode_length = "
                f"{minimum}: with episode-end batching no reward is known before the first episodes end. "
                f"Raise learning_starts to {minimum} or set reward.episode_end_batching=false."
            )
    try:
        return cls(rl.policy, env, seed=rl.seed, verbose=0, device=device, **kwargs)
    except (TypeError, ValueError, AssertionError) as exc:
        raise ConfigError(f"stable-baselines3 rejected the rl settings for {cls.__name__}: {exc}") from exc
