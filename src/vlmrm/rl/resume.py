"""Continuing an interrupted run: its config, its RNG states and its replay buffer.

``vlmrm train --resume RUN_DIR`` reads ``RUN_DIR/config.yaml`` (``--set`` may change only the
resume-safe fields, :func:`vlmrm.config.resume_safe_fields`), loads the newest sound checkpoint
and continues at its step. The logs are cut back by :mod:`vlmrm.rl.logs`.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vlmrm.config import (
    TrainConfig,
    apply_overrides,
    config_from_dict,
    flatten,
    is_resume_safe,
    read_yaml,
    resume_safe_fields,
)
from vlmrm.errors import ConfigError, RunDirectoryError
from vlmrm.rl.buffers import RelabelingReplayBuffer

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"


def check_resume_changes(before: dict[str, Any], after: dict[str, Any] | TrainConfig, origin: str) -> None:
    """Refuse changes to anything the checkpoint was trained with (env, reward, algorithm, ...).

    ``before`` is a config as stored (by this or an earlier vlmrm): it is read the way this vlmrm
    reads configs first, so a field that moved (the Ray fields of vlmrm 0.1) compares to itself.
    ``after`` is the config asked for, checked or not (a field it misspells is not compared here).
    """
    old = flatten(config_from_dict(before, source=origin).model_dump(mode="json"))
    new = flatten(after.model_dump(mode="json") if isinstance(after, TrainConfig) else after)
    problems = []
    for name in sorted(old.keys() & new.keys()):
        if name == "logging.run_dir" or is_resume_safe(name) or old[name] == new[name]:
            continue
        problems.append(f"  {name}: {old[name]!r} in {origin}, {new[name]!r} requested.")
    if problems:
        allowed = ", ".join(field for field in resume_safe_fields() if field != "logging.run_dir")
        raise ConfigError(
            "--resume cannot change what the checkpoint was trained with:\n"
            + "\n".join(problems)
            + f"\nWhen resuming, --set may change only: {allowed}. To change anything else, start a new run."
        )


def load_run_config(run_dir: Path, overrides: list[str] | None = None) -> TrainConfig:
    """The config of the run in ``run_dir`` with the (safe) ``overrides`` applied."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirectoryError(f"Cannot resume: run directory {str(run_dir)!r} does not exist.")
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise RunDirectoryError(
            f"Cannot resume: {str(run_dir)!r} is not a vlmrm run directory (it has no {CONFIG_FILE})."
        )
    stored = read_yaml(path)
    for text in overrides or []:
        if text.split("=", 1)[0].strip() == "logging.run_dir":
            raise ConfigError(
                f"--set {text!r}: a resumed run continues in {str(run_dir)!r}; to continue elsewhere, "
                "copy the run directory and resume the copy."
            )
    source = f"config {str(path)!r}" + (" with --set overrides" if overrides else "")
    stored_config = config_from_dict(dict(stored), source=f"config {str(path)!r}")
    data = apply_overrides(stored_config.model_dump(mode="json"), list(overrides or []))
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
