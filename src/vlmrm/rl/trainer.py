"""``train(config)`` and ``resume(run_dir)``: one run, from a config to a run directory.

A run directory holds::

    config.yaml        the resolved config
    logs/              TensorBoard events and progress.csv (rollout/vlm_return, rollout/env_return, eval/...)
    checkpoints/       step_<N>.zip checkpoints (+ step_<N>.replay.pkl replay buffers), written atomically
    videos/            step_<N>.mp4 of the policy
    summary.json       evaluation returns, success rate, steps/s
    bad_frames/        only after a NaN/infinite reward: the frames that caused it
    .lock              held while a process trains in the directory

What survives what:

- SIGINT/SIGTERM: the current step finishes, a checkpoint is written, :class:`TrainingInterrupted`
  says how to resume (exit status 130/143 from the CLI).
- A kill at any moment: every file is written atomically, so the newest checkpoint is complete
  or absent; ``resume`` falls back past a corrupt one.
- A full disk: :class:`WriteError` names the file and the intact checkpoint.
- A NaN or infinite reward: :class:`RewardError` names the step and saves the frame.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import CallbackList

from vlmrm import __version__
from vlmrm.config import TrainConfig, check_config, dump_config
from vlmrm.envs import get_env_spec
from vlmrm.errors import CheckpointError, ConfigError, RunDirectoryError, TrainingInterrupted
from vlmrm.reward.backend import build_reward, make_reward_fn
from vlmrm.rl.algorithms import ALGORITHMS, is_off_policy, make_algorithm
from vlmrm.rl.callbacks import (
    CheckpointCallback,
    EpisodeReturnLogger,
    EvaluationCallback,
    ProgressBar,
    StopAtTotalSteps,
    StopOnInterrupt,
)
from vlmrm.rl.checkpoints import (
    CheckpointInfo,
    atomic_write_text,
    checkpoint_path,
    find_latest_good_checkpoint,
    prune_checkpoints,
    remove_orphan_companions,
    remove_temp_files,
    restore_replay_buffer,
    set_aside,
    write_checkpoint,
)
from vlmrm.rl.guards import (
    BAD_FRAMES_DIR,
    GracefulInterrupt,
    RewardGuard,
    RunLock,
    is_storage_error,
    resume_command,
    write_error,
)
from vlmrm.rl.resume import (
    capture_rng,
    check_resume_changes,
    close_last_transitions,
    drop_unfinished_episodes,
    load_run_config,
    make_logger,
    restore_rng,
    truncate_logs,
)
from vlmrm.rl.vec_env import VecVLMReward
from vlmrm.rl.vec_env_factory import make_vec_env

logger = logging.getLogger(__name__)

# What vlmrm writes at the top of a run directory; --overwrite refuses directories holding anything else.
RUN_ARTEFACTS = frozenset(
    {"config.yaml", "logs", "checkpoints", "videos", "summary.json", BAD_FRAMES_DIR, RunLock.NAME}
)


@dataclass
class TrainResult:
    run_dir: Path
    summary: dict[str, Any]


def default_run_dir(config: TrainConfig) -> Path:
    return Path("runs") / f"{config.env.name}-{datetime.now():%Y%m%d-%H%M%S}"


def check_run_dir_free(path: Path, overwrite: bool) -> None:
    """Refuse a run directory that holds anything, unless ``overwrite`` and it holds only a vlmrm run."""
    if not path.exists():
        return
    if not path.is_dir():
        raise RunDirectoryError(f"Run directory {str(path)!r} exists and is not a directory.")
    entries = sorted(entry.name for entry in path.iterdir())
    if not entries:
        return
    foreign = [name for name in entries if name not in RUN_ARTEFACTS]
    if foreign:
        listed = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise RunDirectoryError(
            f"Run directory {str(path)!r} already exists and holds files vlmrm did not write ({listed}). "
            "Choose another logging.run_dir or --run-dir; vlmrm does not --overwrite a directory holding other files."
        )
    if not overwrite:
        raise RunDirectoryError(
            f"Run directory {str(path)!r} already holds a run. Continue it with:\n  {resume_command(path)}\n"
            "or pass --overwrite to delete it and start over, or choose another logging.run_dir or --run-dir."
        )


def prepare_run_dir(path: Path, overwrite: bool) -> Path:
    """Create the run directory; never silently reuse one that holds a run."""
    check_run_dir_free(path, overwrite)
    if path.exists() and any(path.iterdir()):
        with RunLock(path):  # refuse to delete a run another process is writing
            pass
        shutil.rmtree(path)
    for sub in ("logs", "checkpoints", "videos"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    return path


def use_episode_end_batching(config: TrainConfig) -> bool:
    choice = config.reward.episode_end_batching
    return is_off_policy(config.rl.algorithm) if choice is None else choice


def use_overlap_scoring(config: TrainConfig, episode_batching: bool, reward_device: torch.device) -> bool:
    """Overlap needs episode-end batching; by default it is on where scoring does not share the env's CPU cores.

    Measured on a 2-core CPU (``vlmrm bench``): overlap changed CartPole by -3% and Humanoid by +7%,
    because the model and the envs compete for the same cores; a GPU or Ray workers run beside them.
    """
    choice = config.reward.overlap_scoring
    if not episode_batching:
        return False
    if choice is None:
        return reward_device.type != "cpu" or config.reward.backend == "ray"
    return choice


def use_replay_buffer_saving(config: TrainConfig) -> bool:
    choice = config.logging.save_replay_buffer
    return is_off_policy(config.rl.algorithm) if choice is None else choice


def train(config: TrainConfig, run_dir: str | Path | None = None, overwrite: bool = False) -> TrainResult:
    """Train a policy on the VLM reward described by ``config``; return the run directory and summary.

    Raises :class:`TrainingInterrupted` after SIGINT/SIGTERM (a checkpoint is written first).
    """
    check_config(config)
    path = Path(run_dir or config.logging.run_dir or default_run_dir(config))
    check_run_dir_free(path, overwrite)
    return _Run(config, path).execute(start=None, overwrite=overwrite)


def resume(run_dir: str | Path, overrides: list[str] | None = None) -> TrainResult:
    """Continue the run in ``run_dir`` from its newest sound checkpoint (see :mod:`vlmrm.rl.resume`).

    ``overrides`` (``"rl.total_steps=100000"``, ...) may change only
    :data:`~vlmrm.rl.resume.RESUME_SAFE_FIELDS`. Without any checkpoint the run starts again from step 0.
    """
    path = Path(run_dir)
    config = load_run_config(path, overrides)
    lock = RunLock(path).acquire()
    try:
        start = _resume_point(config, path)
        return _Run(config, path).execute(start=start, overwrite=False, lock=lock)
    finally:
        lock.release()


def _resume_point(config: TrainConfig, path: Path) -> CheckpointInfo | None:
    start = find_latest_good_checkpoint(path / "checkpoints")
    if start is None:
        logger.warning("vlmrm: %s has no checkpoint yet: training starts again from step 0", path)
        return None
    for bad, why in start.skipped:
        logger.warning("vlmrm: checkpoint %s is unusable (%s); resuming from %s instead", bad, why, start.path)
    if start.state is not None and "config" in start.state:
        check_resume_changes(start.state["config"], config, f"checkpoint {start.path.name}")
    total = config.rl.total_steps
    if start.step > total:
        raise ConfigError(
            f"rl.total_steps={total} is below the step of the checkpoint to resume from ({start.step}); "
            f"pass --set rl.total_steps=N with N >= {start.step}."
        )
    if start.step == total and (path / "summary.json").is_file():
        raise ConfigError(
            f"The run in {str(path)!r} already finished its {total} steps. To train longer:\n"
            f"  {resume_command(path)} --set rl.total_steps={2 * total}"
        )
    return start


@contextlib.contextmanager
def _workers_ignore_signals(active: bool) -> Iterator[None]:
    """Env worker processes started here ignore SIGINT/SIGTERM: Ctrl-C in a terminal reaches the whole
    process group, and the workers must outlive the main process's checkpoint (it closes them)."""
    if not active:
        yield
        return
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _quietly(close: Any, what: str) -> None:
    """Clean up without replacing the error that ended the run (a full disk can fail a log flush too)."""
    try:
        close()
    except Exception as exc:
        logger.warning("vlmrm: closing %s failed: %s", what, exc)


