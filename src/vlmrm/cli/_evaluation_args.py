"""Arguments shared by the evaluation subcommands (``landscape``, ``epic``)."""

from __future__ import annotations

import argparse

from vlmrm.device_options import AUTO_DTYPE_RULE, DEVICE_CHOICES, DTYPE_CHOICES, INT8_RULE


def add_model_arguments(parser: argparse.ArgumentParser, default_alphas: list[float]) -> None:
    """``--model`` (repeatable), ``--alpha`` (repeatable), prompts, device, dtype, batch size."""
    parser.add_argument(
        "--model",
        dest="models",
        action="append",
        metavar="SPEC",
        help="Reward model spec (repeatable): a hub id such as openai/clip-vit-base-patch32, a local directory, "
        "open_clip:ARCH/TAG, vqa:ID (a generative VLM), video:ID (X-CLIP), or tiny-random, vqa:tiny-random, "
        "video:tiny-random (random weights, for smoke tests). Default: openai/clip-vit-base-patch32.",
    )
    parser.add_argument(
        "--alpha",
        dest="alphas",
        action="append",
        type=float,
        metavar="A",
        help="Goal-baseline regularisation strength in [0, 1] (repeatable). "
        f"Default: {' '.join(map(str, default_alphas))}.",
    )
    parser.add_argument("--prompt", dest="prompts", action="append", metavar="TEXT", help="Target prompt (repeatable).")
    parser.add_argument(
        "--baseline", dest="baselines", action="append", metavar="TEXT", help="Baseline prompt (repeatable)."
    )
    parser.add_argument("--device", default="auto", help=f"{DEVICE_CHOICES} (default: auto).")
    parser.add_argument(
        "--dtype",
        default="fp32",
        choices=DTYPE_CHOICES,
        help=f"Model dtype (default: fp32, so small reward differences are not lost to rounding; {AUTO_DTYPE_RULE}; "
        f"{INT8_RULE}).",
    )
    parser.add_argument("--batch-size", type=int, default=64, help="Frames embedded at once (default: 64).")
    parser.set_defaults(default_alphas=default_alphas)


def model_specs(args: argparse.Namespace) -> list[str]:
    from vlmrm.config import DEFAULT_MODEL

    return list(dict.fromkeys(args.models or [DEFAULT_MODEL]))


def alphas(args: argparse.Namespace) -> list[float]:
    from vlmrm.errors import ConfigError

    values = list(dict.fromkeys(args.alphas if args.alphas else args.default_alphas))
    for value in values:
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"--alpha must lie in [0, 1], got {value}.")
    return values
