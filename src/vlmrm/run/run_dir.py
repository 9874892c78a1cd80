"""The run directory and its one owner, :class:`RunDir`: what vlmrm writes there, read and written in one place.

A run directory holds::

    config.yaml        the resolved config (written once, by the trainer)
    summary.json       the final evaluation, once the run finished
    checkpoints/       step_<N>.zip (and replay buffers): :mod:`vlmrm.run.checkpoints`
    events.out.tfevents.*  TensorBoard's events files, at the top: ``tensorboard --logdir runs/`` lists the
                       run under its own name (runs of vlmrm 0.2 and before keep theirs in ``logs/``)
    logs/ videos/      the CSV log (``progress.csv``) and W&B's run id, evaluation videos
    wandb/             Weights & Biases' own files (``logging.wandb``), offline runs included
    bad_frames/        the frames of a NaN or infinite reward
    inspect/           written by ``vlmrm inspect``
    .lock              held while a process writes the run (:class:`~vlmrm.run.lock.RunLock`)

Training, resuming, ``vlmrm inspect``, datasets, sweeps and reports all go through :class:`RunDir`, so a
file name, the config check and the checkpoint loader are each written once.
"""

from __future__ import annotations

import fnmatch
import json
import shlex
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from vlmrm.errors import CheckpointError, ConfigError, RunDirectoryError
from vlmrm.files import atomic_write_text
from vlmrm.run.checkpoints import (
    BEST_FILE,
    CHECKPOINT_PATTERN,
    CheckpointInfo,
    checkpoint_path,
    find_latest_good_checkpoint,
    list_checkpoints,
    load_model,
    read_best,
    saved_step,
    verify_checkpoint,
)
from vlmrm.run.lock import RunLock

if TYPE_CHECKING:
    from vlmrm.config import TrainConfig

CONFIG_FILE = "config.yaml"
SUMMARY_FILE = "summary.json"
CHECKPOINTS_DIR = "checkpoints"
SUBDIRECTORIES = ("logs", CHECKPOINTS_DIR, "videos")
BAD_FRAMES_DIR = "bad_frames"
WANDB_DIR = "wandb"
"""Weights & Biases' files of the run (``wandb.init(dir=RUN)`` writes them under ``RUN/wandb/``)."""
EVENTS_GLOB = "events.out.tfevents.*"
"""TensorBoard's events files (TensorBoard reads every file whose name holds ``tfevents``)."""
DAMAGED_EVENTS_GLOB = "events.out.damaged.*"
"""The original of a damaged events file, kept when a resume cuts it (:mod:`vlmrm.training.logs`)."""
INSPECT_DIR = "inspect"
"""Written by ``vlmrm inspect`` (:mod:`vlmrm.evaluation.inspect_run`), after or during training."""
BEST_CHECKPOINT = BEST_FILE
"""``checkpoints/best.zip``: the best policy of a run, for runs whose trainer keeps one."""

RUN_ARTEFACTS = frozenset(
    {CONFIG_FILE, SUMMARY_FILE, BAD_FRAMES_DIR, RunLock.NAME, INSPECT_DIR, WANDB_DIR, *SUBDIRECTORIES}
)
"""What vlmrm writes at the top of a run directory (besides TensorBoard's events files, :func:`is_run_artefact`);
``--overwrite`` refuses directories holding anything else."""


def is_run_artefact(name: str) -> bool:
    """Whether vlmrm writes a file or directory of this name at the top of a run directory."""
    return name in RUN_ARTEFACTS or fnmatch.fnmatch(name, EVENTS_GLOB) or fnmatch.fnmatch(name, DAMAGED_EVENTS_GLOB)


Which = Literal["latest", "best", "final"] | int | str | Path
"""A checkpoint of a run: ``"latest"`` (the newest sound one), ``"best"``, ``"final"`` (the one ``summary.json``
names), a step number, or a ``.zip`` path."""


def resume_command(run_dir: str | Path) -> str:
    """The exact command that continues the run in ``run_dir``."""
    return f"vlmrm train --resume {shlex.quote(str(run_dir))}"


def trained_for(summary: dict[str, Any], total_steps: int) -> bool:
    """Whether a run's ``summary.json`` says it trained for ``total_steps`` (``rl.total_steps``).

    A run may end past them: stable-baselines3 steps all envs at once (300 steps with 32 envs end
    at 320), and collects an off-policy rollout of ``train_freq`` steps whole.
    """
    steps = summary.get("total_steps")
    return isinstance(steps, int) and not isinstance(steps, bool) and steps >= total_steps


