"""``vlmrm bench ENV --model SPEC``: how fast frames become rewards, next to the paper's way."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from vlmrm.cli._env_options import add_option_argument, parse_options
from vlmrm.device_options import AUTO_DTYPE_RULE, COMPILE_CHOICES, COMPILE_RULE, DTYPE_CHOICES, INT8_RULE


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="Measure render, embed and end-to-end reward throughput against the paper authors' way.",
        description="Measure, on the same weights and env seeds: render-only frames/s, embed-only images/s, "
        "end-to-end rewarded env steps/s through the training wrappers (per-step, episode-end batches, and "
        "episode-end batches scored while the envs step), and the same work done the paper authors' way "
        "(fp32, native render size resized bicubically, per step). Prints a table and ends with "
        "'end_to_end_speedup_vs_reference_style: X' and 'end_to_end_over_embed_only: X' (the best end-to-end "
        "mode over the model alone making the same calls). Example: "
        "vlmrm bench cartpole --model random:openai/clip-vit-base-patch32 --n-envs 4",
    )
    parser.add_argument("env", help="cartpole, mountaincar or humanoid.")
    parser.add_argument(
        "--model", required=True, help="Model spec, e.g. tiny-random or random:openai/clip-vit-base-patch32."
    )
    parser.add_argument(
        "--dtype",
        default="auto",
        choices=DTYPE_CHOICES,
        help=f"Model dtype (default: auto; {AUTO_DTYPE_RULE}; {INT8_RULE}). The output says which dtype auto "
        "chose and why.",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto).")
    parser.add_argument(
        "--n-envs",
        type=env_counts,
        default=[4],
        metavar="N[,N...]",
        help="Envs in the vector env (default: 4). Several, e.g. 16,64,256,1024, measure each in turn and end with "
        "a table and a PNG (--plot) of rates against envs.",
    )
    parser.add_argument("--batch", type=int, default=64, help="Model batch size (default: 64).")
    parser.add_argument(
        "--compile",
        default="none",
        choices=COMPILE_CHOICES,
        help=f"reward.compile of the measured model (default: none; {COMPILE_RULE}; the batch size is --batch). "
        "Compiling is done before measuring; the reference row stays eager.",
    )
    parser.add_argument("--steps", type=int, default=100, help="Vector steps per measurement (default: 100).")
    parser.add_argument("--repeats", type=int, default=3, help="Repeats; figures are medians (default: 3).")
    parser.add_argument("--episode-length", type=int, help="Time limit in steps, 1 or more (default: the env's).")
    parser.add_argument(
        "--vec-env", default="dummy", choices=["dummy", "subproc"], help="Vector env kind (default: dummy)."
    )
    parser.add_argument(
        "--vectorized",
        action="store_true",
        help="Use the env's batched version: all envs stepped in one call, all frames drawn in one call on the "
        "model's device (cartpole, mountaincar, humanoid).",
    )
    parser.add_argument(
        "--renderer",
        help="The env's renderer option: pil or torch (cartpole, mountaincar with --vectorized), mujoco or warp "
        "(humanoid; warp with --vectorized), auto. Default: the env's.",
    )
    add_option_argument(parser, "physics=warp (with --vectorized --renderer warp)")
    parser.add_argument("--seed", type=int, default=0, help="Env and action seed (default: 0).")
    parser.add_argument("--no-reference", action="store_true", help="Skip the reference-style measurement.")
    parser.add_argument(
        "--plot",
        metavar="FILE",
        help="With several --n-envs: the PNG of rates against envs (default: bench-ENV-scale.png here).",
    )
    parser.add_argument(
        "--json",
        dest="json_path",
        metavar="FILE",
        help="Write every figure to this JSON file (checked before measuring).",
    )
    parser.set_defaults(handler=run)


def env_counts(text: str) -> list[int]:
    """``--n-envs``: one number, or several separated by commas (``16,64,256``), each at least 1."""
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"give a number of envs or several separated by commas, not {text!r}"
        ) from None
    if any(n < 1 for n in counts):
        raise argparse.ArgumentTypeError(f"every number of envs must be at least 1, got {text!r}")
    return counts


def run(args: argparse.Namespace) -> int:
    import warnings

    from rich.console import Console

    from vlmrm.benchmark import BenchSettings, ScalePoint, plot_scale, run_benchmark
    from vlmrm.errors import WriteError
    from vlmrm.files import atomic_write_text

    counts: list[int] = args.n_envs
    runs = [
        BenchSettings(
            env=args.env,
            model=args.model,
            dtype=args.dtype,
            device=args.device,
            n_envs=n,
            batch=args.batch,
            steps=args.steps,
            repeats=args.repeats,
            episode_length=args.episode_length,
            vec_env=args.vec_env,
            seed=args.seed,
            reference=not args.no_reference,
            vectorized=args.vectorized,
            renderer=args.renderer,
            compile=args.compile,
            options=parse_options(args.options),
        )
        for n in counts
    ]
    runs[0].env_options()  # a bad --renderer fails before the model loads
    json_path = Path(args.json_path) if args.json_path else None
    plot_path = Path(args.plot) if args.plot else (Path(f"bench-{args.env}-scale.png") if len(counts) > 1 else None)
    for path in (json_path, plot_path):
        if path is not None:
            check_writable(path, "--json" if path is json_path else "--plot")  # before minutes of measuring
    out = Console(file=sys.stdout, width=120)
    results = []
    for settings in runs:
        with warnings.catch_warnings():
            # Say once that random weights are meaningless, not once per model copy.
            warnings.filterwarnings("once", message="vlmrm: model")
            result = run_benchmark(settings)  # its progress is logged (on stderr)
        print_result(out, result)
        if len(runs) > 1:
            print_ratios(result)
        results.append(result)
    if len(results) > 1:
        points = [ScalePoint.of(result) for result in results]
        title = f"vlmrm bench {args.env}: {results[0].model_name} ({results[0].dtype}); frames: {results[0].frames}"
        print_scale(out, points, title)
        assert plot_path is not None
        print(f"wrote {plot_scale(points, plot_path, title)}")
    if json_path is not None:
        data = results[0].to_dict() if len(results) == 1 else {"runs": [result.to_dict() for result in results]}
        try:
            atomic_write_text(json_path, json.dumps(data, indent=2) + "\n")
        except OSError as exc:
            raise WriteError(f"could not write {json_path}: {exc.strerror or exc}; the figures are above.") from None
        print(f"wrote {json_path}")
    if len(results) == 1:
        print_ratios(results[0])
    return 0


def print_result(out: Any, result: Any) -> None:
    """One measurement's table, notes and closing ratio lines."""
    from rich.table import Table

    from vlmrm.benchmark import EMBED_ONLY, one_minute_load

    settings = result.settings
    table = Table(
        title=f"vlmrm bench {settings.env}: {result.model_name} ({result.dtype}, compile {settings.compile}), "
        f"{settings.n_envs} envs, batch {settings.batch}, {settings.steps} steps x {settings.repeats} repeats; "
        f"frames: {result.frames}"
    )
    table.add_column("measurement")
    table.add_column("median", justify="right")
    table.add_column("unit")
    table.add_column("all repeats", justify="right")
    table.add_column("peak RSS MiB", justify="right")
    for name, phase in result.phases.items():
        label = name + (" *" if name in (result.best_end_to_end, EMBED_ONLY[result.best_end_to_end]) else "")
        table.add_row(
            label,
            f"{phase.median:.2f}",
            phase.unit,
            " ".join(f"{rate:.2f}" for rate in phase.rates),
            f"{max(phase.peak_rss_mib):.0f}",
        )
    out.print(table)
    load_start, load_end = (one_minute_load(result.machine[key]) for key in ("load_average", "load_average_end"))
    ref_shape = "x".join(str(s) for s in result.reference_frame_shape[:2]) if result.reference_frame_shape else "-"
    out.print(
        "* the best end-to-end mode (highest median) and its embed-only row, used for the ratios. Each embed-only "
        "row makes the model calls of the end-to-end row above it (same frames per call), right after it in each "
        "repeat. Ratios are medians of per-repeat ratios; end-to-end over embed-only is at most 1 but for noise.\n"
        f"Frames rendered at {result.image_size}x{result.image_size} (no resize); reference frames {ref_shape} "
        f"(HxW) resized bicubically in fp32.\nPeak RSS: {result.memory['method']}; after loading "
        f"{result.memory['peak_rss_after_load_mib']:.0f} MiB. Load average at start {load_start}, at end {load_end}.",
        highlight=False,
    )
    for note in result.notes:
        print(note)
    print(f"dtype ({settings.dtype}): {result.dtype_choice.describe()}")
    padded = f", every call padded to {settings.batch} images" if settings.compile != "none" else ""
    print(f"compile: {settings.compile}{padded}; attention: {result.attention or '-'}")
    if settings.options:
        print("env options: " + ", ".join(f"{key}={value}" for key, value in settings.options.items()))
    if result.flops_per_image is not None:
        fraction = result.fraction_of_peak
        of_peak = "" if fraction is None else f" ({100 * fraction:.0f} % of the device's dense 16-bit peak)"
        print(
            f"model: {result.flops_per_image / 1e9:.3g} GFLOP per image; embed only at "
            f"{result.embed_tflops:.3g} TFLOP/s{of_peak}"
        )
    print(f"end_to_end_over_min_render_embed: {result.end_to_end_over_min_render_embed:.2f}")


