"""The sweep directory: the resolved experiment, one vlmrm run directory per trial, and each trial's state.

::

    SWEEP/
      sweep.json          the experiment as resolved: cells, --set overrides, seeds, resources, the
                          paper's numbers and every trial's full config (what `vlmrm report` reads)
      experiment.yaml     the experiment file as written
      trials/<trial>/     an ordinary vlmrm run directory (config.yaml, logs/, checkpoints/, summary.json)
      failures/<trial>.json  the error that ended a failed trial (removed when the trial runs again)
      logs/<trial>.log    what the trial logged
      tune/               Ray Tune's own records
      report/             written by `vlmrm report`
      .lock               held while a `vlmrm sweep` runs here

A trial's state is read from its run directory, so it is right however the last sweep ended:
*done* (a valid ``summary.json`` for the trial's steps), *running* (its run lock is held),
*failed* (a failure record), *interrupted* (started, not finished) or *pending*.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vlmrm.errors import RunDirectoryError
from vlmrm.experiments.grid import Plan, Trial
from vlmrm.experiments.schema import PLAIN_NAME, ExperimentError
from vlmrm.files import atomic_write_text
from vlmrm.run.lock import RunLock
from vlmrm.run.run_dir import RunDir

MANIFEST = "sweep.json"
FORMAT = 1
STATES = ("done", "running", "failed", "interrupted", "pending")

logger = logging.getLogger(__name__)


def manifest_data(plan: Plan) -> dict[str, Any]:
    """What ``sweep.json`` holds for ``plan``."""
    experiment = plan.experiment
    paper = experiment.paper
    return {
        "format": FORMAT,
        "name": experiment.name,
        "description": experiment.description,
        "experiment_file": str(experiment.path.resolve()),
        "overrides": plan.overrides,
        "seeds": sorted({trial.seed for trial in plan.trials}),
        "cells_total": plan.cells_total,
        "resources": experiment.resources.model_dump(),
        "paper_source": paper.source if paper else None,
        "cells": [
            {
                "label": cell.label,
                "slug": cell.slug,
                "config": str(cell.config.resolve()),
                "values": cell.values,
                "paper_success_rate": cell.paper_success_rate,
            }
            for cell in plan.cells
        ],
        "trials": [
            {"name": t.name, "cell": t.cell, "seed": t.seed, "run_dir": f"trials/{t.name}", "config": t.config}
            for t in plan.trials
        ],
    }


def manifest_problem(data: dict[str, Any]) -> str | None:
    """What is wrong with the cells and trials of a ``sweep.json`` (``None`` when nothing).

    A trial's name must be a plain name: it is a folder under ``trials/``, and a name such as
    ``../other-run`` would make the report read another run's results as this sweep's.
    """
    cells, trials = data.get("cells"), data.get("trials")
    if not isinstance(cells, list) or not all(isinstance(c, dict) and isinstance(c.get("label"), str) for c in cells):
        return "'cells' is missing or not a list of cells with a label"
    if not isinstance(trials, list):
        return "'trials' is missing or not a list"
    for index, trial in enumerate(trials):
        if not isinstance(trial, dict):
            return f"trial {index} is not an object"
        name = trial.get("name")
        if not isinstance(name, str) or not PLAIN_NAME.fullmatch(name):
            return f"trial {index} is named {name!r}, which is not a plain name (a folder in trials/)"
        seed = trial.get("seed")
        if not isinstance(trial.get("cell"), str) or not isinstance(seed, int) or isinstance(seed, bool):
            return f"trial {name} has no cell or seed"
        config = trial.get("config")
        rl = config.get("rl") if isinstance(config, dict) else None
        steps = rl.get("total_steps") if isinstance(rl, dict) else None
        if not isinstance(steps, int) or isinstance(steps, bool) or steps <= 0:
            return f"trial {name} has no config with rl.total_steps a positive integer (got {steps!r})"
    return None


@dataclass(frozen=True)
class TrialState:
    """Where one trial stands, read from disk."""

    name: str
    state: str
    summary: dict[str, Any] | None = None
    error: str | None = None


class SweepDir:
    """A sweep directory (see the module docstring)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    def run_dir(self, name: str) -> Path:
        return self.path / "trials" / name

    def failure_path(self, name: str) -> Path:
        return self.path / "failures" / f"{name}.json"

    def log_path(self, name: str) -> Path:
        return self.path / "logs" / f"{name}.log"

    # -- the manifest ---------------------------------------------------------------------------------------

    def read_manifest(self) -> dict[str, Any]:
        """``sweep.json``; :class:`RunDirectoryError` if this is not a sweep directory."""
        where = str(self.path)
        if self.path.exists() and not self.path.is_dir():
            raise RunDirectoryError(f"{where!r} is a file, not a sweep directory; give the --out of a vlmrm sweep.")
        if not self.path.is_dir():
            raise RunDirectoryError(f"Sweep directory {where!r} does not exist; give the --out of a vlmrm sweep.")
        try:
            data = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RunDirectoryError(
                f"{where!r} is not a sweep directory (it has no {MANIFEST}); give the --out of a vlmrm sweep."
            ) from None
        except (OSError, ValueError) as exc:
            raise RunDirectoryError(self._damaged(f"it cannot be read: {exc}")) from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise RunDirectoryError(f"{str(self.manifest_path)!r} is not a vlmrm sweep manifest (format {FORMAT}).")
        problem = manifest_problem(data)
        if problem is not None:
            raise RunDirectoryError(self._damaged(problem))
        return data

    def _damaged(self, problem: str) -> str:
        """What to do about a damaged ``sweep.json``: its trials are safe, and the sweep command rebuilds it."""
        return (
            f"{str(self.manifest_path)!r} is damaged ({problem}). The trials in {str(self.path / 'trials')!r} "
            f"are kept: re-run `vlmrm sweep EXPERIMENT.yaml --out {self.path}` with the same experiment file "
            f"(a copy is {str(self.path / 'experiment.yaml')!r}) and --set values to rebuild it; finished trials "
            "do not run again."
        )

    def rebuildable(self, plan: Plan) -> bool:
        """Whether a damaged ``sweep.json`` here may be rewritten for ``plan``: the directory holds a copy of
        the very experiment file being run (``experiment.yaml``), so its trials are this plan's."""
        try:
            return (self.path / "experiment.yaml").read_text() == plan.experiment.text
        except (OSError, ValueError):
            return False

    def check_compatible(self, plan: Plan) -> None:
        """Refuse to reuse a directory that is not a sweep, or holds trials configured otherwise."""
        if not self.path.exists():
            return
        if not self.path.is_dir():
            raise ExperimentError(f"--out {str(self.path)!r} exists and is not a directory; choose another --out.")
        if not self.manifest_path.exists():
            if any(self.path.iterdir()):
                raise ExperimentError(
                    f"--out {str(self.path)!r} holds files and is not a sweep directory (no {MANIFEST}); "
                    "choose another --out."
                )
            return
        try:
            old = self.read_manifest()
        except RunDirectoryError as exc:
            if not self.rebuildable(plan):
                raise
            kept = self.path / f"{MANIFEST}.damaged"
            os.replace(self.manifest_path, kept)
            logger.warning("%s; rebuilding it from the experiment (the damaged file is kept as %s)", exc, kept)
            return
        if old.get("name") != plan.experiment.name:
            raise ExperimentError(
                f"--out {str(self.path)!r} holds the sweep {old.get('name')!r}, not {plan.experiment.name!r}; "
                "choose another --out."
            )
        before = {trial["name"]: trial.get("config") for trial in old["trials"]}
        for trial in plan.trials:
            if trial.name in before and before[trial.name] != trial.config:
                raise ExperimentError(
                    f"--out {str(self.path)!r} holds trial {trial.name} configured otherwise "
                    f"({_first_difference(before[trial.name], trial.config)}): re-run with the same experiment and "
                    "--set values to continue it, or choose another --out."
                )

    def write_manifest(self, plan: Plan) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.manifest_path, json.dumps(manifest_data(plan), indent=2, default=str))
        atomic_write_text(self.path / "experiment.yaml", plan.experiment.text)

    @contextlib.contextmanager
    def lock(self) -> Any:
        """Hold ``SWEEP/.lock`` (two sweeps must not run the same trials)."""
        try:
            lock = RunLock(self.path).acquire()
        except RunDirectoryError:
            raise RunDirectoryError(
                f"Sweep directory {str(self.path)!r} is in use by another vlmrm sweep; wait for it to finish."
            ) from None
        try:
            yield
        finally:
            lock.release()

    # -- trial states -----------------------------------------------------------------------------------------

    def summary(self, name: str, total_steps: int) -> dict[str, Any] | None:
        """The trial's ``summary.json`` if it is complete for ``total_steps``, else ``None``."""
        run = RunDir(self.run_dir(name))
        summary = run.summary()
        if summary is None or not run.finished(total_steps):
            return None
        return summary if "eval_env_return" in summary else None

    def failure(self, name: str) -> str | None:
        try:
            record = json.loads(self.failure_path(name).read_text())
        except (OSError, ValueError):
            return None
        return str(record.get("error", "unknown error")) if isinstance(record, dict) else None

    def record_failure(self, name: str, error: str) -> None:
        record = {"trial": name, "error": error, "time": datetime.now(UTC).isoformat(timespec="seconds")}
        atomic_write_text(self.failure_path(name), json.dumps(record, indent=2))

    def clear_failure(self, name: str) -> None:
        self.failure_path(name).unlink(missing_ok=True)

    def is_running(self, name: str) -> bool:
        """Whether a process holds the trial's run lock (a trainer holds it while it trains)."""
        return RunDir(self.run_dir(name)).lock().is_held()

    def state(self, name: str, total_steps: int) -> TrialState:
        summary = self.summary(name, total_steps)
        if summary is not None:
            return TrialState(name, "done", summary=summary)
        if self.is_running(name):
            return TrialState(name, "running")
        error = self.failure(name)
        if error is not None:
            return TrialState(name, "failed", error=error)
        if RunDir(self.run_dir(name)).is_run():
            return TrialState(name, "interrupted")
        return TrialState(name, "pending")

    def states(self, trials: list[Trial] | list[dict[str, Any]]) -> dict[str, TrialState]:
        """The state of every trial (plan trials or manifest entries)."""
        result = {}
        for trial in trials:
            if isinstance(trial, Trial):
                name, steps = trial.name, trial.total_steps
            else:
                name, steps = trial["name"], int(trial["config"]["rl"]["total_steps"])
            result[name] = self.state(name, steps)
        return result


def _first_difference(old: Any, new: Any, prefix: str = "") -> str:
    """The first dotted key where two configs differ, with both values."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            if old.get(key) != new.get(key):
                return _first_difference(old.get(key), new.get(key), f"{prefix}{key}.")
    return f"{prefix.rstrip('.')}: {old!r} before, {new!r} now"
