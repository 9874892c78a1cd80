"""``run_sweep``: an experiment's trials on Ray Tune, each an ordinary vlmrm run in the sweep directory.

Ray Tune schedules; vlmrm trains. The trials are one ``tune.grid_search`` over the trials still
to run, a function trainable (:func:`tune_trainable`) calls :func:`vlmrm.experiments.trial.run_trial`,
and ``tune.with_resources`` gives each the CPUs and GPUs the experiment file asks for. Re-running
the same command continues the sweep: finished trials are not submitted again, interrupted ones
resume from their checkpoints, failed ones are tried again.

Ray: ``address`` (``--address``), else ``$RAY_ADDRESS``, else a local instance that the sweep
starts and stops (with a watchdog, :mod:`vlmrm.experiments.reaper`, that stops it if the sweep is
killed). A process that has initialised Ray already (a test, a notebook) keeps its own.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from vlmrm.experiments.grid import Plan, Trial, plan_trials
from vlmrm.experiments.reaper import TOKEN_VARIABLE
from vlmrm.experiments.schema import ExperimentError, load_experiment
from vlmrm.experiments.sweep_dir import SweepDir, TrialState

logger = logging.getLogger(__name__)


@dataclass
class SweepOptions:
    """The command line of ``vlmrm sweep`` beyond the experiment file."""

    overrides: list[str] = field(default_factory=list)
    out: str | Path | None = None
    address: str | None = None
    max_concurrent: int | None = None
    seeds: int | None = None
    cells: int | None = None
    cpus_per_trial: float | None = None
    gpus_per_trial: float | None = None


@dataclass
class SweepResult:
    """How a sweep ended: every trial's state, and where the time went."""

    directory: Path
    states: dict[str, TrialState]
    ran: list[str]
    """The trials this call submitted (the others had finished before)."""
    wall_seconds: float
    ray_seconds: float
    """Starting (and stopping) Ray: part of the sweep's overhead."""
    fit_seconds: float = 0.0
    """Ray Tune's run (``Tuner.fit``): its start-up, the trials, its wind-down."""
    startup_seconds: float = 0.0
    """From ``Tuner.fit`` to the first trial's start (Tune's set-up, a worker process importing torch, MuJoCo)."""
    winddown_seconds: float = 0.0
    """From the last trial's end to ``Tuner.fit``'s return."""
    trial_seconds: dict[str, float] = field(default_factory=dict)
    """Each submitted trial's wall time in the sweep, from its start to its end as Tune saw them."""
    call_seconds: dict[str, float] = field(default_factory=dict)
    """Each submitted trial's time inside vlmrm's train/resume."""

    @property
    def checks_seconds(self) -> float:
        """The rest: checking the experiment and every trial's config, reading and writing the sweep directory."""
        return max(0.0, self.wall_seconds - self.ray_seconds - self.fit_seconds)

    def count(self, state: str) -> int:
        return sum(1 for s in self.states.values() if s.state == state)

    @property
    def ok(self) -> bool:
        return all(s.state == "done" for s in self.states.values())


# -- the trainable --------------------------------------------------------------------------------------------


def tune_trainable(params: dict[str, Any]) -> None:
    """Tune's function trainable: one trial (``params["trial"]``) of the sweep in ``params["sweep"]``."""
    from ray import tune

    from vlmrm.experiments.trial import run_trial

    trial = params["trial"]
    outcome = run_trial(params["sweep"], trial["name"], trial["config"])
    tune.report(outcome)


def _trial_name(trial: Any) -> str:
    return str(trial.config["trial"]["name"])


# -- progress -----------------------------------------------------------------------------------------------