def check_reward_source(state: dict[str, Any] | None, reward_fn: Any, run_dir: Path, python_call: str) -> None:
    """Refuse to continue or inspect, on its config's model, a run a Python reward function trained.

    ``state`` is a checkpoint's; ``python_call`` is how to pass the function again, e.g.
    ``vlmrm.resume({run_dir!r}, reward_fn=...)``. Only the caller's own function can stand in for it:
    another reward would be mixed with it in one replay buffer, or judged in its place.
    """
    trained = state.get("reward_function") if state else None
    if trained is None or reward_fn is not None:
        return
    raise ConfigError(
        f"The run in {str(run_dir)!r} was trained on the Python reward function {trained!r} "
        "(vlmrm.train(config, reward_fn=...)), not on its config's reward.model, which the command line would "
        "use instead. Pass the same function from Python:\n  " + python_call.format(run_dir=str(run_dir))
    )


BEST_KEYS = ("step", "success_rate", "step_success_rate", "env_return", "vlm_return")
"""What ``summary.json``'s ``best`` (the run's best policy, ``checkpoints/best.zip``) holds, as reported."""


def best_of(summary: dict[str, Any] | None) -> dict[str, Any]:
    """``best_step``, ``best_success_rate``, ... of a ``summary.json`` (``None`` each when it has no best)."""
    best = (summary or {}).get("best")
    best = best if isinstance(best, dict) else {}
    return {f"best_{key}": best.get(key) for key in BEST_KEYS}


