"""Score the frames of all environments of a vector env in one batch.

Three modes:

- ``"step"``: after every vector step, the frames of all envs are scored in one batch and
  returned as the rewards (works with any algorithm).
- ``"rollout"`` (on-policy algorithms, PPO, with a reward that needs the episode's earlier frames:
  a video model, :class:`~vlmrm.reward.contract.PartialEpisodeRewardFunction`): each step returns
  the placeholder reward 0; the frames of each env's running episode are kept, across rollouts,
  and :meth:`VecVLMReward.score_rollout` scores every step taken since :meth:`VecVLMReward.begin_rollout`
  at once, the steps of episodes that end later included (a step's reward never depends on later
  frames). :class:`~vlmrm.rl.rollout_rewards.RolloutRewards` adds them to PPO's rollout buffer
  before the update. An episode's returns arrive in the info of its env's first step after that.
- ``"episode"`` (episode-end batching, for off-policy algorithms): frames of running episodes
  are kept; when episodes end, all their frames are scored in one batch. The finished
  episode's rewards travel in ``info["vlm_episode_rewards"]`` to a
  :class:`~vlmrm.rl.buffers.RelabelingReplayBuffer`, which writes them over the placeholder
  rewards (0) stored for that episode's transitions. Large batches use the model far better
  than one frame per env per step.

Finished episodes go to a scorer, and ``info["vlm_episode_rewards"]`` holds a
:class:`PendingRewards` (a future of that episode's rewards, one per step, in order) which the
replay buffer resolves when it completes. There is one path with two scorers: by default
(:class:`InlineScorer`) the episodes are scored at once, so the future is already complete and
``info["vlm_episode"]`` (the returns) arrives in the step that ends the episode; with
``overlap=True`` (:class:`BackgroundScorer`) they are scored in a background thread while the
envs keep stepping and rendering, so a run goes at the pace of the slower of rendering and the
model instead of their sum (torch releases the GIL inside its kernels), and the returns arrive
in the info of a later step of the same env. The step that ends an episode returns the episode's
last reward when it is known by then, else the placeholder 0 like the others. Queued work is
bounded by ``max_in_flight_frames`` (by default two batches, or one round of episodes of all
envs if that is more): when the model falls behind, stepping waits for it.

Frames are stacked and scored ``max_batch_frames`` at a time, so memory holds the running
episodes' frames, the frames in flight and one stacked chunk, never a run's worth.

Frames come from ``info["frame"]`` (host arrays, from
:class:`~vlmrm.rl.wrappers.RenderFrameInInfo`), or, from a vector env that draws all its frames in
one call (:class:`~vlmrm.envs.vector.vec_env.FrameBatchSource`, ``env.vectorized: true``), as one
tensor on the reward model's device. Such tensors stay where they are: the frames of running
episodes are views of the step tensors, kept on the device (at most ``n_envs`` x the episode
length frames, plus those in flight: 16 envs x 200 steps of 224 x 224 frames are 482 MB), stacked
on the device and handed to the reward function there. A reward function on the CPU (``device``
``cpu``: a plain function, a Ray pool) gets host arrays, as ever (:func:`frames_for`).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any, Literal

import numpy as np
import torch
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn

from vlmrm.envs.vector.vec_env import FrameBatchSource
from vlmrm.reward.contract import EpisodeRewardFunction, RewardFunction, scores_partial_episodes, wants_episodes
from vlmrm.rl.streams import ScoringStream, frames_ready
from vlmrm.rl.wrappers import ENV_REWARD_KEY, EPISODE_KEY, FRAME_KEY

EPISODE_REWARDS_KEY = "vlm_episode_rewards"
RewardMode = Literal["step", "episode", "rollout"]


FrameBatch = np.ndarray | torch.Tensor
"""Frames ``(N, H, W, 3)`` uint8: a host array, or a tensor on the device that drew them."""


MONITOR_KEY = "episode"
"""stable-baselines3's ``info["episode"]`` (``{"r", "l"}``): its ``rollout/ep_rew_mean`` and ``ep_len_mean``."""