def print_ratios(result: Any) -> None:
    """The two closing lines (the output of a one-count run ends with them)."""
    speedup = result.speedup_vs_reference
    print(f"end_to_end_speedup_vs_reference_style: {'n/a' if speedup is None else f'{speedup:.2f}'}")
    print(f"end_to_end_over_embed_only: {result.end_to_end_over_embed_only:.2f}")


def print_scale(out: Any, points: list[Any], title: str) -> None:
    """The scale sweep's table: one row per number of envs."""
    from rich.table import Table

    table = Table(title=f"scale: {title}")
    for column in ("envs", "render frames/s", "embed images/s", "best e2e steps/s", "e2e / min(render, embed)"):
        table.add_column(column, justify="right")
    table.add_column("best mode")
    for point in points:
        table.add_row(
            str(point.n_envs),
            f"{point.render:.1f}",
            f"{point.embed:.1f}",
            f"{point.end_to_end:.1f}",
            f"{point.over_min_render_embed:.2f}",
            point.best_end_to_end,
        )
    out.print(table)


def check_writable(path: Path, option: str = "--json") -> None:
    """Raise :class:`~vlmrm.errors.ConfigError` unless a file can be written (atomically) at ``path``.

    Creates the missing folders, as the write would, and a probe file next to ``path`` that it
    deletes again: the only test that sees read-only file systems, ``/proc`` and permissions alike.
    """
    from vlmrm.errors import ConfigError

    if path.is_dir():
        raise ConfigError(f"{option} {path} is a folder; give a file name, e.g. {option} {path / 'bench.json'}.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"{option} {path}: cannot create the folder {path.parent} ({exc.strerror or exc}); choose a writable path."
        ) from None
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=path.parent)
    except OSError as exc:
        raise ConfigError(
            f"{option} {path}: cannot write files in {path.parent} ({exc.strerror or exc}); choose a writable path."
        ) from None
    os.close(fd)
    os.unlink(probe)
