"""``vlmrm train CONFIG [--set key=value ...]`` and ``vlmrm train --resume RUN_DIR``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vlmrm.config import TrainConfig

CONFIG_SECTIONS = """\
config sections (every field, its default and the rules: docs/configuration.md):
  env       name (cartpole | mountaincar | humanoid | gym:<id>), episode_length, render_size, options, vectorized
  reward    model, target_prompts, baseline_prompts, alpha, batch_size, dtype, device, episode_end_batching,
            overlap_scoring, compile, backend, ray, question_template (vqa:), video (video:)
  rl        algorithm (sac | dqn | ppo), total_steps, n_envs, seed, policy, hyperparameters, vec_env
  logging   run_dir, checkpoint_freq, video_freq, video_size, eval_freq, eval_episodes, keep_checkpoints,
            save_replay_buffer, progress_bar, inspect, wandb
see the resolved config, every default filled in: vlmrm train CONFIG --print-config"""
"""The epilog of ``vlmrm train --help`` (static: --help imports no config; tests/test_cli.py keeps it true)."""

SHORTCUTS: dict[str, str] = {
    "seed": "rl.seed",
    "device": "reward.device",
    "n_envs": "rl.n_envs",
    "total_steps": "rl.total_steps",
}
"""Each shortcut option's ``--set`` field."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="Train a policy on a VLM reward described by a YAML config, or resume a run.",
        description="Train a policy on a vision-language-model reward. Example: "
        "vlmrm train configs/cartpole.yaml --set reward.model=tiny-random --set rl.total_steps=2000. "
        "SIGINT (Ctrl-C) or SIGTERM writes a checkpoint and exits with status 130 or 143; "
        "continue with: vlmrm train --resume RUN_DIR.",
        epilog=CONFIG_SECTIONS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    parser.add_argument("--seed", type=int, help="Same as --set rl.seed=N.")
    parser.add_argument("--device", help="Same as --set reward.device=DEVICE (auto, cpu, cuda, cuda:N).")
    parser.add_argument("--n-envs", type=int, metavar="N", help="Same as --set rl.n_envs=N.")
    parser.add_argument("--total-steps", type=int, metavar="N", help="Same as --set rl.total_steps=N.")
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="Print the resolved config (every default filled in; loads the reward model to know its input size "
        "and device) as YAML and exit; nothing is written.",
    )
    parser.add_argument("--run-dir", help="Run directory (overrides logging.run_dir).")
    parser.add_argument("--overwrite", action="store_true", help="Delete an existing run directory first.")
    parser.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="Continue the run in RUN_DIR from its newest good checkpoint, with its config.yaml.",
    )
    parser.set_defaults(handler=run, model_option="--set reward.model={spec}")


def overrides(args: argparse.Namespace) -> list[str]:
    """``--set`` overrides, then the shortcut options as their ``--set`` forms (a shortcut wins over ``--set``)."""
    shortcuts = [
        f"{field}={getattr(args, name)}" for name, field in SHORTCUTS.items() if getattr(args, name) is not None
    ]
    return [*args.overrides, *shortcuts]


def check_arguments(args: argparse.Namespace) -> None:
    from vlmrm.errors import ConfigError

    if args.print_config and args.resume is not None:
        raise ConfigError(
            f"--print-config shows a new run's config; a run's own resolved config is {args.resume}/config.yaml."
        )
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
            from vlmrm.training.trainer import resume

            result = resume(args.resume, overrides(args))
        else:
            from vlmrm.config import load_config
            from vlmrm.training.trainer import train

            config = load_config(args.config, overrides(args))
            if args.print_config:
                print(resolved_yaml(config, args.run_dir), end="")
                return 0
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


def resolved_yaml(config: TrainConfig, run_dir: str | None) -> str:
    """The config as a run would resolve it (the reward model is built to learn its input size, device, dtype)."""
    from vlmrm.config import dump_config, resolve
    from vlmrm.reward.backend import build_reward_function, reward_facts

    reward = build_reward_function(config.reward)
    try:
        facts = reward_facts(reward)
    finally:
        reward.close()
    return dump_config(resolve(config, facts, run_dir=run_dir))
