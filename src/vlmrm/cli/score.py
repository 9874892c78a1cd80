"""``vlmrm score FRAMES... --prompt TEXT``: the reward of images or a video, before any training."""

from __future__ import annotations

import argparse
import json

from vlmrm.cli._evaluation_args import add_model_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "score",
        help="Score images, videos or .npy frames against a prompt: check a prompt before a run.",
        description="Score every frame of the given images, videos (.mp4 ...), .npy arrays of uint8 frames or "
        "directories of those with a VLM reward, and print a table (or --json). One column per model and alpha. "
        "Example: vlmrm score runs/cp/videos/step_0000010000.mp4 --prompt 'pole vertically upright on top of the "
        "cart' --baseline 'pole and cart' --alpha 0 --alpha 1 --every 10",
    )
    parser.add_argument("frames", nargs="+", metavar="FRAMES", help="Image, video or .npy files, or directories.")
    add_model_arguments(parser, default_alphas=[0.0])
    parser.add_argument("--every", type=int, default=1, metavar="N", help="Videos: score every N-th frame (default 1).")
    parser.add_argument("--json", action="store_true", help="Print the scores as JSON.")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from vlmrm.cli._evaluation_args import alphas, model_specs
    from vlmrm.errors import ConfigError
    from vlmrm.evaluation.landscape import load_models
    from vlmrm.evaluation.scoring import as_json, format_table, read_frames, score

    if not args.prompts:
        raise ConfigError("Give the goal with --prompt TEXT (repeatable), e.g. --prompt 'a humanoid robot kneeling'.")
    baseline = args.baselines or []
    chosen = alphas(args)
    if any(a > 0 for a in chosen) and not baseline:
        raise ConfigError("alpha > 0 needs baseline prompts; give --baseline TEXT or use --alpha 0.")
    frames = read_frames(args.frames, every=args.every)  # bad input fails before a model loads
    specs = model_specs(args)
    models = load_models(specs, args.prompts, baseline, args.device, args.dtype, args.batch_size)
    columns, table = score(frames, models, chosen)
    if args.json:
        print(json.dumps(as_json(frames, columns, table, args.prompts, baseline, specs, chosen), indent=2))
    else:
        print(format_table(frames, columns, table))
    return 0
