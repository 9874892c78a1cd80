"""Continuing an interrupted run: its config, where to resume from, its model, RNG states and replay buffer.

``vlmrm train --resume RUN_DIR`` reads ``RUN_DIR/config.yaml`` (``--set`` may change only the
resume-safe fields, :func:`vlmrm.config.resume_safe_fields`), loads the newest sound checkpoint
and continues at its step. The logs are cut back by :mod:`vlmrm.training.logs`.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from vlmrm.config import (
    TrainConfig,
    apply_overrides,
    config_from_dict,
    flatten,
    is_off_policy,
    is_resume_safe,
    resume_safe_fields,
)
from vlmrm.errors import CheckpointError, ConfigError
from vlmrm.files import remove_temp_files
from vlmrm.rl.buffers import RelabelingReplayBuffer
from vlmrm.run.checkpoints import (
    CheckpointInfo,
    find_latest_good_checkpoint,
    load_model,
    remove_orphan_companions,
    restore_replay_buffer,
    set_aside,
)
from vlmrm.run.run_dir import CONFIG_FILE, SUBDIRECTORIES, RunDir, resume_command, trained_for
from vlmrm.training.logs import truncate_logs
from vlmrm.training.trainer_state import TrainerState

logger = logging.getLogger(__name__)


def _changed_fields(
    before: dict[str, Any], after: dict[str, Any] | TrainConfig, origin: str
) -> list[tuple[str, Any, Any]]:
    """``(name, old, new)`` of each field a resume may not change (:func:`vlmrm.config.is_resume_safe`) that differs.

    ``before`` is a config as stored (by this or an earlier vlmrm): it is read the way this vlmrm
    reads configs first, so a field that moved (the Ray fields of vlmrm 0.1) compares to itself.
    ``after`` is the config asked for, checked or not (a field it misspells is not compared here).
    """
    old = flatten(config_from_dict(before, source=origin).model_dump(mode="json"))
    new = flatten(after.model_dump(mode="json") if isinstance(after, TrainConfig) else after)
    changed = []
    for name in sorted(old.keys() & new.keys()):
        if name == "logging.run_dir" or is_resume_safe(name):
            continue
        if isinstance(old[name], dict) and isinstance(new[name], dict):  # name the key (rl.hyperparameters.gamma)
            for key in sorted(old[name].keys() | new[name].keys(), key=str):
                was, now = old[name].get(key, NOT_SET), new[name].get(key, NOT_SET)
                if was != now:
                    changed.append((f"{name}.{key}", was, now))
        elif old[name] != new[name]:
            changed.append((name, old[name], new[name]))
    return changed


class _NotSet:
    def __repr__(self) -> str:
        return "not set"


NOT_SET = _NotSet()
"""A key of a mapping-valued field (a hyperparameter, an env option) that one config has and the other lacks."""


def _allowed_changes() -> str:
    return ", ".join(field for field in resume_safe_fields() if field != "logging.run_dir")


def check_resume_changes(before: dict[str, Any], after: dict[str, Any] | TrainConfig, origin: str) -> None:
    """Refuse changes to anything the checkpoint was trained with (env, reward, algorithm, ...)."""
    changed = _changed_fields(before, after, origin)
    problems = [f"  {name}: {old!r} in {origin}, {new!r} requested." for name, old, new in changed]
    if problems:
        raise ConfigError(
            "--resume cannot change what the checkpoint was trained with:\n"
            + "\n".join(problems)
            + f"\nWhen resuming, --set may change only: {_allowed_changes()}. To change anything else, start a new run."
        )


def check_checkpoint_config(config: TrainConfig, start: CheckpointInfo, run_dir: Path) -> None:
    """Refuse a run whose ``config.yaml`` differs from what checkpoint ``start`` was trained with.

    The checkpoint carries its run's resolved config; an edited or damaged ``config.yaml`` would
    otherwise train on (or, for what stable-baselines3 stores itself, such as the learning rate,
    only claim) something else. Resume-safe fields may differ, as with ``--set``.
    """
    state = TrainerState.from_dict(start.state)
    if state is None:  # a checkpoint of vlmrm 0.1 carries no config
        return
    path = run_dir / CONFIG_FILE
    origin = f"checkpoint {start.path.name}"
    try:
        changed = _changed_fields(state.config, config, origin)
    except ConfigError as exc:
        logger.warning("vlmrm: the config of %s cannot be read (%s); config.yaml is not compared with it", origin, exc)
        return
    if changed:
        problems = "\n".join(f"  {name}: {old!r} in {origin}, {new!r} in {path.name}." for name, old, new in changed)
        raise ConfigError(
            f"{str(path)!r} differs from what {origin} was trained with:\n{problems}\n"
            f"Restore these fields in {path.name} to resume (only {_allowed_changes()} may change), "
            "or start a new run to train with them."
        )


def load_run_config(run_dir: Path, overrides: list[str] | None = None) -> TrainConfig:
    """The config of the run in ``run_dir`` with the (safe) ``overrides`` applied."""
    run = RunDir(run_dir)
    run.require("Cannot resume")
    run_dir, path = run.path, run.config_path
    stored = run.stored_config()
    for text in overrides or []:
        if text.split("=", 1)[0].strip() == "logging.run_dir":
            raise ConfigError(
                f"--set {text!r}: a resumed run continues in {str(run_dir)!r}; to continue elsewhere, "
                "copy the run directory and resume the copy."
            )
    source = f"config {str(path)!r}" + (" with --set overrides" if overrides else "")
    data = apply_overrides(run.config().model_dump(mode="json"), list(overrides or []))
    check_resume_changes(stored, data, str(path))  # before the checks of a new config: this is what matters
    config = config_from_dict(data, source=source)
    config.logging.run_dir = str(run_dir)
    return config


# -- RNG states ---------------------------------------------------------------------------------------------


def capture_rng(model: Any = None) -> dict[str, Any]:
    """Python, NumPy and torch RNG states, and that of the algorithm's action space (random actions)."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["torch_cuda"] = torch.cuda.get_rng_state_all()
    space_rng = getattr(getattr(model, "action_space", None), "np_random", None)
    if space_rng is not None:
        state["action_space"] = space_rng.bit_generator.state
    return state


