"""The reward contract: what training needs of a reward, whatever computes it.

:class:`RewardFunction` is a :class:`typing.Protocol`. :class:`~vlmrm.reward.VLMReward` (a model in
this process), :class:`~vlmrm.reward.ray_pool.RayRewardPool` (a pool of Ray actors) and
:class:`~vlmrm.training.guards.RewardGuard` (the NaN check training wraps around either) implement it,
and so can any object of the same shape: ``vlmrm.train(config, reward_fn=...)`` takes one. A plain
function of the frames becomes one with :class:`FunctionReward`:

>>> import numpy as np
>>> def redness(frames):
...     return frames[..., 0].mean(axis=(1, 2)) / 255.0
>>> reward = FunctionReward(redness, image_size=64)
>>> isinstance(reward, RewardFunction), reward.name, reward.image_size
(True, 'redness', 64)
>>> reward(np.full((2, 64, 64, 3), 255, np.uint8))
array([1., 1.], dtype=float32)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from vlmrm.errors import ConfigError

Frames = Any
"""uint8 frames ``(N, H, W, 3)``: a numpy array, or a torch tensor on the reward's device."""


@runtime_checkable
class RewardFunction(Protocol):
    """``reward(frames) -> rewards``, with what the pipeline needs to feed it well.

    Attributes:
        name: what the run's logs and summary call it.
        image_size: the square frame size it wants (envs render at this size, so nothing is resized).
        batch_size: the most frames worth passing in one call (the vector env stacks at most this many).
        device: where it wants frames (``cpu`` for a host array).
    """

    @property
    def name(self) -> str: ...

    @property
    def image_size(self) -> int: ...

    @property
    def batch_size(self) -> int: ...

    @property
    def device(self) -> torch.device: ...

    def __call__(self, frames: Frames) -> np.ndarray:
        """uint8 frames ``(N, H, W, 3)`` -> float32 rewards ``(N,)``."""
        ...

    def close(self) -> None:
        """Release what it holds (actors, threads); called once when training ends."""
        ...


@runtime_checkable
class EpisodeRewardFunction(RewardFunction, Protocol):
    """A reward whose value at a step depends on the episode's earlier frames (a video window).

    With episode-end batching, finished episodes go to :meth:`score_episodes` whole instead of
    frame by frame (:class:`~vlmrm.reward.video.VideoReward`).
    """

    def score_episodes(self, episodes: Any) -> list[np.ndarray]:
        """Each episode's uint8 frames ``(T, H, W, 3)`` -> its float32 rewards ``(T,)``."""
        ...


@runtime_checkable
class PartialEpisodeRewardFunction(EpisodeRewardFunction, Protocol):
    """An :class:`EpisodeRewardFunction` that also scores the latest steps of episodes, finished or not.

    A step's reward may depend on its episode's earlier frames, never on later ones (a video window;
    the RoboCLIP form's one reward lands on the step that ends the episode), so the steps of an
    episode can be scored before it ends: what PPO needs at the end of each rollout
    (:class:`~vlmrm.reward.video.VideoReward`).
    """

    def score_episode_steps(self, episodes: Any, first: Any, finished: Any) -> list[np.ndarray]:
        """Each episode's uint8 frames so far ``(T_i, H, W, 3)`` -> the float32 rewards of its steps
        ``first[i], ..., T_i - 1``; ``finished[i]``: whether the episode ended at its last frame."""
        ...


