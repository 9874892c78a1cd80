"""``vlmrm enjoy RUN``: watch a trained policy (rl-baselines3-zoo's ``enjoy``): returns, success, a video."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "enjoy",
        help="Run a trained policy for a few episodes: env return, VLM return, success, and a video.",
        description="Load a run's policy, run it for N episodes (deterministic actions, seeded as training's "
        "evaluations), print the mean env return, VLM return and success rate with 95%% bootstrap intervals, "
        "and write every episode to an mp4 at a viewing size. "
        "Example: vlmrm enjoy runs/cartpole-20240101-120000 --episodes 5 --video cartpole.mp4",
    )
    parser.add_argument("run_dir", metavar="RUN", help="A run directory of vlmrm train.")
    parser.add_argument(
        "--checkpoint",
        metavar="best|final|STEP",
        help="best: checkpoints/best.zip, the policy with the highest eval VLM return; final: the newest good "
        "checkpoint; STEP: the checkpoint of that step (see RUN/checkpoints/); or a checkpoint .zip. Default: the "
        "best where the run has one, else the newest good checkpoint.",
    )
    parser.add_argument("--episodes", type=int, default=5, metavar="N", help="Episodes to run (default: 5).")
    video = parser.add_mutually_exclusive_group()
    video.add_argument(
        "--video", metavar="OUT.mp4", help="The video's path (default: RUN/videos/enjoy_<checkpoint>.mp4)."
    )
    video.add_argument("--no-video", action="store_true", help="Write no video.")
    parser.add_argument(
        "--video-size", type=int, default=512, metavar="PX", help="The video's frame size in pixels (default: 512)."
    )
    parser.add_argument("--fps", type=int, default=30, help="The video's frames per second (default: 30).")
    parser.add_argument("--device", help="Where the reward model runs (default: auto).")
    parser.add_argument("--seed", type=int, help="The env's seed (default: the run's rl.seed + 10000).")
    parser.set_defaults(handler=run, model_option="reward.model={spec} in a new run")


def default_video(run_dir: str, checkpoint: str | None) -> Path:
    checkpoint = checkpoint or "policy"
    label = Path(checkpoint).stem if checkpoint.endswith(".zip") else checkpoint
    return Path(run_dir) / "videos" / f"enjoy_{label}.mp4"


def run(args: argparse.Namespace) -> int:
    from vlmrm.cli._paths import check_writable_file
    from vlmrm.evaluation.enjoy import enjoy_run
    from vlmrm.experiments.stats import mean_ci

    # An explicit path is checked before the rollout; the default one lies in the run's own videos/ directory.
    video = (
        None
        if args.no_video
        else check_writable_file(args.video)
        if args.video
        else default_video(args.run_dir, args.checkpoint)
    )
    result = enjoy_run(
        args.run_dir,
        checkpoint=args.checkpoint,
        episodes=args.episodes,
        video=video,
        video_size=args.video_size,
        fps=args.fps,
        device=args.device,
        seed=args.seed,
    )
    evaluation = result.evaluation
    step = f" (step {result.step})" if result.step is not None else ""
    print(f"checkpoint: {result.checkpoint}{step}")
    print(f"{len(evaluation.env_returns)} episodes of {result.env_name}, reward model {result.reward_name}")
    print(f"env return: {_estimate(mean_ci(evaluation.env_returns), '.2f')}")
    print(f"VLM return: {_estimate(mean_ci(evaluation.vlm_returns), '.3f')}")
    if evaluation.successes is None:
        print(f"success: not reported ({result.env_name} sets no info['is_success'])")
    else:
        print(f"success rate: {_estimate(mean_ci([float(s) for s in evaluation.successes]), '.2f')}")
    if result.video is not None:
        print(f"video: {result.video}")
    return 0


def _estimate(estimate: Any, spec: str) -> str:
    if estimate.low is None:
        return f"{estimate.mean:{spec}} (one episode: no interval)"
    return f"{estimate.mean:{spec}}  95% CI [{estimate.low:{spec}}, {estimate.high:{spec}}]"
