"""What a checkpoint carries besides the stable-baselines3 model: :class:`TrainerState`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vlmrm._version import __version__


@dataclass
class TrainerState:
    """The trainer's state at a checkpoint, stored in the zip as ``vlmrm_state.pkl``.

    Attributes:
        step: the environment step of the checkpoint.
        config: the run's resolved config (as JSON data): a resumed run may not change what it was trained with.
        rng: Python, NumPy, torch and action-space RNG states (:func:`vlmrm.training.resume.capture_rng`).
        learning_starts: the algorithm's ``learning_starts`` of the first session.
        train_seconds: time spent training so far, over all sessions.
        resumed_at: the steps earlier sessions resumed at.
        episode_returns: the return windows of :class:`~vlmrm.training.callbacks.EpisodeReturnLogger`.
        evaluation: the evaluation history of :class:`~vlmrm.training.callbacks.EvaluationCallback`.
        logs: what the logger held or recorded but had not written (:meth:`vlmrm.training.logs.StepLogger.state_dict`).
        reward_function: the name of the Python reward function the run trains on (``vlmrm.train(config,
            reward_fn=fn)``); ``None`` when it trains on its config's ``reward.model``.
    """

    step: int
    config: dict[str, Any]
    rng: dict[str, Any]
    learning_starts: int | None = None
    train_seconds: float = 0.0
    resumed_at: list[int] = field(default_factory=list)
    episode_returns: dict[str, Any] | None = None
    evaluation: dict[str, Any] | None = None
    logs: dict[str, Any] | None = None
    reward_function: str | None = None
    vlmrm_version: str = __version__

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "vlmrm_version": self.vlmrm_version,
            "config": self.config,
            "rng": self.rng,
            "learning_starts": self.learning_starts,
            "reward_function": self.reward_function,
            "trainer": {
                "train_seconds": self.train_seconds,
                "resumed_at": list(self.resumed_at),
                "episode_returns": self.episode_returns,
                "evaluation": self.evaluation,
                "logs": self.logs,
            },
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any] | None) -> TrainerState | None:
        """The state of a checkpoint; ``None`` for one written without trainer state (older vlmrm)."""
        if not state or "config" not in state or "rng" not in state:
            return None
        trainer = state.get("trainer") or {}
        return cls(
            step=int(state["step"]),
            config=state["config"],
            rng=state["rng"],
            learning_starts=state.get("learning_starts"),
            train_seconds=float(trainer.get("train_seconds", 0.0)),
            resumed_at=list(trainer.get("resumed_at", [])),
            episode_returns=trainer.get("episode_returns"),
            evaluation=trainer.get("evaluation"),
            logs=trainer.get("logs"),
            reward_function=state.get("reward_function"),
            vlmrm_version=str(state.get("vlmrm_version", "?")),
        )