def monitor_episode(info: dict[str, Any]) -> None:
    """Make ``info["episode"]`` report the VLM return, the reward trained on, so that stable-baselines3's
    ``rollout/ep_rew_mean`` is that return; the env's return is ``"env_r"`` there (and ``rollout/env_return``).

    The ``Monitor`` below sees only the env's rewards; its statistics are replaced where the VLM return is
    reported (the step that ends the episode, or a later one when it is scored in the background).
    """
    info.pop(MONITOR_KEY, None)
    stats = info.get(EPISODE_KEY)
    if stats is not None:
        info[MONITOR_KEY] = {"r": stats["vlm_return"], "l": stats["length"], "env_r": stats["env_return"]}


def take_step_frames(venv: VecEnv, infos: list[dict[str, Any]]) -> FrameBatch:
    """The frames of the step that returned ``infos``: ``venv``'s batch when it draws one
    (:class:`~vlmrm.envs.vector.vec_env.FrameBatchSource`), else ``info["frame"]`` of each env, popped."""
    source = venv.unwrapped if isinstance(venv, VecEnvWrapper) else venv
    if isinstance(source, FrameBatchSource):
        return source.step_frames()
    try:
        frames = [info.pop(FRAME_KEY) for info in infos]
    except KeyError:
        raise RuntimeError("no frame in info: wrap each env in vlmrm.rl.wrappers.RenderFrameInInfo") from None
    return np.stack(frames)


def frames_for(reward_fn: RewardFunction, frames: FrameBatch) -> FrameBatch:
    """``frames`` where ``reward_fn`` wants them (its ``device``): a host array for the CPU (no copy from a
    CPU tensor), a tensor on its device otherwise (moved only when elsewhere); host arrays stay as they are."""
    if not isinstance(frames, torch.Tensor):
        return frames
    device = torch.device(getattr(reward_fn, "device", "cpu"))
    if device.type == "cpu":
        return frames.detach().cpu().numpy()
    return frames if frames.device == device else frames.to(device)


def _stack(frames: FrameBatch | Sequence[np.ndarray] | Sequence[torch.Tensor]) -> FrameBatch:
    if isinstance(frames, np.ndarray | torch.Tensor):
        return frames
    items: list[Any] = list(frames)
    return torch.stack(items) if isinstance(items[0], torch.Tensor) else np.stack(items)


def score_frames(
    reward_fn: RewardFunction,
    frames: FrameBatch | Sequence[np.ndarray] | Sequence[torch.Tensor],
    max_batch_frames: int,
) -> np.ndarray:
    """Score frames (stacked, or a list of frames), passing at most ``max_batch_frames`` at a time to
    ``reward_fn``, where it wants them (:func:`frames_for`)."""
    scored = [
        np.asarray(
            reward_fn(frames_for(reward_fn, _stack(frames[start : start + max_batch_frames]))), dtype=np.float32
        ).reshape(-1)
        for start in range(0, len(frames), max_batch_frames)
    ]
    return np.concatenate(scored) if scored else np.zeros(0, dtype=np.float32)


def score_episodes(reward_fn: RewardFunction, episodes: Sequence[Sequence[Any]], max_batch_frames: int) -> np.ndarray:
    """The rewards of the episodes' frames, in order: frame by frame (:func:`score_frames`), or, for a
    reward that needs an episode's earlier frames (:class:`~vlmrm.reward.contract.EpisodeRewardFunction`),
    episode by episode."""
    if wants_episodes(reward_fn) and isinstance(reward_fn, EpisodeRewardFunction):
        scored = reward_fn.score_episodes([frames_for(reward_fn, _stack(episode)) for episode in episodes if episode])
        return np.concatenate(scored).astype(np.float32) if scored else np.zeros(0, dtype=np.float32)
    return score_frames(reward_fn, [f for episode in episodes for f in episode], max_batch_frames)


class PendingRewards:
    """The rewards of one finished episode: known already, or still being computed by a background thread.

    ``len()`` is the episode's length; :meth:`result` blocks until the rewards are known and
    returns them as float32 ``(length,)``, in step order (or raises the scorer's exception).
    """

    def __init__(self, job: Future, start: int, stop: int):
        self._job = job
        self._start = start
        self._stop = stop

    @classmethod
    def known(cls, rewards: np.ndarray) -> PendingRewards:
        """Rewards known already (a completed future)."""
        job: Future = Future()
        job.set_result(np.asarray(rewards, dtype=np.float32))
        return cls(job, 0, len(rewards))

    def __len__(self) -> int:
        return self._stop - self._start

    def done(self) -> bool:
        return self._job.done()

    def result(self, timeout: float | None = None) -> np.ndarray:
        return self._job.result(timeout)[self._start : self._stop]


