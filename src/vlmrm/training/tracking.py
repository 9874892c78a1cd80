"""Experiment tracking with Weights & Biases (``logging.wandb``; ``pip install 'vlmrm[wandb]'``).

W&B's own TensorBoard integration does the streaming: :func:`start_tracking` patches TensorBoard's
event writer (``wandb.tensorboard.patch``, what ``wandb.init(sync_tensorboard=True)`` does, with
the run's events directory as root) *before* the trainer creates its writer, so every scalar and image
the run logs to TensorBoard (``rollout/*``, ``eval/*``, the ``inspect/*`` images) reaches W&B with
its step as ``global_step``. The resolved config is the W&B run's config; each policy video is
logged as it is written (``videos/policy``, against ``global_step``), and ``summary.json``'s
numbers become the W&B run's summary.

W&B keeps its own files (the offline runs to ``wandb sync``) in the run directory, ``RUN/wandb/``, not in
the working directory's ``./wandb/``; ``WANDB_DIR``, when set, still decides.

A resumed run continues its W&B run: the id is kept in ``logs/wandb.json``. W&B reads only the
event files written after it starts, so nothing is logged twice.

Sweeps set ``logging.wandb.tags`` and ``logging.wandb.group`` to tag every trial with its sweep.
Tests run W&B offline (``logging.wandb.mode: offline`` or ``WANDB_MODE=offline``, ``WANDB_DIR``).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from vlmrm.config import TrainConfig
from vlmrm.errors import ConfigError, VLMRMError
from vlmrm.files import atomic_write_text
from vlmrm.run.run_dir import RunDir

logger = logging.getLogger(__name__)

RUN_ID_FILE = "wandb.json"
"""In the run's ``logs/``: the W&B run id, so a resumed run continues its W&B run."""
VIDEO_KEY = "videos/policy"
STEP_METRIC = "global_step"
"""The step W&B's TensorBoard integration logs with every row (the run's environment step)."""


class TrackingError(VLMRMError):
    """Weights & Biases could not start (not installed, not logged in, no network)."""


def check_tracking(config: TrainConfig) -> None:
    """Before a run touches the disk: W&B tracking is off, or the ``wandb`` package is importable."""
    if not config.logging.wandb.enabled:
        return
    try:
        import wandb  # noqa: F401
    except ImportError:
        raise ConfigError(
            "logging.wandb.enabled needs the wandb package: pip install 'vlmrm[wandb]' "
            "(or set logging.wandb.enabled=false)."
        ) from None


def _previous_id(logs: Path) -> str | None:
    try:
        data = json.loads((logs / RUN_ID_FILE).read_text())
    except (OSError, ValueError):
        return None
    run_id = data.get("id") if isinstance(data, dict) else None
    return run_id if isinstance(run_id, str) and run_id else None


class WandbTracker:
    """One W&B run for one training session; :func:`start_tracking` makes it."""

    def __init__(self, run: Any):
        self.run = run
        self._finished = False

    @property
    def id(self) -> str:
        return str(self.run.id)

    def log_video(self, path: Path, step: int) -> None:
        """Log the mp4 at ``path`` as the policy video of ``step``."""
        import wandb

        self.run.log({VIDEO_KEY: wandb.Video(str(path), format="mp4"), STEP_METRIC: step})

    def log_summary(self, summary: dict[str, Any]) -> None:
        """The run's final numbers (``summary.json``; lists such as the evaluation history left out)."""
        self.run.summary.update({k: v for k, v in summary.items() if isinstance(v, int | float | str | bool)})

    def finish(self, exit_code: int = 0) -> None:
        """End the W&B run (it uploads, or keeps the offline files) and undo the TensorBoard patch."""
        if self._finished:
            return
        self._finished = True
        from wandb.integration.tensorboard import unpatch

        try:
            self.run.finish(exit_code=exit_code)
        finally:
            unpatch()


def wandb_root(run_dir: Path) -> str | None:
    """``wandb.init``'s ``dir``: the run directory (W&B writes ``RUN/wandb/``, offline runs included), unless
    ``WANDB_DIR`` names W&B's directory (``None``: W&B reads it)."""
    return None if os.environ.get("WANDB_DIR") else str(run_dir)


def start_tracking(config: TrainConfig, run_dir: Path, resumed: bool = False) -> WandbTracker | None:
    """Start the W&B run of a training session (``None`` when ``logging.wandb.enabled`` is false).

    Call it before the TensorBoard writer is created, after the run directory exists.
    """
    settings = config.logging.wandb
    if not settings.enabled:
        return None
    check_tracking(config)
    import wandb
    from wandb.integration.tensorboard import patch, unpatch

    run = RunDir(run_dir)
    logs = run.logs_dir
    run_id = _previous_id(logs) if resumed else None  # None: W&B picks a new id
    patch(save=False, root_logdir=str(run.events_dir))
    try:
        wandb_run = wandb.init(
            project=settings.project,
            entity=settings.entity,
            mode=settings.mode,
            tags=list(settings.tags) or None,
            group=settings.group,
            name=settings.name or run_dir.name,
            config=config.model_dump(mode="json"),
            id=run_id,
            resume="allow" if run_id else None,
            dir=wandb_root(run_dir),
        )
    except Exception as exc:
        unpatch()
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise TrackingError(
            f"Weights & Biases did not start: {first}. Log in with `wandb login`, or set "
            "logging.wandb.mode=offline (upload later with `wandb sync`), or logging.wandb.enabled=false."
        ) from exc
    tracker = WandbTracker(wandb_run)
    try:
        wandb_run.define_metric(STEP_METRIC)
        wandb_run.define_metric(f"{VIDEO_KEY.split('/')[0]}/*", step_metric=STEP_METRIC)
        atomic_write_text(logs / RUN_ID_FILE, json.dumps({"id": wandb_run.id, "project": settings.project}) + "\n")
    except BaseException:
        tracker.finish(exit_code=1)
        raise
    logger.info(
        "vlmrm: tracking the run in Weights & Biases (%s, run %s)", settings.mode or "default mode", wandb_run.id
    )
    return tracker


__all__ = [
    "TrackingError",
    "WandbTracker",
    "start_tracking",
]
