"""``vlmrm train CONFIG [--set key=value ...]`` and ``vlmrm train --resume RUN_DIR``."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="Train a policy on a VLM reward described by a YAML config, or resume a run.",
        description="Train a policy on a vision-language-model reward. Example: "
        "vlmrm train configs/cartpole.yaml --set reward.model=tiny-random --set rl.total_steps=2000. "
        "SIGINT (Ctrl-C) or SIGTERM writes a checkpoint and exits with status 130 or 143; "
        "continue with: vlmrm train --resume RUN_DIR.",
    )
    parser.add_argument("config", nargs="?", help="YAML config file (see configs/); not with --resume.")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Override a config field, e.g. --set reward.alpha=0.5 (repeatable; values are YAML). "
        "With --resume only rl.total_steps, logging.* and how rewards are computed may change.",
    )
    parser.add_argument("--run-dir", help="Run directory (overrides logging.run_dir).")
    parser.add_argument("--overwrite", action="store_true", help="Delete an existing run directory first.")
    parser.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="Continue the run in RUN_DIR from its newest good checkpoint, with its config.yaml.",
    )
    parser.set_defaults(handler=run, model_option="--set reward.model={spec}")


def check_arguments(args: argparse.Namespace) -> None:
    from vlmrm.errors import ConfigError

    if args.resume is None:
        if args.config is None:
            raise ConfigError(
                "Give a config file (e.g. vlmrm train configs/cartpole.yaml) or --resume RUN_DIR to continue a run."
            )
        return
    if args.overwrite:
        raise ConfigError(
            "--overwrite and --resume contradict each other: --overwrite deletes the run directory, "
            "--resume continues it. Pass one of them."
        )
    if args.config is not None:
        raise ConfigError(
            f"--resume continues the run with its own config.yaml; drop the config file {args.config!r} "
            "(change the budget with --set rl.total_steps=N)."
        )
    if args.run_dir is not None:
        raise ConfigError(f"--run-dir cannot be combined with --resume: the run continues in {args.resume!r}.")


def run(args: argparse.Namespace) -> int:
    check_arguments(args)
    from vlmrm.errors import TrainingInterrupted

    try:
        if args.resume is not None:
            from vlmrm.rl.trainer import resume

            result = resume(args.resume, args.overrides)
        else:
            from vlmrm.config import load_config
            from vlmrm.rl.trainer import train

            config = load_config(args.config, args.overrides)
            result = train(config, run_dir=args.run_dir, overwrite=args.overwrite)
    except TrainingInterrupted as exc:
        print(str(exc), file=sys.stderr)
        return exc.exit_code
    s = result.summary
    print(f"run directory: {result.run_dir}")
    print(
        f"steps: {s['total_steps']}  steps/s: {s['steps_per_second']}  "
        f"eval env return: {s['eval_env_return']:.2f}  eval VLM return: {s['eval_vlm_return']:.3f}"
        + (f"  success rate: {s['eval_success_rate']:.2f}" if s["eval_success_rate"] is not None else "")
    )
    best = s.get("best")
    if best:
        success = f"  success rate: {best['success_rate']:.2f}" if best.get("success_rate") is not None else ""
        where = best["checkpoint"]
        print(f"best policy: step {best['step']}  eval VLM return: {best['vlm_return']:.3f}{success}  ({where})")
    print(json.dumps({k: s[k] for k in ("total_steps", "steps_per_second")}))
    return 0
