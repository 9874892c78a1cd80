"""``vlmrm landscape ENV``: rewards along one state variable, as a CSV and a plot."""

from __future__ import annotations

import argparse

from vlmrm.cli._evaluation_args import add_model_arguments, alphas, model_specs
from vlmrm.cli._paths import check_writable_dir


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "landscape",
        help="Plot a reward model's reward along one state variable (pole angle, car position, pose).",
        description="Sweep one state variable towards the goal (CartPole: pole angle; MountainCar: car position; "
        "humanoid: a straight line in joint space from a start pose to the task's pose), render each state, "
        "score every frame with each model and alpha, and write landscape.csv (raw rewards) and landscape.png "
        "(rewards rescaled to [0, 1] per alpha, goal marked). Example: vlmrm landscape mountaincar "
        "--model openai/clip-vit-base-patch32 --alpha 0 --alpha 0.5 --alpha 1 --both-looks --out landscapes/mc",
    )
    parser.add_argument("env", help="cartpole, mountaincar or humanoid.")
    parser.add_argument("--out", required=True, help="Output directory for landscape.csv and landscape.png.")
    add_model_arguments(parser, default_alphas=[0.0, 0.5, 1.0])
    looks = parser.add_mutually_exclusive_group()
    looks.add_argument("--textured", action="store_true", help="MountainCar: use the realistic look.")
    looks.add_argument("--both-looks", action="store_true", help="MountainCar: flat and realistic looks side by side.")
    parser.add_argument("--points", type=int, default=41, help="Number of states along the sweep (default: 41).")
    parser.add_argument("--task", help="Humanoid task whose goal pose ends the sweep (default: kneeling).")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from vlmrm.envs import get_env_spec
    from vlmrm.errors import ConfigError
    from vlmrm.evaluation.landscape import default_prompts, load_models, make_sweep, run_landscape

    env = get_env_spec(args.env).name  # an unknown env is the first thing to say
    if (args.textured or args.both_looks) and env != "mountaincar":
        raise ConfigError("--textured and --both-looks apply to mountaincar only.")
    looks = ["flat", "textured"] if args.both_looks else ["textured"] if args.textured else ["flat"]
    chosen_alphas = alphas(args)
    sweep = make_sweep(env, args.points, args.task)  # checks --points and --task before any model loads
    default_target, default_baseline = default_prompts(env, args.task)
    target = args.prompts or default_target
    baseline = args.baselines or ([] if args.prompts else default_baseline)
    if any(a > 0 for a in chosen_alphas) and not baseline:
        raise ConfigError("alpha > 0 needs baseline prompts; give --baseline or use --alpha 0.")
    check_writable_dir(args.out)
    models = load_models(model_specs(args), target, baseline, args.device, args.dtype, args.batch_size)
    title = f"{env}: target {target[0]!r}" + (f", baseline {baseline[0]!r}" if baseline else "")
    csv_path, png_path, rows = run_landscape(
        env, models, chosen_alphas, args.out, looks=looks, points=args.points, task=args.task, title=title, sweep=sweep
    )
    print(f"wrote {len(rows)} rows to {csv_path}")
    print(f"wrote plot {png_path}")
    return 0
