"""stable-baselines3 callbacks: VLM and env returns in TensorBoard, progress, evaluation, checkpoints, interrupts."""

from __future__ import annotations

import logging
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from tqdm.auto import tqdm

from vlmrm.files import atomic_write
from vlmrm.rl.rollout import EvaluationResult, evaluate
from vlmrm.rl.vec_env import VecVLMReward
from vlmrm.rl.video import SharpView, shrink, video_encoder_problem, video_frame, write_video
from vlmrm.rl.wrappers import EPISODE_KEY
from vlmrm.training.logs import StepLogger

logger = logging.getLogger(__name__)

TENSORBOARD_ONLY = ("stdout", "log", "json", "csv")
"""``exclude`` of values only TensorBoard can show (images)."""


def crossed(previous: int, current: int, every: int) -> bool:
    """True when a multiple of ``every`` lies in ``(previous, current]``."""
    return every > 0 and current // every > previous // every


class EpisodeReturnLogger(BaseCallback):
    """Log ``rollout/vlm_return`` and ``rollout/env_return``: means over the last ``window`` episodes."""

    def __init__(self, window: int = 20):
        super().__init__()
        self.vlm_returns: deque[float] = deque(maxlen=window)
        self.env_returns: deque[float] = deque(maxlen=window)
        self.episodes = 0

    def _on_step(self) -> bool:
        ended = False
        for info in self.locals.get("infos", []):
            stats = info.get(EPISODE_KEY)
            if stats is not None:
                self.vlm_returns.append(stats["vlm_return"])
                self.env_returns.append(stats["env_return"])
                self.episodes += 1
                ended = True
        if ended:
            self.logger.record("rollout/vlm_return", float(np.mean(self.vlm_returns)))
            self.logger.record("rollout/env_return", float(np.mean(self.env_returns)))
            self.logger.record("rollout/episodes", self.episodes)
        return True

    def state_dict(self) -> dict[str, Any]:
        return {"vlm_returns": list(self.vlm_returns), "env_returns": list(self.env_returns), "episodes": self.episodes}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.vlm_returns.extend(state.get("vlm_returns", []))
        self.env_returns.extend(state.get("env_returns", []))
        self.episodes = int(state.get("episodes", 0))


class LogReleaser(BaseCallback):
    """Write the logger's held row once the step moves on (see :class:`~vlmrm.training.logs.StepLogger`)."""

    def __init__(self, step_logger: StepLogger):
        super().__init__()
        self.step_logger = step_logger

    def _on_step(self) -> bool:
        self.step_logger.release_before(self.num_timesteps)
        return True


class StopAtTotalSteps(BaseCallback):
    """Stop learning exactly at ``total_steps``.

    Off-policy algorithms collect ``train_freq`` steps at a time and would otherwise overshoot.
    """

    def __init__(self, total_steps: int):
        super().__init__()
        self.total_steps = total_steps

    def _on_step(self) -> bool:
        return self.num_timesteps < self.total_steps


