"""``vlmrm sweep EXPERIMENT.yaml``: run an experiment's grid of trials on Ray Tune (and continue it)."""

from __future__ import annotations

import argparse
import sys

EPILOG = """\
examples:
  vlmrm sweep experiments/paper/cartpole-alpha.yaml --out sweeps/cartpole-alpha
  vlmrm sweep experiments/paper/cartpole-alpha.yaml --set reward.model=tiny-random \\
      --set rl.total_steps=2000 --out /tmp/smoke      # a smoke version of any experiment
  vlmrm report sweeps/cartpole-alpha                   # the results, beside the paper's

Re-running the same command continues the sweep: finished trials are skipped, interrupted ones
resume from their checkpoints, failed ones are tried again.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sweep",
        help="Run an experiment's grid (configs x fields x seeds) on Ray Tune; re-run to continue it.",
        description="Run every trial of an experiment file (configs x grid x seeds; see experiments/paper/) with "
        "Ray Tune, each an ordinary vlmrm run directory in OUT/trials/. Ray: --address, else $RAY_ADDRESS, else a "
        "local instance started and stopped by this command. Trials that fail are reported and do not stop the "
        "others; the exit status is 0 when every trial has finished, 1 otherwise.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("experiment", help="Experiment file (YAML), e.g. experiments/paper/humanoid-tasks.yaml.")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Set a config field in every trial, over the experiment's own values (repeatable; values are YAML), "
        "e.g. --set reward.model=tiny-random --set rl.total_steps=2000 for a smoke run.",
    )
    parser.add_argument("--out", help="Sweep directory (default: sweeps/<experiment name>).")
    parser.add_argument("--address", help="Ray cluster to run on (default: $RAY_ADDRESS, else a local instance).")
    parser.add_argument("--max-concurrent", type=int, metavar="N", help="Run at most N trials at once.")
    parser.add_argument("--seeds", type=int, metavar="N", help="Only the experiment's first N seeds.")
    parser.add_argument("--cells", type=int, metavar="N", help="Only the experiment's first N cells.")
    parser.add_argument(
        "--cpus-per-trial", type=float, metavar="N", help="CPUs each trial asks for (default: the experiment's)."
    )
    parser.add_argument(
        "--gpus-per-trial", type=float, metavar="N", help="GPUs each trial asks for (default: the experiment's)."
    )
    parser.set_defaults(handler=run, model_option="--set reward.model={spec}")


def run(args: argparse.Namespace) -> int:
    from vlmrm.experiments.runner import SweepOptions, run_sweep

    options = SweepOptions(
        overrides=args.overrides,
        out=args.out,
        address=args.address,
        max_concurrent=args.max_concurrent,
        seeds=args.seeds,
        cells=args.cells,
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial,
    )
    try:
        result = run_sweep(args.experiment, options)
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: Ray has been shut down
        print(f"sweep interrupted; re-run the same command to continue it{_out_hint(args)}", file=sys.stderr)
        return int(getattr(exc, "exit_code", 130))
    total = len(result.states)
    failed = [state for state in result.states.values() if state.state == "failed"]
    unfinished = [s.name for s in result.states.values() if s.state not in ("done", "failed")]
    print(
        f"sweep directory: {result.directory}\n"
        f"trials: {result.count('done')}/{total} done, {len(failed)} failed, {len(unfinished)} not finished"
    )
    for state in failed:
        print(f"  failed {state.name}: {state.error}")
    if unfinished:
        print(f"  not finished: {', '.join(unfinished)}")
    if result.ran:
        overheads = [result.trial_seconds[n] - result.call_seconds[n] for n in result.call_seconds]
        per_trial = f"; each trial {sum(overheads) / len(overheads):.1f} s beyond vlmrm's train/resume"
        print(
            f"time: {result.wall_seconds:.1f} s: checks {result.checks_seconds:.1f} s, Ray start and stop "
            f"{result.ray_seconds:.1f} s, Ray Tune {result.fit_seconds:.1f} s (start-up "
            f"{result.startup_seconds:.1f} s, wind-down {result.winddown_seconds:.1f} s)"
            + (per_trial if overheads else "")
        )
    if not result.ok:
        print("Re-run the same command to continue: finished trials are skipped, the others run again.")
    print(f"report: vlmrm report {result.directory}")
    return 0 if result.ok else 1


def _out_hint(args: argparse.Namespace) -> str:
    return "" if args.out else " (the sweep directory is sweeps/<experiment name>)"