def restore_rng(state: dict[str, Any], model: Any = None) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    cuda = state.get("torch_cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    space_rng = getattr(getattr(model, "action_space", None), "np_random", None)
    if space_rng is not None and "action_space" in state:
        try:
            space_rng.bit_generator.state = state["action_space"]
        except (TypeError, ValueError):  # another bit generator: keep the fresh one
            logger.debug("vlmrm: action space RNG state not restored")


# -- the replay buffer ---------------------------------------------------------------------------------------


def drop_unfinished_episodes(buffer: Any) -> int:
    """Forget the transitions of episodes running at the checkpoint (see
    :meth:`RelabelingReplayBuffer.drop_unfinished_episodes`); other buffers have none to forget."""
    return buffer.drop_unfinished_episodes() if isinstance(buffer, RelabelingReplayBuffer) else 0


def close_last_transitions(buffer: Any) -> None:
    """With ``optimize_memory_usage`` the next observation is the next slot's: end the stored trajectory."""
    if getattr(buffer, "optimize_memory_usage", False) and (buffer.full or buffer.pos > 0):
        buffer.dones[(buffer.pos - 1) % buffer.buffer_size] = True


# -- where to resume from ---------------------------------------------------------------------------------------


def resume_point(config: TrainConfig, run_dir: Path) -> CheckpointInfo | None:
    """The newest sound checkpoint to resume from (``None``: none yet, start at step 0).

    A run that finished its ``rl.total_steps`` is refused, with the command to train longer; one whose
    ``summary.json`` is unreadable resumes at its final checkpoint to evaluate it again.
    """
    run = RunDir(run_dir)
    start = find_latest_good_checkpoint(run.checkpoints_dir)
    if start is None:
        logger.warning("vlmrm: %s has no checkpoint yet: training starts again from step 0", run_dir)
        return None
    total = config.rl.total_steps
    summary = run.summary()
    # Finished: its summary is of this checkpoint, at or past total (all envs step at once).
    if summary is not None and summary.get("total_steps") == start.step and trained_for(summary, total):
        raise ConfigError(
            f"The run in {str(run_dir)!r} already finished its {start.step} steps. To train longer:\n"
            f"  {resume_command(run_dir)} --set rl.total_steps={2 * start.step}"
        )
    if start.step > total:
        raise ConfigError(
            f"rl.total_steps={total} is below the step of the checkpoint to resume from ({start.step}); "
            f"pass --set rl.total_steps=N with N >= {start.step}."
        )
    if start.step == total and run.summary_path.exists():
        logger.warning(
            "vlmrm: %s is unreadable; evaluating the final checkpoint again to rewrite it", run.summary_path.name
        )
    return start


def _load(config: TrainConfig, start: CheckpointInfo, venv: VecEnv, device: str) -> BaseAlgorithm:
    model = load_model(start.path, config.rl.algorithm, env=venv, device=device, attach_env=True)
    if start.replay is not None:
        try:
            restore_replay_buffer(model, start.replay)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
            raise CheckpointError(
                f"Checkpoint {str(start.path)!r}: its replay buffer {start.replay.name} does not load "
                f"({type(exc).__name__}{': ' + first if first else ''})."
            ) from exc
    if start.replay is not None:
        dropped = drop_unfinished_episodes(model.replay_buffer)
        close_last_transitions(model.replay_buffer)
        logger.info("vlmrm: replay buffer restored (%d transitions of unfinished episodes dropped)", dropped)
    elif is_off_policy(config.rl.algorithm) and model.num_timesteps > 0:
        # An empty buffer: collect as many steps as at the start before the first gradient step.
        state = TrainerState.from_dict(start.state)
        refill = int((state.learning_starts if state else None) or 0)
        model.learning_starts = model.num_timesteps + refill
        logger.warning(
            "vlmrm: checkpoint %s has no replay buffer (logging.save_replay_buffer); refilling it for %d steps "
            "before training continues",
            start.path.name,
            refill,
        )
    return model


def load_newest_loadable(
    config: TrainConfig, start: CheckpointInfo, venv: VecEnv, device: str
) -> tuple[BaseAlgorithm, CheckpointInfo]:
    """The model of ``start``, or of the newest older checkpoint that loads; the ones that do not are listed
    in the returned checkpoint's ``skipped`` (the trainer sets them aside, like corrupt ones)."""
    while True:
        try:
            return _load(config, start, venv, device), start
        except CheckpointError as exc:
            logger.warning("vlmrm: %s Trying an older checkpoint.", exc)
            found = find_latest_good_checkpoint(start.path.parent, [*start.skipped, (start.path, str(exc))])
            if found is None:
                raise
            start = found


def log_cut(run_dir: Path, start: CheckpointInfo | None, state: TrainerState | None, total_steps: int) -> int:
    """The last step whose logged rows stay when resuming from ``start``.

    The checkpoint step's own row is written again, whole, from what the checkpoint carries; a run
    that finished there keeps its final rows; checkpoints of vlmrm 0.1 carry nothing: their row
    stays, unless only the final evaluation is left to do.
    """
    if start is None:
        return 0
    if RunDir(run_dir).finished_at(start.step):
        return start.step
    if (state is not None and state.logs is not None) or start.step >= total_steps:
        return start.step - 1
    return start.step


def tidy_for_resume(run_dir: Path, start: CheckpointInfo | None, state: TrainerState | None, total_steps: int) -> None:
    """Before a resumed session writes: set bad checkpoints aside, drop leftovers, cut the logs."""
    run = RunDir(run_dir)
    checkpoints = run.checkpoints_dir
    for bad, why in start.skipped if start else []:
        if bad.exists():
            aside = set_aside(bad)
            logger.warning(
                "vlmrm: checkpoint %s is unusable (%s); resuming from %s instead (%s kept as %s)",
                bad, why, start.path if start else None, bad.name, aside.name,
            )  # fmt: skip
    for directory in (checkpoints, run.videos_dir, run.bad_frames_dir, run.logs_dir, run_dir):
        remove_temp_files(directory)
    remove_orphan_companions(checkpoints)
    for sub in SUBDIRECTORIES:
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    truncate_logs(run.logs_dir, log_cut(run_dir, start, state, total_steps), run.events_dir)
