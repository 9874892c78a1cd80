"""Reproducing the paper: experiment files, sweeps of vlmrm runs on Ray Tune, and reports.

- :mod:`~vlmrm.experiments.schema`: the experiment file (configs, grid, cells, seeds, resources,
  the paper's numbers), checked against the config's fields.
- :mod:`~vlmrm.experiments.grid`: from an experiment to trials, each a full config.
- :mod:`~vlmrm.experiments.runner`: :func:`run_sweep`, the trials on Ray Tune (``vlmrm sweep``).
- :mod:`~vlmrm.experiments.trial`: one trial in a worker: train, resume or skip.
- :mod:`~vlmrm.experiments.sweep_dir`: the sweep directory and each trial's state.
- :mod:`~vlmrm.experiments.report`: :func:`build_report` (``vlmrm report``).

The experiment files of the paper's results are in ``experiments/paper/``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vlmrm._lazy import lazy_getattr

_EXPORTS = {
    "load_experiment": "vlmrm.experiments.schema",
    "plan_trials": "vlmrm.experiments.grid",
    "run_sweep": "vlmrm.experiments.runner",
    "SweepOptions": "vlmrm.experiments.runner",
    "build_report": "vlmrm.experiments.report",
}
__all__ = ["SweepOptions", "build_report", "load_experiment", "plan_trials", "run_sweep"]

if TYPE_CHECKING:
    from vlmrm.experiments.grid import plan_trials
    from vlmrm.experiments.report import build_report
    from vlmrm.experiments.runner import SweepOptions, run_sweep
    from vlmrm.experiments.schema import load_experiment


__getattr__ = lazy_getattr(__name__, _EXPORTS)
