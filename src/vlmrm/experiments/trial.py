"""One trial, in whatever process runs it (a Ray Tune worker): train, resume or skip, and record a failure.

- finished before (a valid ``summary.json``): nothing to do;
- started before (the run directory has its ``config.yaml``): :func:`vlmrm.training.trainer.resume`
  continues from the newest sound checkpoint (or from step 0 if there is none);
- otherwise :func:`vlmrm.training.trainer.train` in ``SWEEP/trials/<trial>``.

An exception ends the trial, not the sweep: its message, on one line, goes to
``SWEEP/failures/<trial>.json`` (the traceback to the trial's log) and the outcome says
``failed``. Everything the trial logs goes to ``SWEEP/logs/<trial>.log``.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vlmrm.experiments.schema import one_line
from vlmrm.experiments.sweep_dir import SweepDir
from vlmrm.run.run_dir import best_of

logger = logging.getLogger(__name__)

METRICS = ("eval_success_rate", "eval_step_success_rate", "eval_env_return", "eval_vlm_return", "train_seconds")


@contextlib.contextmanager
def trial_log(path: Path) -> Iterator[None]:
    """Send vlmrm's log records and the process's Python-level output to ``path`` (appended)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", buffering=1, encoding="utf-8") as handle:
        handler = logging.StreamHandler(handle)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        package = logging.getLogger("vlmrm")
        level = package.level
        package.addHandler(handler)
        package.setLevel(logging.INFO)
        try:
            with contextlib.redirect_stdout(handle), contextlib.redirect_stderr(handle):
                yield
        finally:
            package.removeHandler(handler)
            package.setLevel(level)


def run_trial(sweep: str | Path, name: str, config: dict[str, Any], reward_fn: Any = None) -> dict[str, Any]:
    """Run trial ``name`` of the sweep in ``sweep`` with ``config`` (data); return its outcome.

    The outcome: ``state`` (``done``, ``skipped`` when it had finished before, ``failed``),
    ``error`` (one line) and the summary's numbers, plus ``call_seconds``, the time spent in
    ``train``/``resume`` (the rest of a trial's wall time is the sweep's overhead).
    """
    from vlmrm.config import config_from_dict
    from vlmrm.run.run_dir import RunDir
    from vlmrm.training.trainer import resume, train

    directory = SweepDir(sweep)
    run_dir = directory.run_dir(name)
    total = int(config["rl"]["total_steps"])
    summary = directory.summary(name, total)
    if summary is not None:
        return _outcome("skipped", summary)
    directory.clear_failure(name)
    started = time.perf_counter()
    with trial_log(directory.log_path(name)):
        try:
            if RunDir(run_dir).is_run():
                logger.info("vlmrm: sweep trial %s: resuming %s", name, run_dir)
                result = resume(run_dir, reward_fn=reward_fn)
            else:
                logger.info("vlmrm: sweep trial %s: training in %s", name, run_dir)
                trial_config = config_from_dict(copy.deepcopy(config), source=f"config of trial {name}")
                result = train(trial_config, run_dir=run_dir, overwrite=True, reward_fn=reward_fn)
        except Exception as exc:
            message = one_line(exc)
            logger.error("vlmrm: sweep trial %s failed: %s\n%s", name, message, traceback.format_exc())
            directory.record_failure(name, message)
            return {"state": "failed", "error": message, "call_seconds": time.perf_counter() - started}
    outcome = _outcome("done", result.summary)
    outcome["call_seconds"] = time.perf_counter() - started
    return outcome


def _outcome(state: str, summary: dict[str, Any]) -> dict[str, Any]:
    """The final evaluation's numbers (``eval_*``) and the best policy's (``best_*``); NaN where missing."""
    outcome: dict[str, Any] = {"state": state, "error": ""}
    for key, value in [*((key, summary.get(key)) for key in METRICS), *best_of(summary).items()]:
        outcome[key] = float(value) if isinstance(value, int | float) else float("nan")
    return outcome
