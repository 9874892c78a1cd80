"""The run directory: what vlmrm writes there, and never reusing one silently."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from vlmrm.errors import RunDirectoryError
from vlmrm.rl.guards import BAD_FRAMES_DIR, RunLock, resume_command

CONFIG_FILE = "config.yaml"
SUMMARY_FILE = "summary.json"
SUBDIRECTORIES = ("logs", "checkpoints", "videos")
INSPECT_DIR = "inspect"
"""Written by ``vlmrm inspect`` (:mod:`vlmrm.evaluation.inspect_run`), after or during training."""

RUN_ARTEFACTS = frozenset({CONFIG_FILE, SUMMARY_FILE, BAD_FRAMES_DIR, RunLock.NAME, INSPECT_DIR, *SUBDIRECTORIES})
"""What vlmrm writes at the top of a run directory; ``--overwrite`` refuses directories holding anything else."""


def trained_for(summary: dict[str, Any], total_steps: int) -> bool:
    """Whether a run's ``summary.json`` says it trained for ``total_steps`` (``rl.total_steps``).

    A run may end past them: stable-baselines3 steps all envs at once (300 steps with 32 envs end
    at 320), and collects an off-policy rollout of ``train_freq`` steps whole.
    """
    steps = summary.get("total_steps")
    return isinstance(steps, int) and not isinstance(steps, bool) and steps >= total_steps


BEST_KEYS = ("step", "success_rate", "step_success_rate", "env_return", "vlm_return")
"""What ``summary.json``'s ``best`` (the run's best policy, ``checkpoints/best.zip``) holds, as reported."""


def best_of(summary: dict[str, Any] | None) -> dict[str, Any]:
    """``best_step``, ``best_success_rate``, ... of a ``summary.json`` (``None`` each when it has no best)."""
    best = (summary or {}).get("best")
    best = best if isinstance(best, dict) else {}
    return {f"best_{key}": best.get(key) for key in BEST_KEYS}


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
    for sub in SUBDIRECTORIES:
        (path / sub).mkdir(parents=True, exist_ok=True)
    return path


def holds_nothing_to_keep(path: Path) -> bool:
    """Whether a run that failed left nothing a user needs: no checkpoint, no bad frames, no summary."""
    return not (
        any((path / "checkpoints").glob("step_*.zip"))
        or any((path / BAD_FRAMES_DIR).glob("*"))
        or (path / SUMMARY_FILE).exists()
    )
