"""``vlmrm inspect RUN_DIR``: which frames the reward likes, and whether it likes frames the task rejects."""

from __future__ import annotations

import argparse


def _checkpoint(text: str) -> int | str:
    return int(text) if text.isdigit() else text


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "inspect",
        help="Roll out a run's checkpoint and report which frames the reward likes (reward-hacking check).",
        description="Roll out a checkpoint of a run (default: its best policy), score every frame with the run's "
        "reward, and write RUN_DIR/inspect/: report.html (self-contained, opens offline), PNGs of the highest- and "
        "lowest-reward frames, the reward against the env reward and the success detector (Spearman correlation "
        "and the reward-hacking flag), the reward along each episode, summary.json and steps.csv. With baseline "
        "prompts the goal-only (alpha 0) and projected (alpha 1) rewards are shown too. "
        "Example: vlmrm inspect runs/cartpole-20240101-120000 --episodes 5",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="A run directory of vlmrm train.")
    parser.add_argument(
        "--checkpoint",
        type=_checkpoint,
        metavar="N|best|latest",
        help="The checkpoint's step (see RUN_DIR/checkpoints/), best (the policy with the highest eval VLM return, "
        "checkpoints/best.zip), latest (the newest good checkpoint), final (the one summary.json names), or a "
        "checkpoint .zip; default: best, else latest.",
    )
    parser.add_argument("--episodes", type=int, default=3, metavar="K", help="Episodes to roll out (default: 3).")
    parser.add_argument("--top", type=int, default=8, metavar="K", help="Frames shown at each end (default: 8).")
    parser.add_argument("--device", help="Where the reward model runs (default: auto).")
    parser.add_argument("--seed", type=int, help="The env's seed (default: the run's rl.seed + 10000).")
    parser.set_defaults(handler=run, model_option="reward.model={spec} in a new run")


def run(args: argparse.Namespace) -> int:
    from vlmrm.evaluation.inspect_run import inspect_run

    result = inspect_run(
        args.run_dir,
        checkpoint=args.checkpoint,
        episodes=args.episodes,
        k=args.top,
        device=args.device,
        seed=args.seed,
        progress=print,
    )
    for reward in result.summary["rewards"]:
        print(
            f"{reward['label']}: Spearman with env reward {_fmt(reward['spearman_env_reward'])}, "
            f"with success {_fmt(reward['spearman_success'])}; {reward['verdict']}: {reward['verdict_reason']}"
        )
    print(f"open {result.report}")
    return 0


def _fmt(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.3f}"