class RunDir:
    """A vlmrm run directory: its config, summary, checkpoints and lock.

    >>> import tempfile
    >>> run = RunDir(tempfile.mkdtemp() + "/run")
    >>> run.is_run(), run.checkpoints(), run.summary()
    (False, [], None)
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._config: TrainConfig | None = None

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    # -- layout ------------------------------------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def summary_path(self) -> Path:
        return self.path / SUMMARY_FILE

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / CHECKPOINTS_DIR

    @property
    def logs_dir(self) -> Path:
        return self.path / "logs"

    @property
    def events_dir(self) -> Path:
        """Where the run's TensorBoard events files are written and read: the run directory itself, so that
        ``tensorboard --logdir runs/`` lists the run under its own name; ``logs/`` for a run that vlmrm 0.2 or
        before started (its events files stay together there, so it keeps one name in TensorBoard)."""
        if any(self.logs_dir.glob(EVENTS_GLOB)) and not any(self.path.glob(EVENTS_GLOB)):
            return self.logs_dir
        return self.path

    @property
    def wandb_dir(self) -> Path:
        """Weights & Biases' files of the run (``RUN/wandb/``), offline runs included."""
        return self.path / WANDB_DIR

    @property
    def videos_dir(self) -> Path:
        return self.path / "videos"

    @property
    def bad_frames_dir(self) -> Path:
        return self.path / BAD_FRAMES_DIR

    @property
    def inspect_dir(self) -> Path:
        return self.path / INSPECT_DIR

    def is_run(self) -> bool:
        """Whether the directory holds a run (its ``config.yaml``), finished or not."""
        return self.config_path.is_file()

    def require(self, doing: str = "") -> None:
        """Raise :class:`RunDirectoryError` unless this is a run directory; ``doing`` starts the message
        (``"Cannot resume"``)."""
        if self.path.exists() and not self.path.is_dir():
            problem = (
                f"{str(self.path)!r} is a file, not a run directory; give the directory holding its {CONFIG_FILE}."
            )
        elif not self.path.is_dir():
            problem = f"run directory {str(self.path)!r} does not exist."
        elif not self.is_run():
            problem = f"{str(self.path)!r} is not a vlmrm run directory (it has no {CONFIG_FILE})."
        else:
            return
        raise RunDirectoryError(f"{doing}: {problem}" if doing else problem[0].upper() + problem[1:])

    # -- config and summary ------------------------------------------------------------------------------

    def stored_config(self) -> dict[str, Any]:
        """``config.yaml`` as stored (by this or an earlier vlmrm), not checked."""
        from vlmrm.config import read_yaml

        self.require()
        return read_yaml(self.config_path)

    def config(self) -> TrainConfig:
        """The run's resolved config, read and checked once (a :class:`ConfigError` says what is wrong)."""
        if self._config is None:
            from vlmrm.config import config_from_dict

            self._config = config_from_dict(self.stored_config(), source=f"config {str(self.config_path)!r}")
        return self._config

    def write_config(self, config: TrainConfig) -> None:
        from vlmrm.config import dump_config

        atomic_write_text(self.config_path, dump_config(config))
        self._config = config

    def summary(self) -> dict[str, Any] | None:
        """``summary.json`` when it is readable, else ``None`` (no summary yet, or a damaged one)."""
        try:
            summary = json.loads(self.summary_path.read_text())
        except (OSError, ValueError):
            return None
        return summary if isinstance(summary, dict) else None

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_text(self.summary_path, json.dumps(summary, indent=2))

    def finished(self, total_steps: int) -> bool:
        """Whether ``summary.json`` says the run trained for ``total_steps`` (:func:`trained_for`)."""
        summary = self.summary()
        return summary is not None and trained_for(summary, total_steps)

    def finished_at(self, step: int) -> bool:
        """Whether the run finished at ``step`` (its summary says so), before a session extends it."""
        summary = self.summary()
        return summary is not None and summary.get("total_steps") == step

    # -- the directory itself ----------------------------------------------------------------------------

    def lock(self) -> RunLock:
        """The run's lock (not acquired: use it as a context manager, or call ``acquire()``)."""
        return RunLock(self.path)

    def check_free(self, overwrite: bool) -> None:
        """Refuse a run directory that holds anything, unless ``overwrite`` and it holds only a vlmrm run."""
        path = self.path
        if not path.exists():
            return
        if not path.is_dir():
            raise RunDirectoryError(f"Run directory {str(path)!r} exists and is not a directory.")
        entries = sorted(entry.name for entry in path.iterdir())
        if not entries:
            return
        foreign = [name for name in entries if not is_run_artefact(name)]
        if foreign:
            listed = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
            raise RunDirectoryError(
                f"Run directory {str(path)!r} already exists and holds files vlmrm did not write ({listed}). "
                "Choose another logging.run_dir or --run-dir; vlmrm does not --overwrite a directory holding "
                "other files."
            )
        if not overwrite:
            raise RunDirectoryError(
                f"Run directory {str(path)!r} already holds a run. Continue it with:\n  {resume_command(path)}\n"
                "or pass --overwrite to delete it and start over, or choose another logging.run_dir or --run-dir."
            )

    def prepare(self, overwrite: bool) -> None:
        """Create the run directory; never silently reuse one that holds a run."""
        self.check_free(overwrite)
        if self.path.exists() and any(self.path.iterdir()):
            with self.lock():  # refuse to delete a run another process is writing
                pass
            shutil.rmtree(self.path)
        for sub in SUBDIRECTORIES:
            (self.path / sub).mkdir(parents=True, exist_ok=True)
        self._config = None

    def holds_nothing_to_keep(self) -> bool:
        """Whether a run that failed left nothing a user needs: no checkpoint, no bad frames, no summary."""
        return not (
            any(self.checkpoints_dir.glob("step_*.zip"))
            or any(self.bad_frames_dir.glob("*"))
            or self.summary_path.exists()
        )

    # -- checkpoints -------------------------------------------------------------------------------------

    def checkpoints(self) -> list[tuple[int, Path]]:
        """``(step, path)`` of every step checkpoint, oldest first."""
        return list_checkpoints(self.checkpoints_dir)

    def checkpoint_path(self, step: int) -> Path:
        """Where the checkpoint of ``step`` is written (``checkpoints/step_<N>.zip``)."""
        return checkpoint_path(self.checkpoints_dir, step)

    def checkpoint(self, which: Which = "latest") -> CheckpointInfo:
        """The checkpoint ``which`` names, checked whole (:func:`~vlmrm.run.checkpoints.verify_checkpoint`).

        ``"latest"`` is the newest sound one (newer corrupt ones are listed in its ``skipped``),
        ``"final"`` the one ``summary.json`` names, ``"best"`` ``checkpoints/best.zip``; an ``int`` is a
        step; a path is a ``.zip`` file (of this run or not). Raises :class:`CheckpointError` or
        :class:`RunDirectoryError` naming what exists instead.
        """
        if isinstance(which, bool) or not isinstance(which, int | str | Path):
            raise ConfigError(
                f"A checkpoint is 'latest', 'best', 'final', a step number or a .zip file, not {which!r}."
            )
        if which == "latest":
            return self._latest()
        if which == "best":
            record = read_best(self.checkpoints_dir)
            if record is None:
                raise CheckpointError(
                    f"Run {str(self.path)!r} has no sound best policy ({CHECKPOINTS_DIR}/{BEST_CHECKPOINT} is written "
                    "after an evaluation); ask for the latest checkpoint (--checkpoint latest) or a step."
                )
            return CheckpointInfo(step=record.step, path=self.checkpoints_dir / BEST_CHECKPOINT, state=None)
        if which == "final":
            final = (self.summary() or {}).get("final_checkpoint")
            if not isinstance(final, str):
                raise CheckpointError(
                    f"Run {str(self.path)!r} has not finished (no {SUMMARY_FILE} naming its final checkpoint); "
                    "use its latest checkpoint instead."
                )
            return self._verified(self.path / final)
        if isinstance(which, int):
            path = self.checkpoint_path(which)
            if not path.exists():
                steps = ", ".join(str(step) for step, _ in self.checkpoints()) or "none"
                raise CheckpointError(f"Run {str(self.path)!r} has no checkpoint at step {which}; its steps: {steps}.")
            return verify_checkpoint(path)
        path = Path(which)
        if not path.is_file():
            raise CheckpointError(f"Checkpoint {str(path)!r} does not exist; give a step number or a .zip file.")
        return self._verified(path)

    def check_reward_source(self, reward_fn: Any, python_call: str) -> None:
        """Refuse to judge or watch, on its config's model, a run that a Python reward function trained (the
        function's name is in its step checkpoints' state, whichever checkpoint is then loaded)."""
        if reward_fn is not None or not self.checkpoints():
            return
        try:
            state = self._latest().state
        except (CheckpointError, RunDirectoryError):
            return  # no sound checkpoint: loading one fails with its own message
        check_reward_source(state, reward_fn, self.path, python_call)

    def policy(self, which: Which | None = None) -> CheckpointInfo:
        """ "The policy of a run": ``which`` when given, else its best policy (``checkpoints/best.zip``, kept at
        the evaluation with the highest VLM return) when it has a sound one, else its newest sound checkpoint."""
        if which is not None:
            return self.checkpoint(which)
        if read_best(self.checkpoints_dir) is not None:
            return self.checkpoint("best")
        return self.checkpoint("latest")

    def _latest(self) -> CheckpointInfo:
        count = len(self.checkpoints())
        if not count:
            raise RunDirectoryError(
                f"Run {str(self.path)!r} has no checkpoint yet: train it first, or wait for its first checkpoint "
                "(logging.checkpoint_freq)."
            )
        try:
            found = find_latest_good_checkpoint(self.checkpoints_dir)
        except CheckpointError:
            raise CheckpointError(
                f"No usable checkpoint in {str(self.checkpoints_dir)!r}: all {count} are truncated or corrupt."
            ) from None
        assert found is not None
        return found

    @staticmethod
    def _verified(path: Path) -> CheckpointInfo:
        """A step checkpoint is checked whole; another ``.zip`` (``best.zip``, a foreign one) must be one."""
        if CHECKPOINT_PATTERN.match(path.name):
            return verify_checkpoint(path)
        step = saved_step(path)
        if step is None:
            raise CheckpointError(f"{str(path)!r} is not a stable-baselines3 checkpoint (a .zip it saved).")
        return CheckpointInfo(step=step, path=path, state=None)

    def load_model(self, which: Which | CheckpointInfo = "latest", env: Any = None, device: str = "cpu") -> Any:
        """The stable-baselines3 model of a checkpoint (:meth:`checkpoint`), loaded as the run's ``rl.algorithm``.

        With ``env``, a checkpoint of another env is refused (:func:`vlmrm.run.checkpoints.load_model`).
        """
        info = which if isinstance(which, CheckpointInfo) else self.checkpoint(which)
        return load_model(info.path, self.config().rl.algorithm, env=env, device=device)

    @classmethod
    def of_checkpoint(cls, path: str | Path) -> RunDir | None:
        """The run that ``path`` (``RUN/checkpoints/<file>.zip``) belongs to, or ``None`` for a loose file."""
        path = Path(path)
        run = cls(path.parent.parent)
        return run if path.parent.name == CHECKPOINTS_DIR and run.is_run() else None


__all__ = [
    "BEST_CHECKPOINT",
    "BEST_KEYS",
    "CONFIG_FILE",
    "EVENTS_GLOB",
    "INSPECT_DIR",
    "SUMMARY_FILE",
    "RunDir",
    "best_of",
    "is_run_artefact",
    "resume_command",
    "trained_for",
]
