"""``train(config)`` and ``resume(run_dir)``: one run, from a config to a run directory.

A run directory holds::

    config.yaml        the resolved config (vlmrm.config.resolve)
    logs/              TensorBoard events and progress.csv (rollout/vlm_return, rollout/env_return, eval/...)
    checkpoints/       step_<N>.zip checkpoints (+ step_<N>.replay, their replay buffers), written atomically;
                       best.zip, the policy that scored the highest eval VLM return so far, and best.json
    videos/            step_<N>.mp4 of the policy
    summary.json       evaluation returns, success rate, steps/s; ``best`` and ``final`` side by side
    bad_frames/        only after a NaN/infinite reward: the frames that caused it
    .lock              held while a process trains in the directory

What survives what:

- SIGINT/SIGTERM: the current step finishes, a checkpoint is written, :class:`TrainingInterrupted`
  says how to resume (exit status 130/143 from the CLI). During the final evaluation the signal stops
  it at once (the final checkpoint is written first); resuming evaluates again.
- A kill at any moment: every file is written atomically, so the newest checkpoint is complete
  or absent; ``resume`` falls back past a corrupt one, or one that does not load.
- A full disk: :class:`WriteError` names the file and the intact checkpoint.
- A NaN or infinite reward: :class:`RewardError` names the step and saves the frame.

Any reward function of the reward contract trains, for example a plain function of the pixels:

>>> import numpy as np, tempfile, vlmrm
>>> def upright(frames):  # CartPole: how much of the pole colour sits in the middle column band
...     middle = frames[:, : frames.shape[1] // 2, 40:88].astype(float)
...     return (middle[..., 0] > 150).mean(axis=(1, 2)) - (middle[..., 2] > 150).mean(axis=(1, 2))
>>> config = vlmrm.config_from_dict({
...     "env": {"name": "cartpole", "episode_length": 20, "render_size": 128},
...     "rl": {"algorithm": "dqn", "total_steps": 60},
...     "logging": {"eval_episodes": 1, "video_freq": 0, "progress_bar": False}})
>>> result = vlmrm.train(config, run_dir=tempfile.mkdtemp() + "/run", reward_fn=upright)
>>> result.summary["total_steps"], result.summary["model"]
(60, 'upright')
"""

from __future__ import annotations

import contextlib
import functools
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList

from vlmrm.config import (
    TrainConfig,
    check_config,
    default_run_dir,
    is_off_policy,
    resolve,
)
from vlmrm.envs import get_env_spec
from vlmrm.errors import ConfigError, RewardError, TrainingInterrupted, WriteError
from vlmrm.reward.backend import build_reward_function, reward_facts
from vlmrm.reward.contract import RewardFunction, as_reward_function, scores_partial_episodes, wants_episodes
from vlmrm.rl.algorithms import make_algorithm
from vlmrm.rl.rollout import EvaluationResult
from vlmrm.rl.rollout_rewards import RolloutRewards
from vlmrm.rl.vec_env import RewardMode, VecVLMReward
from vlmrm.rl.vec_env_factory import make_vec_env
from vlmrm.rl.video import SharpView
from vlmrm.run.checkpoints import (
    BEST_FILE,
    BestRecord,
    CheckpointInfo,
    beats,
    prune_checkpoints,
    recover_best,
    write_best,
    write_checkpoint,
)
from vlmrm.run.lock import RunLock
from vlmrm.run.run_dir import SUMMARY_FILE, RunDir, check_reward_source, resume_command
from vlmrm.training.callbacks import (
    CheckpointCallback,
    EpisodeReturnLogger,
    EvaluationCallback,
    LogReleaser,
    ProgressBar,
    StopAtTotalSteps,
    StopOnInterrupt,
)
from vlmrm.training.guards import (
    GracefulInterrupt,
    InterruptNow,
    RewardGuard,
    check_episode_frames_fit,
    is_storage_error,
)
from vlmrm.training.guards import write_error as storage_error
from vlmrm.training.logs import StepLogger, make_logger
from vlmrm.training.resume import (
    capture_rng,
    check_checkpoint_config,
    load_newest_loadable,
    load_run_config,
    restore_rng,
    resume_point,
    tidy_for_resume,
)
from vlmrm.training.tracking import WandbTracker, check_tracking, start_tracking
from vlmrm.training.trainer_state import TrainerState

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    run_dir: Path
    summary: dict[str, Any]