def _progress_callback(total: int, done_before: int, directory: SweepDir, result: SweepResult) -> Any:
    from ray import tune

    class Progress(tune.Callback):
        """One line per trial event: started, finished (with its numbers) or failed (with its error)."""

        def __init__(self) -> None:
            self.done, self.failed, self.running = done_before, 0, 0
            self.started: dict[str, float] = {}
            self.first_start, self.last_end = float("inf"), float("-inf")

        def _status(self) -> str:
            return f"[{self.done}/{total} done, {self.running} running, {self.failed} failed]"

        def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            name = _trial_name(trial)
            self.running += 1
            self.started[name] = now = time.perf_counter()
            self.first_start = min(self.first_start, now)
            logger.info(f"{self._status()} started {name}")

        def _ended(self, trial: Any) -> tuple[str, float]:
            name = _trial_name(trial)
            self.running = max(0, self.running - 1)
            now = time.perf_counter()
            seconds = now - self.started.pop(name, now)
            self.last_end = max(self.last_end, now)
            result.trial_seconds[name] = seconds
            return name, seconds

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            name, seconds = self._ended(trial)
            outcome = trial.last_result or {}
            if "call_seconds" in outcome and name in result.trial_seconds:
                result.call_seconds[name] = float(outcome["call_seconds"])
            if outcome.get("state") in ("done", "skipped"):
                self.done += 1
                logger.info(
                    f"{self._status()} finished {name} in {seconds:.1f} s: success "
                    f"{_number(outcome.get('eval_success_rate'))}, env return {_number(outcome.get('eval_env_return'))}"
                    f", VLM return {_number(outcome.get('eval_vlm_return'))}; best policy (step "
                    f"{_step(outcome.get('best_step'))}): success {_number(outcome.get('best_success_rate'))}"
                )
            else:
                self.failed += 1
                logger.info(f"{self._status()} failed {name}: {outcome.get('error') or 'no result reported'}")

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            name, _ = self._ended(trial)
            self.failed += 1
            error = f"the trial's process ended without a result (Ray Tune's record: {trial.path})"
            with contextlib.suppress(OSError):
                directory.record_failure(name, error)
            logger.info(f"{self._status()} failed {name}: {error}")

    return Progress()


def _number(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, int | float) and value == value else "n/a"


def _step(value: Any) -> str:
    return f"{value:.0f}" if isinstance(value, int | float) and value == value else "n/a"


# -- Ray ----------------------------------------------------------------------------------------------------

RAY_CONNECT_SECONDS = 10.0
"""How long a sweep keeps trying to reach the Ray cluster it is given (one that is starting up) before it gives up;
``ray.init`` alone retries for minutes without a word."""


def check_ray_reachable(address: str | None, timeout: float | None = None) -> None:
    """Refuse, within ``timeout`` seconds, a Ray address (``--address``, else ``$RAY_ADDRESS``) nothing listens on.

    Only ``HOST:PORT`` and ``ray://HOST:PORT`` are probed (a TCP connection); ``auto``, ``local`` and
    other forms are left to Ray.
    """
    address = address or os.environ.get("RAY_ADDRESS") or None
    if not address or address in ("auto", "local"):
        return
    host, sep, port_text = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port_text.isdigit():
        return
    port = int(port_text)
    if not 0 < port < 65536:
        raise ExperimentError(f"The Ray address {address!r} has no valid port (1 to 65535).")
    budget = RAY_CONNECT_SECONDS if timeout is None else timeout
    deadline = time.monotonic() + budget
    while True:
        try:
            with socket.create_connection((host.strip("[]"), port), timeout=max(0.1, min(5.0, budget))):
                return
        except OSError as exc:
            if time.monotonic() >= deadline:
                raise ExperimentError(
                    f"Cannot reach the Ray cluster at {address} ({exc.strerror or exc}; tried for {budget:.0f} s). "
                    "Start it (`ray start --head`), fix --address or $RAY_ADDRESS, or leave both unset to run on "
                    "a local Ray instance started for this sweep."
                ) from None
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))