class _Run:
    """One training session in ``path``: a fresh run (``start=None``, step 0) or a resumed one."""

    def __init__(self, config: TrainConfig, path: Path):
        self.config = config.model_copy(deep=True)
        self.config.logging.run_dir = str(path)  # config.yaml names where the run is
        self.path = path
        self.model: BaseAlgorithm | None = None
        self.last_saved_step: int | None = None
        self.train_seconds = 0.0
        self.segment_start: float | None = None
        self.resumed_at: list[int] = []
        self.learning_starts: int | None = None
        self.overlap = False

    # -- the step numbers guards report --------------------------------------------------------------------

    def _steps(self) -> int:
        return 0 if self.model is None else int(self.model.num_timesteps)

    def _train_step(self) -> int:
        return self._steps() + self.config.rl.n_envs  # the step being taken, as logs and checkpoints count

    # -- checkpoints ----------------------------------------------------------------------------------------

    def _elapsed(self) -> float:
        running = 0.0 if self.segment_start is None else time.perf_counter() - self.segment_start
        return self.train_seconds + running

    def save(self, step: int) -> Path:
        path = checkpoint_path(self.path / "checkpoints", step)
        if step == self.last_saved_step and path.exists():
            return path  # the model has not changed since
        model = self.model
        assert model is not None
        state = {
            "step": step,
            "vlmrm_version": __version__,
            "config": self.config.model_dump(mode="json"),
            "rng": capture_rng(model),
            "learning_starts": self.learning_starts,
            "trainer": {
                "train_seconds": self._elapsed(),
                "resumed_at": self.resumed_at,
                "episode_returns": self.returns.state_dict(),
                "evaluation": self.evaluation.state_dict(),
            },
        }
        write_checkpoint(model, path, state, use_replay_buffer_saving(self.config))
        prune_checkpoints(self.path / "checkpoints", self.config.logging.keep_checkpoints)
        self.last_saved_step = step
        logger.debug("vlmrm: checkpoint written: %s", path)
        return path

    # -- the session ----------------------------------------------------------------------------------------

    def execute(self, start: CheckpointInfo | None, overwrite: bool, lock: RunLock | None = None) -> TrainResult:
        config, path = self.config, self.path
        resuming = lock is not None
        start_step = start.step if start else 0
        spec = get_env_spec(config.env.name)
        torch.manual_seed(config.rl.seed)
        with contextlib.ExitStack() as stack:
            reward = build_reward(config.reward)
            reward_fn = make_reward_fn(config.reward, reward)
            if hasattr(reward_fn, "close"):
                stack.callback(_quietly, reward_fn.close, "the reward function")
            episode_batching = use_episode_end_batching(config)
            bad_frames = path / BAD_FRAMES_DIR
            train_fn = RewardGuard(reward_fn, bad_frames, self._train_step, per_env=not episode_batching)
            eval_fn = RewardGuard(reward_fn, bad_frames, self._steps, per_env=True, label="eval_env")
            render_size = config.env.render_size or reward.image_size
            episode_length = config.env.episode_length or spec.default_episode_length
            env_kwargs = dict(
                name=config.env.name, render_size=render_size, episode_length=episode_length, options=config.env.options
            )
            subproc = config.rl.vec_env == "subproc" and config.rl.n_envs > 1
            with _workers_ignore_signals(subproc):
                inner = make_vec_env(
                    n_envs=config.rl.n_envs, seed=config.rl.seed + start_step, kind=config.rl.vec_env, **env_kwargs
                )
            stack.callback(_quietly, inner.close, "the training envs")
            self.overlap = use_overlap_scoring(config, episode_batching, reward.device)
            venv = VecVLMReward(inner, train_fn, mode="episode" if episode_batching else "step", overlap=self.overlap)
            eval_env = VecVLMReward(make_vec_env(n_envs=1, seed=config.rl.seed + 10_000, **env_kwargs), eval_fn)
            stack.callback(_quietly, eval_env.close, "the evaluation env")
            device = "cpu" if reward.device.type == "cpu" else "auto"
            if start is None:
                self.model = make_algorithm(config.rl, venv, episode_batching, episode_length, device=device)
            else:
                self.model = self._load(start, venv, device)
            # Everything that can be wrong has been found: only now touch the disk.
            try:
                if resuming:
                    self._tidy(start)
                else:
                    prepare_run_dir(path, overwrite)
                    stack.enter_context(RunLock(path))
                atomic_write_text(path / "config.yaml", dump_config(config))
                return self._learn(start, spec, venv, eval_env, reward, episode_batching, stack)
            except OSError as exc:
                if is_storage_error(exc, path):
                    raise write_error(exc, path) from exc
                raise

    def _load(self, start: CheckpointInfo, venv: VecVLMReward, device: str) -> BaseAlgorithm:
        cls = ALGORITHMS[self.config.rl.algorithm]
        try:
            model = cls.load(start.path, env=venv, device=device, print_system_info=False)
        except Exception as exc:
            raise CheckpointError(f"Checkpoint {start.path} could not be loaded: {exc}") from exc
        restored = False
        if start.replay is not None and hasattr(model, "load_replay_buffer"):
            try:
                restore_replay_buffer(model, start.replay)
            except Exception as exc:
                raise CheckpointError(f"Replay buffer {start.replay} could not be loaded: {exc}") from exc
            dropped = drop_unfinished_episodes(model.replay_buffer)
            close_last_transitions(model.replay_buffer)
            restored = True
            logger.info(
                "vlmrm: replay buffer restored (%d transitions of episodes unfinished at step %d will not be used)",
                dropped,
                start.step,
            )
        state = start.state or {}
        self.learning_starts = state.get("learning_starts") or getattr(model, "learning_starts", None)
        if not restored and is_off_policy(self.config.rl.algorithm) and model.num_timesteps > 0:
            # An empty buffer: collect as many steps as at the start before the first gradient step.
            model.learning_starts = model.num_timesteps + int(self.learning_starts or 0)
            logger.warning(
                "vlmrm: checkpoint %s has no replay buffer (logging.save_replay_buffer); refilling it for %d steps "
                "before training continues",
                start.path.name,
                self.learning_starts or 0,
            )
        return model

    def _tidy(self, start: CheckpointInfo | None) -> None:
        """Before a resumed session writes: set corrupt checkpoints aside, drop leftovers, cut the logs."""
        checkpoints = self.path / "checkpoints"
        for bad, _ in start.skipped if start else []:
            if bad.exists():
                logger.warning("vlmrm: %s moved aside as %s", bad.name, set_aside(bad).name)
        for directory in (checkpoints, self.path / "videos", self.path / BAD_FRAMES_DIR, self.path / "logs", self.path):
            remove_temp_files(directory)
        remove_orphan_companions(checkpoints)
        for sub in ("logs", "checkpoints", "videos"):
            (self.path / sub).mkdir(parents=True, exist_ok=True)
        cut = start.step if start else 0
        if start is not None and start.step >= self.config.rl.total_steps:
            # Only the final evaluation is left to do; what is logged at the final step is that evaluation's.
            cut = start.step - 1
        truncate_logs(self.path / "logs", cut)

    def _history_from_summary(self, step: int) -> None:
        """A run that finished at ``step`` evaluated once more after its last checkpoint: keep that entry."""
        try:
            summary = json.loads((self.path / "summary.json").read_text())
        except (OSError, ValueError):
            return
        if summary.get("total_steps") == step and isinstance(summary.get("eval_history"), list):
            self.evaluation.history = summary["eval_history"]

    def _learn(
        self,
        start: CheckpointInfo | None,
        spec: Any,
        venv: VecVLMReward,
        eval_env: VecVLMReward,
        reward: Any,
        episode_batching: bool,
        stack: contextlib.ExitStack,
    ) -> TrainResult:
        config, path, model = self.config, self.path, self.model
        assert model is not None
        log = config.logging
        total = config.rl.total_steps
        run_logger = make_logger(path / "logs")
        stack.callback(_quietly, run_logger.close, "the logs")
        model.set_logger(run_logger)
        self.returns = EpisodeReturnLogger()
        self.evaluation = EvaluationCallback(
            eval_env,
            log.eval_freq,
            log.eval_episodes,
            log.video_freq,
            path / "videos",
            spec.episode_success,
            final_step=total,
        )
        if self.learning_starts is None:
            self.learning_starts = getattr(model, "learning_starts", None)
        start_step = start.step if start else 0
        state = (start.state or {}) if start else {}
        if "trainer" in state:
            trainer_state = state["trainer"]
            self.returns.load_state_dict(trainer_state["episode_returns"])
            self.evaluation.load_state_dict(trainer_state["evaluation"])
            self.train_seconds = float(trainer_state["train_seconds"])
            self.resumed_at = list(trainer_state["resumed_at"])
        if start is not None:
            self.resumed_at.append(start_step)
            self.last_saved_step = start_step
            self._history_from_summary(start_step)
        interrupt = stack.enter_context(GracefulInterrupt())
        callbacks: list[Any] = [
            self.returns,
            self.evaluation,
            StopAtTotalSteps(total),
            CheckpointCallback(log.checkpoint_freq, self.save),
            StopOnInterrupt(lambda: interrupt.received is not None),
        ]
        if log.progress_bar:
            callbacks.insert(0, ProgressBar(total, initial_steps=start_step))
        logger.info(
            "vlmrm: %s %s on %s with %s%s; run directory %s",
            "resuming" if start else "training",
            config.rl.algorithm,
            config.env.name,
            reward.encoder.name,
            f" at step {start_step} of {total}" if start else "",
            path,
        )
        if "rng" in state:
            restore_rng(state["rng"], model)
        self.segment_start = time.perf_counter()
        if model.num_timesteps < total:
            model.learn(
                total_timesteps=total - model.num_timesteps,
                callback=CallbackList(callbacks),
                reset_num_timesteps=start is None,
            )
        else:  # finished training, but not the final evaluation
            self.evaluation.init_callback(model)
        self.train_seconds = self._elapsed()
        self.segment_start = None
        steps = int(model.num_timesteps)
        if interrupt.received is not None and steps < total:
            checkpoint = self.save(steps)
            raise TrainingInterrupted(
                f"Training interrupted by {interrupt.signal_name} at step {steps} of {total}; "
                f"checkpoint written: {checkpoint}\nResume with:\n  {resume_command(path)}",
                exit_code=interrupt.exit_code,
                step=steps,
                checkpoint=str(checkpoint),
            )
        final_checkpoint = self.save(steps)
        final = self.evaluation.run(steps, log.eval_episodes, video=True)
        seconds = max(self.train_seconds, 1e-9)
        summary: dict[str, Any] = {
            "env": config.env.name,
            "model": reward.encoder.name,
            "algorithm": config.rl.algorithm,
            "total_steps": steps,
            "train_seconds": round(self.train_seconds, 3),
            "steps_per_second": round(steps / seconds, 2),
            "episode_end_batching": episode_batching,
            "overlap_scoring": self.overlap,
            "eval_episodes": len(final.env_returns),
            "eval_env_return": final.mean_env_return,
            "eval_vlm_return": final.mean_vlm_return,
            "eval_success_rate": final.success_rate,
            "eval_history": self.evaluation.history,
            "final_checkpoint": str(final_checkpoint.relative_to(path)),
            "resumed_at_steps": self.resumed_at,
        }
        atomic_write_text(path / "summary.json", json.dumps(summary, indent=2))
        return TrainResult(path, summary)
