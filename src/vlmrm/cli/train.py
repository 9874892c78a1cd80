"""``vlmrm train CONFIG [--set key=value ...]``."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="Train a policy on a VLM reward described by a YAML config.",
        description="Train a policy on a vision-language-model reward. Example: "
        "vlmrm train configs/cartpole.yaml --set reward.model=tiny-random --set rl.total_steps=2000",
    )
    parser.add_argument("config", help="YAML config file (see configs/).")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Override a config field, e.g. --set reward.alpha=0.5 (repeatable; values are YAML).",
    )
    parser.add_argument("--run-dir", help="Run directory (overrides logging.run_dir).")
    parser.add_argument("--overwrite", action="store_true", help="Delete an existing run directory first.")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from vlmrm.config import load_config
    from vlmrm.rl.trainer import train

    config = load_config(args.config, args.overrides)
    result = train(config, run_dir=args.run_dir, overwrite=args.overwrite)
    s = result.summary
    print(f"run directory: {result.run_dir}")
    print(
        f"steps: {s['total_steps']}  steps/s: {s['steps_per_second']}  "
        f"eval env return: {s['eval_env_return']:.2f}  eval VLM return: {s['eval_vlm_return']:.3f}"
        + (f"  success rate: {s['eval_success_rate']:.2f}" if s["eval_success_rate"] is not None else "")
    )
    print(json.dumps({k: s[k] for k in ("total_steps", "steps_per_second")}))
    return 0