@contextlib.contextmanager
def ray_session(address: str | None) -> Iterator[None]:
    """Ray for the sweep: joined (``address``/``$RAY_ADDRESS``), started and stopped, or already there."""
    import ray

    if ray.is_initialized():
        if address:
            logger.info("Ray is already initialised in this process; --address is not used")
        yield
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        try:
            yield
        finally:
            ray.shutdown()
        return
    # Every process Ray starts inherits the token: the watchdog finds them all should the sweep be killed.
    token = uuid.uuid4().hex
    previous = os.environ.get(TOKEN_VARIABLE)
    os.environ[TOKEN_VARIABLE] = token
    reaper = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("reaper.py")), str(os.getpid()), token],
        stdin=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        context = ray.init(address="local", include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            assert reaper.stdin is not None
            reaper.stdin.write(f"session {getattr(context, 'address_info', {})['session_dir']}\n")
            reaper.stdin.flush()
        yield
    finally:
        try:
            ray.shutdown()
        finally:
            with contextlib.suppress(OSError, ValueError):
                assert reaper.stdin is not None
                reaper.stdin.write("done\n")
                reaper.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                reaper.wait(timeout=10)
            if previous is None:
                os.environ.pop(TOKEN_VARIABLE, None)
            else:
                os.environ[TOKEN_VARIABLE] = previous


def fit_resources(requested: dict[str, float]) -> dict[str, float]:
    """The resources per trial, within what the cluster has (a trial asking for more would never start)."""
    import ray

    cluster = ray.cluster_resources()
    cpus, gpus = float(cluster.get("CPU", 1.0)), float(cluster.get("GPU", 0.0))
    fitted = {"cpu": min(requested["cpu"], cpus), "gpu": min(requested["gpu"], gpus)}
    if fitted["cpu"] < requested["cpu"]:
        logger.info(
            f"each trial asks for {requested['cpu']:g} CPUs; the Ray cluster has {cpus:g}: using {fitted['cpu']:g}"
        )
    if fitted["gpu"] < requested["gpu"]:
        where = "no GPU: trials run on the CPU" if gpus == 0 else f"{gpus:g} GPUs: using {fitted['gpu']:g}"
        logger.info(f"each trial asks for {requested['gpu']:g} GPUs; the Ray cluster has {where}")
    return fitted


class SweepTerminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C's ``KeyboardInterrupt`` so that Ray is shut down on the way out."""

    exit_code = 143


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops the sweep the way Ctrl-C does, so Ray is shut down (not left running)."""

    received: list[int] = []

    def handle(signum: int, frame: Any) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handle)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    except KeyboardInterrupt:
        if received:  # whatever Ray Tune made of the exception on its way out
            raise SweepTerminated from None
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)


def _quiet_tune() -> None:
    # Tune's new console output prints boxes and tables even at verbose=0; the legacy one is silent.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    for name in ("ray.tune", "ray.train", "ray.air"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # After a Ctrl-C it warns that the trials it stopped have no metrics: the sweep lists them itself.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)


# -- the sweep ----------------------------------------------------------------------------------------------


def default_out(plan: Plan) -> Path:
    return Path("sweeps") / plan.experiment.name


def prepare(experiment_path: str | Path, options: SweepOptions) -> tuple[Plan, SweepDir]:
    """Check everything (experiment, configs, --set, every trial's config, the sweep directory); write nothing."""
    for option, value in (("--cpus-per-trial", options.cpus_per_trial), ("--gpus-per-trial", options.gpus_per_trial)):
        if value is not None and value < (0 if option == "--gpus-per-trial" else 1e-9):
            raise ExperimentError(f"{option} {value:g}: give a number {'>= 0' if 'gpus' in option else '> 0'}.")
    if options.max_concurrent is not None and options.max_concurrent < 1:
        raise ExperimentError(f"--max-concurrent {options.max_concurrent}: give a number >= 1.")
    experiment = load_experiment(experiment_path)
    plan = plan_trials(experiment, options.overrides, seeds=options.seeds, cells=options.cells)
    directory = SweepDir(options.out or default_out(plan))
    directory.check_compatible(plan)
    return plan, directory


def require_tune() -> None:
    """A one-line error, before anything is written, where Ray Tune cannot be imported."""
    try:
        import ray.tune  # noqa: F401
    except ImportError as exc:
        raise ExperimentError(
            f"vlmrm sweep needs Ray Tune ({exc}); install it with: pip install 'vlmrm[ray]'"
        ) from None


def run_sweep(experiment_path: str | Path, options: SweepOptions | None = None) -> SweepResult:
    """Run (or continue) the sweep of ``experiment_path``; see the module docstring."""
    options = options or SweepOptions()
    started = time.perf_counter()
    plan, directory = prepare(experiment_path, options)
    _quiet_tune()
    require_tune()
    check_ray_reachable(options.address)
    directory.path.mkdir(parents=True, exist_ok=True)
    with directory.lock():
        directory.write_manifest(plan)
        before = directory.states(plan.trials)
        todo = [trial for trial in plan.trials if before[trial.name].state != "done"]
        done_before = len(plan.trials) - len(todo)
        cells = f"{len(plan.cells)} cells" + (f" of {plan.cells_total}" if len(plan.cells) < plan.cells_total else "")
        seeds = len({trial.seed for trial in plan.trials})
        logger.info(
            f"sweep {plan.experiment.name}: {len(plan.trials)} trials ({cells} x {seeds} seeds) in {directory.path}; "
            f"{done_before} finished before, {len(todo)} to run"
        )
        result = SweepResult(directory.path, before, [t.name for t in todo], 0.0, 0.0)
        if todo:
            _run_on_tune(plan, directory, todo, options, done_before, result)
        result.states = directory.states(plan.trials)
    result.wall_seconds = time.perf_counter() - started
    return result


def _run_on_tune(
    plan: Plan,
    directory: SweepDir,
    todo: list[Trial],
    options: SweepOptions,
    done_before: int,
    result: SweepResult,
) -> None:
    from ray import tune

    ray_started = time.perf_counter()
    # Ray's core installs a SIGTERM handler of its own when it starts (it aborts): ours goes in after it.
    with ray_session(options.address), _sigterm_as_interrupt():
        result.ray_seconds = time.perf_counter() - ray_started
        requested = plan.experiment.resources.model_dump()
        if options.cpus_per_trial is not None:
            requested["cpu"] = options.cpus_per_trial
        if options.gpus_per_trial is not None:
            requested["gpu"] = options.gpus_per_trial
        resources = fit_resources(requested)
        sweep = str(directory.path.resolve())
        progress = _progress_callback(len(plan.trials), done_before, directory, result)
        param_space = {
            "sweep": sweep,
            "trial": tune.grid_search([{"name": t.name, "config": t.config} for t in todo]),
        }
        tuner = tune.Tuner(
            tune.with_resources(tune_trainable, resources),
            param_space=param_space,
            tune_config=tune.TuneConfig(
                max_concurrent_trials=options.max_concurrent,
                reuse_actors=True,  # one worker process imports torch and MuJoCo once for many trials
                trial_name_creator=_trial_name,
                trial_dirname_creator=_trial_name,
            ),
            run_config=tune.RunConfig(
                name=f"attempt-{datetime.now():%Y%m%d-%H%M%S}",
                storage_path=str(directory.path.resolve() / "tune"),
                verbose=0,
                callbacks=[progress],
                failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
            ),
        )
        fit_started = time.perf_counter()
        tuner.fit()
        shutdown_started = time.perf_counter()
        result.fit_seconds = shutdown_started - fit_started
        if progress.first_start <= progress.last_end:
            result.startup_seconds = progress.first_start - fit_started
            result.winddown_seconds = shutdown_started - progress.last_end
    result.ray_seconds += time.perf_counter() - shutdown_started