def train(
    config: TrainConfig, run_dir: str | Path | None = None, overwrite: bool = False, reward_fn: Any = None
) -> TrainResult:
    """Train a policy on the reward described by ``config``; return the run directory and summary.

    ``reward_fn``: train on this reward instead of the config's model: a
    :class:`~vlmrm.reward.contract.RewardFunction`, or a plain function of the frames (uint8
    ``(N, H, W, 3)`` -> ``N`` rewards; it then gets frames of ``env.render_size``, default 224).
    Raises :class:`TrainingInterrupted` after SIGINT/SIGTERM (a checkpoint is written first).
    """
    config = check_config(config)
    if run_dir is not None and not str(run_dir).strip():
        raise ConfigError("The run directory is empty; give a path or leave it out (default runs/<env>-<date>).")
    path = Path(run_dir or config.logging.run_dir or default_run_dir(config))
    RunDir(path).check_free(overwrite)
    existed = path.exists()
    try:
        return _Run(config, path, reward_fn).execute(start=None, overwrite=overwrite)
    except (TrainingInterrupted, WriteError, RewardError):
        raise  # their messages refer to the run directory: keep it
    except BaseException:
        if not existed and path.is_dir() and RunDir(path).holds_nothing_to_keep():
            shutil.rmtree(path, ignore_errors=True)  # the same command can run again
        raise


def resume(run_dir: str | Path, overrides: list[str] | None = None, reward_fn: Any = None) -> TrainResult:
    """Continue the run in ``run_dir`` from its newest sound checkpoint (see :mod:`vlmrm.training.resume`).

    ``overrides`` (``"rl.total_steps=100000"``, ...) may change only resume-safe fields
    (:func:`vlmrm.config.resume_safe_fields`). Without any checkpoint the run starts again from step 0.
    A finished run whose ``summary.json`` is unreadable evaluates its final checkpoint again.

    Refused (:class:`ConfigError`): a ``config.yaml`` that differs from what the checkpoint was trained
    with, and a run trained on a Python reward function resumed without ``reward_fn`` (pass the same one).
    """
    path = Path(run_dir)
    config = load_run_config(path, overrides)
    lock = RunDir(path).lock().acquire()
    try:
        start = resume_point(config, path)
        if start is not None:
            check_checkpoint_config(config, start, path)
            check_reward_source(start.state, reward_fn, path, "vlmrm.resume({run_dir!r}, reward_fn=...)")
        return _Run(config, path, reward_fn).execute(start=start, overwrite=False, lock=lock)
    finally:
        lock.release()


def _quietly(close: Any, what: str) -> None:
    """Clean up without replacing the error that ended the run (a full disk can fail a log flush too)."""
    try:
        close()
    except Exception as exc:
        logger.warning("vlmrm: closing %s failed: %s", what, exc)


