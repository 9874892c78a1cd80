"""Run a policy for whole episodes and report both returns, success and the frames."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm

from vlmrm.rl.vec_env import VecVLMReward
from vlmrm.rl.wrappers import EPISODE_KEY


@dataclass
class EvaluationResult:
    """Per-episode returns of one evaluation, and the frames of its first episode."""

    env_returns: list[float] = field(default_factory=list)
    vlm_returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    successes: list[bool] | None = None
    step_successes: list[bool] = field(default_factory=list)
    frames: list[np.ndarray] = field(default_factory=list)

    @property
    def mean_env_return(self) -> float:
        return float(np.mean(self.env_returns))

    @property
    def mean_vlm_return(self) -> float:
        return float(np.mean(self.vlm_returns))

    @property
    def success_rate(self) -> float | None:
        """The share of episodes that succeeded (the env's rule), ``None`` for an env without success flags."""
        return None if self.successes is None else float(np.mean(self.successes))

    @property
    def step_success_rate(self) -> float | None:
        """The share of steps whose ``info["is_success"]`` was set (CartPole: steps with the pole up)."""
        return None if self.successes is None or not self.step_successes else float(np.mean(self.step_successes))


def evaluate(
    model: BaseAlgorithm,
    env: VecVLMReward,
    episodes: int,
    episode_success: Callable[[Sequence[bool]], bool] | None = None,
    deterministic: bool = True,
    record_frames: bool = True,
) -> EvaluationResult:
    """Run ``episodes`` episodes on a single-env :class:`VecVLMReward` (either mode: the returns come at the end)."""
    if env.num_envs != 1:
        raise ValueError("evaluate() expects a vector env with one env")
    result = EvaluationResult(successes=[] if episode_success is not None else None)
    obs = env.reset()
    step_success: list[bool] = []
    while len(result.env_returns) < episodes:
        action, _ = model.predict(obs, deterministic=deterministic)
        obs, _, dones, infos = env.step(action)
        info = infos[0]
        if record_frames and not result.env_returns and env.last_frames is not None:
            result.frames.append(env.last_frames[0])
        step_success.append(bool(info.get("is_success", False)))
        if result.successes is not None:
            result.step_successes.append(step_success[-1])
        if dones[0]:
            stats = info[EPISODE_KEY]
            result.env_returns.append(stats["env_return"])
            result.vlm_returns.append(stats["vlm_return"])
            result.lengths.append(stats["length"])
            if result.successes is not None and episode_success is not None:
                result.successes.append(bool(episode_success(step_success)))
            step_success = []
    return result