class FunctionReward:
    """A plain function ``frames -> rewards`` as a :class:`RewardFunction`.

    Args:
        fn: maps uint8 frames ``(N, H, W, 3)`` to ``N`` rewards.
        image_size: the frame size the function wants.
        batch_size: the most frames per call.
        name: default ``fn.__name__``.
        device: where ``fn`` wants frames (default the CPU: numpy arrays).
    """

    def __init__(
        self,
        fn: Callable[[Frames], Any],
        image_size: int = 224,
        batch_size: int = 256,
        name: str | None = None,
        device: str | torch.device = "cpu",
    ):
        if not callable(fn):
            raise ConfigError(f"a reward function must be callable, got {type(fn).__name__}.")
        if image_size <= 0 or batch_size <= 0:
            raise ConfigError(f"image_size and batch_size must be positive, got {image_size} and {batch_size}.")
        self.fn = fn
        self._image_size = int(image_size)
        self._batch_size = int(batch_size)
        self._name: str = name or str(getattr(fn, "__name__", type(fn).__name__))
        self._device = torch.device(device)

    @property
    def name(self) -> str:
        return self._name

    @property
    def image_size(self) -> int:
        return self._image_size

    @property
    def batch_size(self) -> int:
        return self._batch_size

    @property
    def device(self) -> torch.device:
        return self._device

    def __call__(self, frames: Frames) -> np.ndarray:
        rewards = self.fn(frames)
        if isinstance(rewards, torch.Tensor):
            rewards = rewards.detach().cpu().numpy()
        return np.asarray(rewards, dtype=np.float32).reshape(-1)

    def close(self) -> None:
        close = getattr(self.fn, "close", None)
        if callable(close):
            close()

    def __repr__(self) -> str:
        return f"FunctionReward({self._name!r}, image_size={self._image_size}, batch_size={self._batch_size})"


class RewardFunctionWrapper:
    """A :class:`RewardFunction` around another: name, image size, batch size, device and ``close()``
    are the wrapped one's; subclasses change ``__call__`` (checking, recording, ...)."""

    def __init__(self, reward_fn: RewardFunction):
        self.reward_fn = reward_fn

    @property
    def name(self) -> str:
        return self.reward_fn.name

    @property
    def image_size(self) -> int:
        return self.reward_fn.image_size

    @property
    def batch_size(self) -> int:
        return self.reward_fn.batch_size

    @property
    def device(self) -> torch.device:
        return self.reward_fn.device

    def __call__(self, frames: Frames) -> np.ndarray:
        return self.reward_fn(frames)

    def score_episodes(self, episodes: Any) -> list[np.ndarray]:
        """The wrapped reward's :meth:`EpisodeRewardFunction.score_episodes`, else each episode frame by frame."""
        if isinstance(self.reward_fn, EpisodeRewardFunction):
            return self.reward_fn.score_episodes(episodes)
        return [self(episode) for episode in episodes]

    def score_episode_steps(self, episodes: Any, first: Any, finished: Any) -> list[np.ndarray]:
        """The wrapped reward's :meth:`PartialEpisodeRewardFunction.score_episode_steps`."""
        if not isinstance(self.reward_fn, PartialEpisodeRewardFunction):
            raise TypeError(f"{self.reward_fn.name!r} cannot score the steps of an episode before it ends")
        return self.reward_fn.score_episode_steps(episodes, first, finished)

    def close(self) -> None:
        self.reward_fn.close()


def scores_partial_episodes(reward: RewardFunction) -> bool:
    """Whether ``reward`` (or the one its wrappers wrap) scores steps of unfinished episodes
    (:class:`PartialEpisodeRewardFunction`)."""
    while isinstance(reward, RewardFunctionWrapper):
        reward = reward.reward_fn
    return isinstance(reward, PartialEpisodeRewardFunction)


def wants_episodes(reward: RewardFunction) -> bool:
    """Whether ``reward`` (or the one its wrappers wrap) scores whole episodes (:class:`EpisodeRewardFunction`)."""
    while isinstance(reward, RewardFunctionWrapper):
        reward = reward.reward_fn
    return isinstance(reward, EpisodeRewardFunction)


def as_reward_function(reward: Any, image_size: int = 224) -> RewardFunction:
    """``reward`` itself when it is a :class:`RewardFunction`, a plain callable wrapped in :class:`FunctionReward`."""
    if isinstance(reward, RewardFunction):
        return reward
    if callable(reward):
        return FunctionReward(reward, image_size=image_size)
    raise ConfigError(f"reward_fn must be a RewardFunction or a function of the frames, got {type(reward).__name__}.")


__all__ = [
    "EpisodeRewardFunction",
    "Frames",
    "FunctionReward",
    "PartialEpisodeRewardFunction",
    "RewardFunction",
    "RewardFunctionWrapper",
    "as_reward_function",
]