def _split(job: Future, episodes: list[list[np.ndarray]]) -> list[PendingRewards]:
    """One :class:`PendingRewards` per episode, all slices of the rewards ``job`` computes for their frames in order."""
    pending, start = [], 0
    for episode in episodes:
        pending.append(PendingRewards(job, start, start + len(episode)))
        start += len(episode)
    return pending


class InlineScorer:
    """Scores finished episodes at once, in one batch per call, and hands back completed futures."""

    def __init__(self, reward_fn: RewardFunction, max_batch_frames: int):
        self.reward_fn = reward_fn
        self.max_batch_frames = max_batch_frames
        self.in_flight_frames = 0

    def submit(self, episodes: list[list[np.ndarray]], limit: int) -> list[PendingRewards]:
        job: Future = Future()
        try:
            job.set_result(score_episodes(self.reward_fn, episodes, self.max_batch_frames))
        except BaseException as exc:  # raised where the rewards are needed, as with the background scorer
            job.set_exception(exc)
        return _split(job, episodes)

    def drain(self) -> None:
        """Nothing is ever in flight."""

    def close(self) -> None:
        """Nothing to stop."""


class BackgroundScorer:
    """One thread that scores finished episodes, coalescing queued ones into one batch.

    Frames on a CUDA device are scored on the thread's own stream, after an event recorded when they were
    submitted (:mod:`vlmrm.rl.streams`): the model runs beside the next steps' drawing, not behind it.

    While the thread is busy, episodes queue up; it then takes as many as fit into
    ``max_batch_frames`` (at least one submission), so a slow model sees large batches and a fast
    one small delays. :meth:`submit` waits while more than ``limit`` frames would be queued or
    being scored (one submission is always accepted), which bounds memory.
    """

    def __init__(self, reward_fn: RewardFunction, max_batch_frames: int):
        self.reward_fn = reward_fn
        self.max_batch_frames = max_batch_frames
        self._queue: deque[tuple[list[list[np.ndarray]], int, Future, torch.cuda.Event | None]] = deque()
        self._stream = ScoringStream()
        self._in_flight_frames = 0
        self._closed = False
        self._condition = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="vlmrm-reward-scorer", daemon=True)
        self._thread.start()

    @property
    def in_flight_frames(self) -> int:
        with self._condition:
            return self._in_flight_frames

    def submit(self, episodes: list[list[np.ndarray]], limit: int) -> list[PendingRewards]:
        count = sum(len(episode) for episode in episodes)
        job: Future = Future()
        with self._condition:
            if self._closed:
                raise RuntimeError("the background reward scorer was closed")
            while self._in_flight_frames and self._in_flight_frames + count > limit:
                self._condition.wait()
            self._queue.append((episodes, count, job, frames_ready([f for episode in episodes for f in episode])))
            self._in_flight_frames += count
            self._condition.notify_all()
        return _split(job, episodes)

    def drain(self) -> None:
        """Wait until every submitted episode has been scored."""
        with self._condition:
            while self._in_flight_frames:
                self._condition.wait()

    def close(self) -> None:
        """Score what was submitted, then stop the thread."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        self._thread.join()

    def _take_batch(self) -> list[tuple[list[list[np.ndarray]], int, Future, torch.cuda.Event | None]] | None:
        with self._condition:
            while not self._queue and not self._closed:
                self._condition.wait()
            if not self._queue:
                return None
            batch = [self._queue.popleft()]
            size = batch[0][1]
            while self._queue and size + self._queue[0][1] <= self.max_batch_frames:
                size += self._queue[0][1]
                batch.append(self._queue.popleft())
            return batch

    def _run(self) -> None:
        while (batch := self._take_batch()) is not None:
            episodes = [episode for submitted, _, _, _ in batch for episode in submitted]
            count = sum(size for _, size, _, _ in batch)
            frames = [frame for episode in episodes for frame in episode]
            try:
                with self._stream.reading(frames, [ready for _, _, _, ready in batch]):
                    rewards = score_episodes(self.reward_fn, episodes, self.max_batch_frames)
                start = 0
                for _, size, job, _ in batch:
                    job.set_result(rewards[start : start + size])
                    start += size
            except BaseException as exc:  # delivered to whoever waits on the rewards
                for _, _, job, _ in batch:
                    if not job.done():
                        job.set_exception(exc)
            with self._condition:
                self._in_flight_frames -= count
                self._condition.notify_all()


class VecVLMReward(VecEnvWrapper):
    """Replace the rewards of a vector env with VLM rewards of the frames in ``info["frame"]``.

    The wrapped envs must be wrapped in :class:`~vlmrm.rl.wrappers.RenderFrameInInfo`, or the
    vector env must draw its frames itself (:class:`~vlmrm.envs.vector.vec_env.FrameBatchSource`).
    ``last_frames`` holds the frames of the latest step as a host array (for videos).

    Args:
        venv: the vector env.
        reward_fn: a :class:`~vlmrm.reward.contract.RewardFunction` (uint8 frames ``(N, H, W, 3)`` ->
            float32 rewards ``(N,)``).
        mode: ``"step"`` or ``"episode"`` (see the module docstring).
        overlap: in episode mode, score finished episodes in a background thread while the envs
            keep stepping (rewards then arrive later, as :class:`PendingRewards` that complete).
        max_batch_frames: most frames stacked for one ``reward_fn`` call; default ``reward_fn.batch_size``.
        max_in_flight_frames: with ``overlap``, most frames of finished episodes queued for or
            being scored before stepping waits; default the larger of ``2 * max_batch_frames`` and
            ``num_envs`` times the longest episode so far (so envs that end together do not stall).
    """

    def __init__(
        self,
        venv: VecEnv,
        reward_fn: RewardFunction,
        mode: RewardMode = "step",
        overlap: bool = False,
        max_batch_frames: int | None = None,
        max_in_flight_frames: int | None = None,
    ):
        super().__init__(venv)
        if mode not in ("step", "episode", "rollout"):
            raise ValueError(f"mode must be 'step', 'episode' or 'rollout', got {mode!r}")
        if mode == "rollout" and not scores_partial_episodes(reward_fn):
            raise ValueError(f"mode='rollout' needs a reward that scores unfinished episodes, not {reward_fn.name!r}")
        if overlap and mode != "episode":
            raise ValueError("overlap=True needs mode='episode': in step mode each step's rewards are needed at once")
        max_batch_frames = reward_fn.batch_size if max_batch_frames is None else max_batch_frames
        if max_batch_frames <= 0 or (max_in_flight_frames is not None and max_in_flight_frames <= 0):
            raise ValueError("max_batch_frames and max_in_flight_frames must be positive")
        self.reward_fn = reward_fn
        self.mode = mode
        self.overlap = overlap
        self.max_batch_frames = max_batch_frames
        self.max_in_flight_frames = max_in_flight_frames
        self._longest_episode = 0
        self._last_frames: FrameBatch | None = None
        self._last_host: np.ndarray | None = None
        self._episode_frames: list[list[Any]] = [[] for _ in range(self.num_envs)]
        self._vlm_returns = np.zeros(self.num_envs, dtype=np.float64)
        self._env_returns = np.zeros(self.num_envs, dtype=np.float64)
        self._lengths = np.zeros(self.num_envs, dtype=np.int64)
        scorer = BackgroundScorer if overlap else InlineScorer
        self._scorer = scorer(reward_fn, max_batch_frames) if mode == "episode" else None
        # Episode mode: (env index, pending rewards, env return, length) of episodes whose returns are not reported yet.
        self._unreported: deque[tuple[int, PendingRewards, float, int]] = deque()
        # Rollout mode: each env's episode step at which the rollout began, its episodes that ended in the
        # rollout (frames, that step, env return, VLM return before the rollout), the returns to report.
        self._rollout_first = np.zeros(self.num_envs, dtype=np.int64)
        self._ended: list[list[tuple[list[Any], int, float, float]]] = [[] for _ in range(self.num_envs)]
        self._rollout_steps = 0
        self._to_report: deque[tuple[int, dict[str, Any]]] = deque()

    def reset(self) -> Any:
        self._episode_frames = [[] for _ in range(self.num_envs)]
        self._rollout_first[:] = 0
        self._ended = [[] for _ in range(self.num_envs)]
        self._rollout_steps = 0
        self._vlm_returns[:] = 0.0
        self._env_returns[:] = 0.0
        self._lengths[:] = 0
        return self.venv.reset()

    @property
    def last_frames(self) -> np.ndarray | None:
        """The frames of the latest step, ``(N, H, W, 3)`` uint8 on the host (copied from the device once)."""
        if self._last_host is None and self._last_frames is not None:
            frames = self._last_frames
            self._last_host = frames.detach().cpu().numpy() if isinstance(frames, torch.Tensor) else frames
        return self._last_host

    def step_wait(self) -> VecEnvStepReturn:
        obs, env_rewards, dones, infos = self.venv.step_wait()
        frames = take_step_frames(self.venv, infos)
        self._last_frames, self._last_host = frames, None
        for i, info in enumerate(infos):
            info[ENV_REWARD_KEY] = float(env_rewards[i])
        self._env_returns += env_rewards
        self._lengths += 1
        if self.mode == "rollout":
            rewards = self._hold_rollout_frames(frames, dones)
            self._report_rollout_returns(infos)
        elif self._scorer is None:
            rewards = score_frames(self.reward_fn, frames, self.max_batch_frames)
            self._vlm_returns += rewards
            for i in np.flatnonzero(dones).tolist():
                infos[i][EPISODE_KEY] = self._episode_stats(float(self._vlm_returns[i]), i)
        else:
            rewards = self._end_episodes(frames, dones, infos)
            self._report_scored_episodes(infos)
        for i in np.flatnonzero(dones).tolist():
            self._vlm_returns[i] = self._env_returns[i] = 0.0
            self._lengths[i] = 0
        for info in infos:
            monitor_episode(info)
        return obs, rewards, dones, infos

    def _episode_stats(self, vlm_return: float, env: int) -> dict[str, Any]:
        return {
            "vlm_return": vlm_return,
            "env_return": float(self._env_returns[env]),
            "length": int(self._lengths[env]),
        }

    def _end_episodes(self, frames: FrameBatch, dones: np.ndarray, infos: list[dict[str, Any]]) -> np.ndarray:
        """Keep each env's frame; hand the finished episodes to the scorer, in one submission."""
        assert self._scorer is not None
        for i, frame in enumerate(frames):
            self._episode_frames[i].append(frame)
        rewards = np.zeros(self.num_envs, dtype=np.float32)
        finished = np.flatnonzero(dones).tolist()
        if not finished:
            return rewards
        episodes = [self._episode_frames[i] for i in finished]
        self._longest_episode = max(self._longest_episode, *map(len, episodes))
        limit = self.max_in_flight_frames or max(2 * self.max_batch_frames, self.num_envs * self._longest_episode)
        for i, pending in zip(finished, self._scorer.submit(episodes, limit), strict=True):
            infos[i][EPISODE_REWARDS_KEY] = pending
            self._unreported.append((i, pending, float(self._env_returns[i]), int(self._lengths[i])))
            self._episode_frames[i] = []
            if pending.done():  # the step that ends the episode gets its true reward when it is known
                rewards[i] = pending.result()[-1]
        return rewards

    # -- rollout mode ---------------------------------------------------------------------------------

    def _hold_rollout_frames(self, frames: FrameBatch, dones: np.ndarray) -> np.ndarray:
        """Keep each env's frame; set aside the episodes that ended; the placeholder rewards (0)."""
        self._rollout_steps += 1
        for i, frame in enumerate(frames):
            self._episode_frames[i].append(frame)
        for i in np.flatnonzero(dones).tolist():
            # The VLM return of its steps in earlier rollouts goes with it (the env's sum restarts at 0).
            ended = (self._episode_frames[i], int(self._rollout_first[i]), float(self._env_returns[i]))
            self._ended[i].append((*ended, float(self._vlm_returns[i])))
            self._episode_frames[i] = []
            self._rollout_first[i] = 0
        return np.zeros(self.num_envs, dtype=np.float32)

    def begin_rollout(self) -> None:
        """Rollout mode: start counting the steps :meth:`score_rollout` scores (steps taken since the last
        :meth:`score_rollout` and not scored, by a rollout cut short, are dropped: no buffer holds them)."""
        for i in range(self.num_envs):
            self._ended[i] = []
            self._rollout_first[i] = len(self._episode_frames[i])
        self._rollout_steps = 0

    def score_rollout(self) -> np.ndarray:
        """Rollout mode: the VLM rewards ``(steps, num_envs)`` of every step since :meth:`begin_rollout`, in one
        call of the reward (:meth:`~vlmrm.reward.contract.PartialEpisodeRewardFunction.score_episode_steps`)."""
        if self.mode != "rollout":
            raise RuntimeError("score_rollout() is for mode='rollout'")
        episodes: list[FrameBatch] = []
        first: list[int] = []
        finished: list[bool] = []
        owners: list[int] = []
        for i in range(self.num_envs):
            for frames, start, _, _ in self._ended[i]:
                episodes.append(frames_for(self.reward_fn, _stack(frames)))
                first.append(start)
                finished.append(True)
                owners.append(i)
            if len(self._episode_frames[i]) > self._rollout_first[i]:
                episodes.append(frames_for(self.reward_fn, _stack(self._episode_frames[i])))
                first.append(int(self._rollout_first[i]))
                finished.append(False)
                owners.append(i)
        scored = self.reward_fn.score_episode_steps(episodes, first, finished) if episodes else []  # type: ignore[attr-defined]
        columns: list[list[np.ndarray]] = [[] for _ in range(self.num_envs)]
        for i, values in zip(owners, scored, strict=True):
            columns[i].append(np.asarray(values, dtype=np.float32))
        rewards = np.zeros((self._rollout_steps, self.num_envs), dtype=np.float32)
        for i in range(self.num_envs):
            column = np.concatenate(columns[i]) if columns[i] else np.zeros(0, dtype=np.float32)
            if column.shape != (self._rollout_steps,):
                raise RuntimeError(f"env {i}: {column.shape[0]} rewards for the rollout's {self._rollout_steps} steps")
            rewards[:, i] = column
            parts = iter(columns[i])
            for frames, _, env_return, earlier in self._ended[i]:
                vlm_return = earlier + float(next(parts).sum(dtype=np.float64))
                self._to_report.append((i, {"vlm_return": vlm_return, "env_return": env_return, "length": len(frames)}))
            running = next(parts, None)
            if running is not None:
                self._vlm_returns[i] += running.sum(dtype=np.float64)
        self.begin_rollout()
        return rewards

    def _report_rollout_returns(self, infos: list[dict[str, Any]]) -> None:
        """Put the returns of episodes scored at the end of a rollout, oldest first, into ``info["vlm_episode"]``
        of their env (one per env and step)."""
        kept: deque[tuple[int, dict[str, Any]]] = deque()
        while self._to_report:
            i, stats = self._to_report.popleft()
            if EPISODE_KEY in infos[i]:
                kept.append((i, stats))
            else:
                infos[i][EPISODE_KEY] = stats
        self._to_report = kept

    def _report_scored_episodes(self, infos: list[dict[str, Any]]) -> None:
        """Put the returns of scored episodes, oldest first, into ``info["vlm_episode"]`` of their env.

        One report per env and step; the rest wait for the next step. A scorer error is raised here.
        """
        kept: deque[tuple[int, PendingRewards, float, int]] = deque()
        while self._unreported:
            entry = self._unreported.popleft()
            i, pending, env_return, length = entry
            if pending.done() and EPISODE_KEY not in infos[i]:
                episode_rewards = pending.result()
                infos[i][EPISODE_KEY] = {
                    "vlm_return": float(episode_rewards.sum(dtype=np.float64)),
                    "env_return": env_return,
                    "length": length,
                }
            else:
                kept.append(entry)
        self._unreported = kept

    def drain(self) -> None:
        """With ``overlap``: wait until every finished episode has been scored (no-op otherwise)."""
        if self._scorer is not None:
            self._scorer.drain()

    def running_episode_frames(self) -> list[list[Any]]:
        """Episode mode: the frames kept for each env's running episode, not scored yet."""
        return self._episode_frames

    def pending_frames(self) -> int:
        """Frames kept for running episodes (bounded by the episode length times the number of envs)."""
        return sum(len(frames) for frames in self._episode_frames)

    def in_flight_frames(self) -> int:
        """With ``overlap``: frames of finished episodes queued for or being scored."""
        return 0 if self._scorer is None else self._scorer.in_flight_frames

    def close(self) -> None:
        if self._scorer is not None:
            self._scorer.close()
        super().close()
