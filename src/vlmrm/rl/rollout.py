"""Run a policy for whole episodes and report both returns, success and the frames.

Besides the per-episode returns, :func:`evaluate` keeps each episode's per-step record
(:class:`EpisodeTrace`: VLM reward, env reward, success flag; a few floats per step) and hands
every frame with its VLM reward to an optional ``frame_sink``, which keeps what it needs (the
reward inspection of :mod:`vlmrm.evaluation.inspection` keeps the highest- and lowest-reward
frames and a few frames per episode) so an evaluation never holds more than one episode's frames.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm

from vlmrm.rl.vec_env import EPISODE_REWARDS_KEY, VecVLMReward
from vlmrm.rl.wrappers import ENV_REWARD_KEY, EPISODE_KEY

FrameSink = Callable[[int, int, np.ndarray, float], None]
"""``sink(episode, step, frame, vlm_reward)``, called for every step of an evaluation (both counted from 0)."""


@dataclass
class EpisodeTrace:
    """One evaluation episode, step by step."""

    vlm_rewards: np.ndarray
    """float32 ``(T,)``: the VLM reward of the frame after each step."""
    env_rewards: np.ndarray
    """float64 ``(T,)``: the environment's own reward of each step."""
    success: np.ndarray | None
    """bool ``(T,)``: ``info["is_success"]`` of each step; ``None`` when the env reports no such flag."""

    def __len__(self) -> int:
        return len(self.vlm_rewards)


@dataclass
class EvaluationResult:
    """Per-episode returns of one evaluation, and the frames of its first episode."""

    env_returns: list[float] = field(default_factory=list)
    vlm_returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    successes: list[bool] | None = None
    step_successes: list[bool] = field(default_factory=list)
    frames: list[np.ndarray] = field(default_factory=list)
    traces: list[EpisodeTrace] = field(default_factory=list)

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
    frame_sink: FrameSink | None = None,
) -> EvaluationResult:
    """Run ``episodes`` episodes on a single-env :class:`VecVLMReward` (either mode: the returns come at the end).

    ``record_frames`` keeps the frames of the first episode (for a video). ``frame_sink`` sees every
    frame with its VLM reward; in episode mode the rewards are known when the episode ends, so it
    sees an episode's frames then (the env holds them until then anyway).
    """
    if env.num_envs != 1:
        raise ValueError("evaluate() expects a vector env with one env")
    result = EvaluationResult(successes=[] if episode_success is not None else None)
    obs = env.reset()
    step_success: list[bool] = []
    step_rewards: list[float] = []
    env_rewards: list[float] = []
    flags: list[bool | None] = []
    frames: list[np.ndarray] = []
    while len(result.env_returns) < episodes:
        action, _ = model.predict(obs, deterministic=deterministic)
        obs, rewards, dones, infos = env.step(action)
        info = infos[0]
        if record_frames and not result.env_returns and env.last_frames is not None:
            result.frames.append(env.last_frames[0])
        if frame_sink is not None and env.last_frames is not None:
            frames.append(env.last_frames[0])
        step_rewards.append(float(rewards[0]))
        env_rewards.append(float(info.get(ENV_REWARD_KEY, 0.0)))
        flags.append(bool(info["is_success"]) if "is_success" in info else None)
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
            pending = info.get(EPISODE_REWARDS_KEY)  # episode mode: every step's reward, known now
            vlm_rewards = np.asarray(pending.result() if pending is not None else step_rewards, dtype=np.float32)
            episode = len(result.traces)
            for step, frame in enumerate(frames):
                frame_sink(episode, step, frame, float(vlm_rewards[step]))  # type: ignore[misc]
            reported = all(flag is not None for flag in flags)
            result.traces.append(
                EpisodeTrace(
                    vlm_rewards,
                    np.asarray(env_rewards, dtype=np.float64),
                    np.asarray(flags, dtype=bool) if reported else None,
                )
            )
            step_success, step_rewards, env_rewards, flags, frames = [], [], [], [], []
    return result