class ProgressBar(BaseCallback):
    """Progress over environment steps with steps/s: a tqdm bar on a terminal, else a log line every few percent.

    Where stderr is no terminal (a file, a CI log) a bar's carriage-return updates would pile up as
    lines; there one ``logging`` line every ``every_percent`` percent says the step, steps/s and the
    time left (``tty``: whether stderr is a terminal; ``None``: ask it).
    """

    def __init__(
        self,
        total_steps: int,
        initial_steps: int = 0,
        tty: bool | None = None,
        every_percent: int = 5,
        clock: Callable[[], float] = time.monotonic,
    ):
        super().__init__()
        self.total_steps = total_steps
        self.initial_steps = initial_steps
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.every = max(1, total_steps * every_percent // 100)
        self.clock = clock
        self.bar: tqdm | None = None
        self._last = initial_steps
        self._started_at = 0.0
        self._started_step = initial_steps

    def _on_training_start(self) -> None:
        if self.tty:
            self.bar = tqdm(
                total=self.total_steps, initial=self.initial_steps, unit="step", unit_scale=True, dynamic_ncols=True
            )
        self._last = self._started_step = self.num_timesteps
        self._started_at = self.clock()

    def _on_step(self) -> bool:
        if self.bar is not None:
            self.bar.update(self.num_timesteps - self._last)
        elif crossed(self._last, self.num_timesteps, self.every):
            self._log_line()
        self._last = self.num_timesteps
        return True

    def _log_line(self) -> None:
        steps, total = min(self.num_timesteps, self.total_steps), self.total_steps
        elapsed = self.clock() - self._started_at
        rate = (steps - self._started_step) / elapsed if elapsed > 0 else 0.0
        eta = tqdm.format_interval((total - steps) / rate) if rate > 0 else "?"
        logger.info("vlmrm: step %d of %d (%d%%), %.1f steps/s, %s left", steps, total, 100 * steps // total, rate, eta)

    def _on_training_end(self) -> None:
        if self.bar is not None:
            self.bar.close()


TENSORBOARD_VIDEO_SIZE = 256
"""The largest side of TensorBoard's ``eval/video`` GIF: a GIF of 512 px frames takes several times as long to
encode and to load in the browser, for a glance; the mp4 keeps ``logging.video_size``."""


class EvaluationCallback(BaseCallback):
    """Every ``eval_freq`` steps evaluate the policy; every ``video_freq`` steps write an mp4 of it.

    Each video's episode is also logged to TensorBoard as ``eval/video`` (an animated GIF in the Images tab).
    Its frames are ``video_size`` pixels a side: ``video_view()`` makes a :class:`~vlmrm.rl.video.SharpView`
    of the evaluation env for each video, which draws each step again at that size; where it gives ``None``
    (an env that cannot set its state) the model's frames are enlarged.

    No periodic evaluation happens at or after ``final_step``: the trainer's final evaluation
    (``run(..., video=True)``) covers that step, and each step is logged once.

    With ``inspect_episode_length`` (the env's episode length; ``logging.inspect``) each evaluation
    also logs the reward inspection of :mod:`vlmrm.evaluation.inspection` to TensorBoard only:
    ``inspect/extremes`` (the highest- and lowest-reward frames) and ``inspect/episode`` (frames,
    VLM reward, env reward and success over the first episode), plus its numbers as scalars.
    ``on_video(path, step)`` is called after each video is written (experiment tracking);
    ``on_evaluation(step, result)`` after each full evaluation (``eval_episodes`` episodes, not a
    video-only one), to keep the best policy (:func:`vlmrm.rl.checkpoints.write_best`).
    """

    def __init__(
        self,
        eval_env: VecVLMReward,
        eval_freq: int,
        eval_episodes: int,
        video_freq: int,
        video_dir: Path,
        episode_success: Callable[[Sequence[bool]], bool] | None = None,
        fps: int = 30,
        final_step: int | None = None,
        inspect_episode_length: int | None = None,
        on_video: Callable[[Path, int], None] | None = None,
        on_evaluation: Callable[[int, EvaluationResult], None] | None = None,
        video_size: int | None = None,
        video_view: Callable[[], SharpView | None] | None = None,
    ):
        super().__init__()
        self.video_size = video_size
        self.video_view = video_view
        self.on_evaluation = on_evaluation
        self.inspect_episode_length = inspect_episode_length
        self.on_video = on_video
        self.eval_env = eval_env
        self.eval_freq = eval_freq
        self.eval_episodes = eval_episodes
        self.video_freq = video_freq
        self.video_dir = video_dir
        self.episode_success = episode_success
        self.fps = fps
        self.final_step = final_step
        self.history: list[dict[str, Any]] = []
        self._previous = 0
        self._said_no_videos = False

    def _on_training_start(self) -> None:
        # The step learning (re)starts at: 0, or a resumed run's checkpoint step.
        self._previous = self.num_timesteps

    def run(self, step: int, episodes: int, video: bool) -> EvaluationResult:
        keeper = None
        if self.inspect_episode_length is not None:
            from vlmrm.evaluation.inspection import FrameKeeper

            keeper = FrameKeeper(episode_length=self.inspect_episode_length)
        view = self.video_view() if video and self.video_view is not None else None
        if video and view is None:
            self.video_view = None  # the env cannot be drawn again (or needs not be): enlarge from now on
        try:
            result = evaluate(
                self.model, self.eval_env, episodes, self.episode_success, record_frames=video, frame_sink=keeper
            )
        finally:
            if view is not None:
                view.close()
        frames = self._video_frames(result.frames, view)
        if keeper is not None:
            self._log_inspection(result, keeper)
        self.logger.record("eval/env_return", result.mean_env_return)
        self.logger.record("eval/vlm_return", result.mean_vlm_return)
        self.logger.record("eval/mean_reward", result.mean_vlm_return)  # stable-baselines3's EvalCallback's name
        self.logger.record("eval/episode_length", float(np.mean(result.lengths)))
        if result.success_rate is not None:
            self.logger.record("eval/success_rate", result.success_rate)
            self.logger.record("eval/step_success_rate", result.step_success_rate)
        entry: dict[str, Any] = {
            "step": step,
            "env_return": result.mean_env_return,
            "vlm_return": result.mean_vlm_return,
            "success_rate": result.success_rate,
            "step_success_rate": result.step_success_rate,
        }
        if video and frames:
            self._log_video(frames)
        if video and frames and not self._videos_skipped():
            # Atomic: a kill or a full disk mid-encode leaves no truncated mp4 behind.
            path = self.video_dir / f"step_{step:010d}.mp4"
            atomic_write(path, lambda tmp: write_video(frames, tmp, fps=self.fps), tmp_suffix=".mp4")
            entry["video"] = str(path)
            if self.on_video is not None:
                self.on_video(path, step)
        self.history.append(entry)
        if self.on_evaluation is not None and episodes == self.eval_episodes:
            self.on_evaluation(step, result)
        self.logger.dump(step)
        return result

    def _video_frames(self, frames: list[np.ndarray], view: SharpView | None) -> list[np.ndarray]:
        """The video's frames at ``video_size``: the view's drawing of each recorded step, else the model's
        frames enlarged (``video_size`` None: as they are)."""
        if self.video_size is None:
            return frames
        return [video_frame(frame, view, self.video_size) for frame in frames]

    def _log_video(self, frames: Sequence[np.ndarray]) -> None:
        """The video's episode as TensorBoard's ``eval/video`` (an animated GIF: needs no video encoder), at most
        :data:`TENSORBOARD_VIDEO_SIZE` pixels a side."""
        import torch
        from stable_baselines3.common.logger import Video

        clip = torch.from_numpy(np.stack([shrink(frame, TENSORBOARD_VIDEO_SIZE) for frame in frames]))
        clip = clip.permute(0, 3, 1, 2).unsqueeze(0)  # (1, T, C, H, W)
        self.logger.record("eval/video", Video(clip, self.fps), exclude=TENSORBOARD_ONLY)

    def _log_inspection(self, result: EvaluationResult, keeper: Any) -> None:
        from stable_baselines3.common.logger import Image

        from vlmrm.evaluation.inspection import inspect_evaluation
        from vlmrm.evaluation.inspection_plots import tensorboard_images

        inspection = inspect_evaluation(result, keeper)
        for key, image in tensorboard_images(inspection).items():
            self.logger.record(f"inspect/{key}", Image(image, "HWC"), exclude=TENSORBOARD_ONLY)
        for key, value in inspection.scalars().items():
            self.logger.record(f"inspect/{key}", value)

    def _videos_skipped(self) -> bool:
        """Without a video encoder, say so once and train on: a run is never lost to its video."""
        problem = video_encoder_problem()
        if problem is not None and not self._said_no_videos:
            logger.warning("vlmrm: policy videos are skipped: %s", problem)
            self._said_no_videos = True
        return problem is not None

    def state_dict(self) -> dict[str, Any]:
        return {"history": list(self.history)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = list(state.get("history", []))

    def _on_step(self) -> bool:
        due_eval = crossed(self._previous, self.num_timesteps, self.eval_freq)
        due_video = crossed(self._previous, self.num_timesteps, self.video_freq)
        self._previous = self.num_timesteps
        if self.final_step is not None and self.num_timesteps >= self.final_step:
            return True
        if due_eval or due_video:
            self.run(self.num_timesteps, self.eval_episodes if due_eval else 1, video=due_video)
        return True


class CheckpointCallback(BaseCallback):
    """Every ``save_freq`` steps call ``save(step)`` (the trainer's atomic checkpoint writer)."""

    def __init__(self, save_freq: int, save: Callable[[int], Path]):
        super().__init__()
        self.save_freq = save_freq
        self.save = save
        self._previous = 0

    def _on_training_start(self) -> None:
        # The step learning (re)starts at: 0, or a resumed run's checkpoint step.
        self._previous = self.num_timesteps

    def _on_step(self) -> bool:
        if crossed(self._previous, self.num_timesteps, self.save_freq):
            path = self.save(self.num_timesteps)
            logger.debug("checkpoint written: %s", path)
        self._previous = self.num_timesteps
        return True


class StopOnInterrupt(BaseCallback):
    """Stop learning after the current step once ``interrupted()`` is true (SIGINT or SIGTERM received)."""

    def __init__(self, interrupted: Callable[[], bool]):
        super().__init__()
        self.interrupted = interrupted

    def _on_step(self) -> bool:
        return not self.interrupted()