class _Run:
    """One training session in ``path``: a fresh run (``start=None``, step 0) or a resumed one."""

    def __init__(self, config: TrainConfig, path: Path, reward_fn: Any = None):
        self.config = config
        self.path = path
        self.run = RunDir(path)
        self.user_reward = reward_fn
        self.reward_function: str | None = None  # the name of the user's reward function, recorded in checkpoints
        self.model: BaseAlgorithm | None = None
        self.state: TrainerState | None = None  # of the checkpoint the session started from
        self.last_saved_step: int | None = None
        self.train_seconds = 0.0
        self.segment_start: float | None = None
        self.resumed_at: list[int] = []
        self.learning_starts: int | None = None
        self.returns = EpisodeReturnLogger()
        self.evaluation: EvaluationCallback | None = None
        self.run_logger: StepLogger | None = None
        self.tracker: WandbTracker | None = None
        self.best: BestRecord | None = None
        self.reward_mode: RewardMode = "step"  # how the training env scores frames (vlmrm.rl.vec_env)

    # -- the step numbers guards report --------------------------------------------------------------------

    def _steps(self) -> int:
        return 0 if self.model is None else int(self.model.num_timesteps)

    def _train_step(self) -> int:
        return self._steps() + self.config.rl.n_envs  # the step being taken, as logs and checkpoints count

    def _elapsed(self) -> float:
        running = 0.0 if self.segment_start is None else time.perf_counter() - self.segment_start
        return self.train_seconds + running

    # -- building ---------------------------------------------------------------------------------------------

    def _reward(self, stack: contextlib.ExitStack) -> RewardFunction:
        if self.user_reward is not None:
            reward = as_reward_function(self.user_reward, image_size=self.config.env.render_size or 224)
            self.reward_function = reward.name
        else:
            reward = build_reward_function(self.config.reward)
        stack.callback(_quietly, reward.close, "the reward function")
        return reward

    def _scores_rollouts(self, reward: RewardFunction) -> bool:
        """PPO scores a reward that needs the episode's earlier frames (a video model) when each rollout ends."""
        config = self.config
        return (
            not config.reward.episode_end_batching
            and not is_off_policy(config.rl.algorithm)
            and (scores_partial_episodes(reward))
        )

    def _holds_episodes(self, reward: RewardFunction) -> bool:
        """Whether the training envs keep their running episodes' frames (episode-end batching, PPO's rollouts)."""
        return bool(self.config.reward.episode_end_batching) or self._scores_rollouts(reward)

    def _video_view(self, eval_env: VecVLMReward) -> Callable[[], SharpView | None] | None:
        """What draws each policy video's episode again at ``logging.video_size`` (None: no new drawing)."""
        size, env = self.config.logging.video_size, self.config.env
        if size is None:
            return None
        return functools.partial(SharpView.attach, eval_env.venv, env, size, env.episode_length)

    def _envs(self, reward: RewardFunction, start_step: int, stack: contextlib.ExitStack) -> tuple[Any, Any]:
        config = self.config
        bad_frames = self.run.bad_frames_dir
        batching = bool(config.reward.episode_end_batching)
        rollout = self._scores_rollouts(reward)
        if not batching and not rollout and wants_episodes(reward):
            raise ConfigError(
                f"{reward.name!r} scores each step by a clip of its episode's frames, which needs episode-end "
                "batching with sac or dqn (reward.episode_end_batching: true), or ppo; or use an image model."
            )
        train_fn = RewardGuard(reward, bad_frames, self._train_step, per_env=not (batching or rollout))
        eval_fn = RewardGuard(reward, bad_frames, self._steps, per_env=False, label="eval_env")
        env, rl = config.env, config.rl
        assert env.render_size is not None and env.episode_length is not None and env.vectorized != "auto"  # resolved
        build = functools.partial(
            make_vec_env,
            env.name,
            render_size=env.render_size,
            episode_length=env.episode_length,
            options=env.options,
            vectorized=env.vectorized is True,
            device=reward.device,  # a vectorized env draws its frames where the reward model runs
        )
        inner = build(n_envs=rl.n_envs, seed=rl.seed + start_step, kind=rl.vec_env)
        stack.callback(_quietly, inner.close, "the training envs")
        self.reward_mode = "episode" if batching else "rollout" if rollout else "step"
        venv = VecVLMReward(inner, train_fn, mode=self.reward_mode, overlap=bool(config.reward.overlap_scoring))
        # Evaluation episodes are scored whole, in batches, when they end: far fewer model calls than per step.
        eval_env = VecVLMReward(build(n_envs=1, seed=rl.seed + 10_000), eval_fn, mode="episode")
        stack.callback(_quietly, eval_env.close, "the evaluation env")
        return venv, eval_env

    # -- the session ----------------------------------------------------------------------------------------

    def execute(self, start: CheckpointInfo | None, overwrite: bool, lock: RunLock | None = None) -> TrainResult:
        check_tracking(self.config)
        with contextlib.ExitStack() as stack:
            reward = self._reward(stack)
            self.config = resolve(self.config, reward_facts(reward), run_dir=self.path)
            check_episode_frames_fit(self.config, self._holds_episodes(reward))
            start_step = start.step if start else 0
            venv, eval_env = self._envs(reward, start_step, stack)
            device = "cpu" if self.config.reward.device == "cpu" else "auto"
            if start is None:
                self.model = make_algorithm(self.config, venv, device=device)
            else:
                self.model, start = load_newest_loadable(self.config, start, venv, device)
                self.state = TrainerState.from_dict(start.state)
                self.learning_starts = self.state.learning_starts if self.state else None
            # Everything that can be wrong has been found: only now touch the disk.
            try:
                if lock is not None:
                    tidy_for_resume(self.path, start, self.state, self.config.rl.total_steps)
                else:
                    self.run.prepare(overwrite)
                    stack.enter_context(self.run.lock())
                self.run.write_config(self.config)
                self._track(start, stack)  # before the TensorBoard writer exists: W&B patches it
                self.run_logger = make_logger(self.run.logs_dir, self.run.events_dir)
                stack.callback(_quietly, self.run_logger.close, "the logs")
                return self._learn(start, eval_env, reward, stack)
            except OSError as exc:
                if is_storage_error(exc, self.path):
                    raise storage_error(exc, self.path) from exc
                raise

    def _track(self, start: CheckpointInfo | None, stack: contextlib.ExitStack) -> None:
        """Start W&B tracking (``logging.wandb``); it ends after the logs are flushed, failed or not."""
        tracker = self.tracker = start_tracking(self.config, self.path, resumed=start is not None)
        if tracker is not None:
            stack.push(lambda kind, *_: _quietly(lambda: tracker.finish(0 if kind is None else 1), "W&B"))

    def save(self, step: int) -> Path:
        path = self.run.checkpoint_path(step)
        if step == self.last_saved_step and path.exists():
            return path  # the model has not changed since
        assert self.model is not None and self.evaluation is not None and self.run_logger is not None
        state = TrainerState(
            step=step,
            config=self.config.model_dump(mode="json"),
            rng=capture_rng(self.model),
            learning_starts=self.learning_starts,
            train_seconds=self._elapsed(),
            resumed_at=self.resumed_at,
            episode_returns=self.returns.state_dict(),
            evaluation=self.evaluation.state_dict(),
            logs=self.run_logger.state_dict(),
            reward_function=self.reward_function,
        )
        write_checkpoint(self.model, path, state.to_dict(), bool(self.config.logging.save_replay_buffer))
        prune_checkpoints(self.run.checkpoints_dir, self.config.logging.keep_checkpoints)
        self.last_saved_step = step
        return path

    def keep_best(self, step: int, result: EvaluationResult) -> None:
        """After an evaluation: keep the policy as ``best.zip`` when its VLM return beats the best so far."""
        if not beats(result.mean_vlm_return, self.best):
            return
        assert self.model is not None
        record = _record(step, result)
        write_best(self.model, self.run.checkpoints_dir, record)
        self.best = record
        logger.info("vlmrm: new best policy at step %d (eval VLM return %.4g)", step, record.vlm_return)

    def _restore(self, start: CheckpointInfo | None) -> None:
        """Carry the checkpoint's trainer state into this session (return windows, history, logs, RNG)."""
        assert self.model is not None and self.evaluation is not None and self.run_logger is not None
        if self.learning_starts is None:
            self.learning_starts = getattr(self.model, "learning_starts", None)
        if start is None:
            return
        # The best policy survives the resume, even one evaluated after the checkpoint resumed from.
        self.best = recover_best(self.run.checkpoints_dir)
        state, finished = self.state, self.run.finished_at(start.step)
        if state is not None:
            self.returns.load_state_dict(state.episode_returns or {})
            self.evaluation.load_state_dict(state.evaluation or {})
            if not finished:  # a finished run wrote everything it held
                self.run_logger.load_state_dict(state.logs or {})
            self.train_seconds, self.resumed_at = state.train_seconds, list(state.resumed_at)
            restore_rng(state.rng, self.model)
        summary = self.run.summary()
        if finished and summary is not None and isinstance(summary.get("eval_history"), list):
            # A run that finished at this step evaluated once more after its last checkpoint: keep that entry.
            self.evaluation.history = summary["eval_history"]
        self.resumed_at.append(start.step)
        self.last_saved_step = start.step

    def _callbacks(self, start_step: int, interrupt: GracefulInterrupt) -> list[BaseCallback]:
        log, total = self.config.logging, self.config.rl.total_steps
        assert self.evaluation is not None and self.run_logger is not None
        callbacks: list[BaseCallback] = [
            LogReleaser(self.run_logger),
            self.returns,
            self.evaluation,
            StopAtTotalSteps(total),
            CheckpointCallback(log.checkpoint_freq, self.save),
            StopOnInterrupt(lambda: interrupt.received is not None),
        ]
        if self.reward_mode == "rollout":
            callbacks.insert(0, RolloutRewards())  # each rollout's rewards before anything reads the buffer
        if log.progress_bar:
            callbacks.insert(0, ProgressBar(total, initial_steps=start_step))
        return callbacks

    def _learn(
        self, start: CheckpointInfo | None, eval_env: VecVLMReward, reward: RewardFunction, stack: contextlib.ExitStack
    ) -> TrainResult:
        config, model = self.config, self.model
        assert model is not None and self.run_logger is not None
        total, start_step = config.rl.total_steps, start.step if start else 0
        model.set_logger(self.run_logger)
        spec = get_env_spec(config.env.name)
        log = config.logging
        self.evaluation = EvaluationCallback(
            eval_env, log.eval_freq, log.eval_episodes, log.video_freq, self.run.videos_dir, spec.episode_success,
            final_step=total, inspect_episode_length=config.env.episode_length if log.inspect else None,
            on_video=self.tracker.log_video if self.tracker is not None else None, on_evaluation=self.keep_best,
            video_size=log.video_size, video_view=self._video_view(eval_env),
        )  # fmt: skip
        self._restore(start)
        interrupt = stack.enter_context(GracefulInterrupt())
        logger.info(
            "vlmrm: %s %s on %s with %s%s; run directory %s",
            "resuming" if start else "training", config.rl.algorithm, config.env.name, reward.name,
            f" at step {start_step} of {total}" if start else "", self.path,
        )  # fmt: skip
        self.segment_start = time.perf_counter()
        if model.num_timesteps < total:
            callbacks = CallbackList(self._callbacks(start_step, interrupt))
            model.learn(total_timesteps=total - model.num_timesteps, callback=callbacks, reset_num_timesteps=not start)
        else:  # finished training, but not the final evaluation
            self.evaluation.init_callback(model)
        self.train_seconds, self.segment_start = self._elapsed(), None
        steps = int(model.num_timesteps)
        if interrupt.received is not None and steps < total:
            checkpoint = self.save(steps)
            raise TrainingInterrupted(
                f"Training interrupted by {interrupt.signal_name} at step {steps} of {total}; "
                f"checkpoint written: {checkpoint}\nResume with:\n  {resume_command(self.path)}",
                exit_code=interrupt.exit_code,
                step=steps,
                checkpoint=str(checkpoint),
            )
        return self._finish(steps, reward, interrupt)

    def _finish(self, steps: int, reward: RewardFunction, interrupt: GracefulInterrupt) -> TrainResult:
        """The final checkpoint, the final evaluation (with a video) and ``summary.json``.

        SIGINT/SIGTERM (before or during the evaluation) stops it at once: the final checkpoint is
        written, and resuming evaluates it again.
        """
        assert self.evaluation is not None
        config = self.config
        final_checkpoint = self.save(steps)
        interrupt.stop_at_once(
            f"{{signal}} received during the final evaluation: stopping it (the final checkpoint {final_checkpoint} "
            "is written; resuming evaluates it again)"
        )
        try:
            if interrupt.received is None:
                final = self.evaluation.run(steps, config.logging.eval_episodes, video=True)
        except InterruptNow:
            pass
        if interrupt.received is not None:
            raise TrainingInterrupted(
                f"Training interrupted by {interrupt.signal_name} at its final evaluation (step {steps} of "
                f"{config.rl.total_steps}); the final checkpoint is written: {final_checkpoint}\n"
                f"Evaluate it and write {SUMMARY_FILE} with:\n  {resume_command(self.path)}",
                exit_code=interrupt.exit_code,
                step=steps,
                checkpoint=str(final_checkpoint),
            )
        seconds = max(self.train_seconds, 1e-9)
        summary: dict[str, Any] = {
            "env": config.env.name,
            "model": reward.name,
            "algorithm": config.rl.algorithm,
            "total_steps": steps,
            "train_seconds": round(self.train_seconds, 3),
            "steps_per_second": round(steps / seconds, 2),
            "episode_end_batching": config.reward.episode_end_batching,
            "overlap_scoring": config.reward.overlap_scoring,
            "eval_episodes": len(final.env_returns),
            "eval_env_return": final.mean_env_return,
            "eval_vlm_return": final.mean_vlm_return,
            "eval_success_rate": final.success_rate,
            "eval_step_success_rate": final.step_success_rate,
            "eval_history": self.evaluation.history,
            "final_checkpoint": str(final_checkpoint.relative_to(self.path)),
            "final": {**_record(steps, final).to_dict(), "checkpoint": str(final_checkpoint.relative_to(self.path))},
            "best": None if self.best is None else {**self.best.to_dict(), "checkpoint": f"checkpoints/{BEST_FILE}"},
            "resumed_at_steps": self.resumed_at,
        }
        self.run.write_summary(summary)
        if self.tracker is not None:
            self.tracker.log_summary(summary)
        return TrainResult(self.path, summary)


def _record(step: int, result: EvaluationResult) -> BestRecord:
    """The record of an evaluation: ``best.json``'s, and ``summary.json``'s ``final``."""
    return BestRecord(
        step, result.mean_vlm_return, result.mean_env_return, result.success_rate, result.step_success_rate,
        len(result.env_returns),
    )  # fmt: skip


__all__ = [
    "TrainResult",
    "resume",
    "train",
]
