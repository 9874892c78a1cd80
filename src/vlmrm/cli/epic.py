"""``vlmrm epic DATASET``: EPIC distance of reward models to a dataset's yes/no labels.

Model-size study of the paper (larger CLIP models reach lower distances), on a labelled humanoid
dataset (``pip install 'vlmrm[open-clip]'``; the ViT-bigG-14 weights are about 10 GB)::

    vlmrm dataset collect humanoid --policy random --episodes 20 --every 5 --out data/humanoid
    vlmrm dataset label data/humanoid --task kneeling
    vlmrm epic data/humanoid --model open_clip:RN50/openai --model open_clip:ViT-L-14/laion2b_s32b_b82k \\
        --model open_clip:ViT-H-14/laion2b_s32b_b79k --model open_clip:ViT-bigG-14/laion2b_s39b_b160k \\
        --alpha 0 --alpha 0.5 --alpha 1
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from vlmrm.cli._evaluation_args import add_model_arguments, alphas, model_specs

EPILOG = """\
The paper's model-size study (larger models reach lower distance) on a labelled dataset:
  vlmrm epic DATASET --model open_clip:RN50/openai --model open_clip:ViT-L-14/laion2b_s32b_b82k \\
      --model open_clip:ViT-H-14/laion2b_s32b_b79k --model open_clip:ViT-bigG-14/laion2b_s39b_b160k \\
      --alpha 0 --alpha 0.5 --alpha 1
(open_clip models need: pip install 'vlmrm[open-clip]')
"""


def add_dataset_arguments(parser: argparse.ArgumentParser, outputs: str) -> None:
    """DATASET, ``--labels`` or ``--detector``, and ``--out`` (the directory for ``outputs``)."""
    parser.add_argument("dataset", help="Dataset directory (from `vlmrm dataset collect`, labelled).")
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--labels",
        help="Labels file (default: DATASET/labels.json; a relative path is relative to the working directory).",
    )
    source.add_argument(
        "--detector", action="store_true", help="Use the env's success detector labels (collect --label-with-detector)."
    )
    parser.add_argument("--out", help=f"Output directory for {outputs}.")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "epic",
        help="EPIC distance of reward models (and alphas) to a dataset's yes/no labels.",
        description="Score the labelled frames of a dataset with each reward model and alpha, and compute the EPIC "
        "distance to the labels: sqrt((1 - r) / 2) with r the (point-biserial) correlation of rewards and labels; "
        "0 is perfect, 0.707 is chance. Writes epic.csv and epic.png and prints a table, each naming the target and "
        "baseline prompts. The target prompt is the labelled task's sentence (with --detector: the sentence of the "
        "dataset's task) unless --prompt is given.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_dataset_arguments(parser, "epic.csv and epic.png (default: DATASET/epic)")
    add_model_arguments(parser, default_alphas=[0.0])
    parser.set_defaults(handler=run, out_name="epic")


def labelled_study(args: argparse.Namespace) -> tuple[Any, Any, Any, dict[str, Any], list[float], str, Path]:
    """``(frames, labels, dataset, models, alphas, title, out)`` of a study of ``args`` on a labelled dataset
    (shared by ``vlmrm epic`` and ``vlmrm rewards compare``; ``out`` defaults to DATASET/<args.out_name>)."""
    from vlmrm.errors import ConfigError
    from vlmrm.evaluation.dataset import dataset_task, load_dataset, task_sentence
    from vlmrm.evaluation.epic_study import labelled_frames
    from vlmrm.evaluation.landscape import default_prompts, load_models

    dataset = load_dataset(args.dataset)
    source = "detector" if args.detector else "human"
    frames, labels, sentence = labelled_frames(dataset, source, args.labels)
    task = dataset_task(dataset)
    if sentence is None and task and not args.prompts:
        sentence = task_sentence(task, dataset.env or None)
    try:
        env_target, env_baseline = default_prompts(dataset.env, task)
    except ConfigError:
        env_target, env_baseline = [], []
    target = args.prompts or ([sentence] if sentence else env_target)
    if not target:
        raise ConfigError("No task sentence is known for this dataset; give --prompt.")
    baseline = args.baselines or env_baseline
    chosen_alphas = alphas(args)
    if any(a > 0 for a in chosen_alphas) and not baseline:
        raise ConfigError("alpha > 0 needs baseline prompts; give --baseline or use --alpha 0.")
    models = load_models(model_specs(args), target, baseline, args.device, args.dtype, args.batch_size)
    out = Path(args.out) if args.out else Path(args.dataset) / args.out_name
    title = f"{dataset.root.name}, {source} labels ({len(labels)} frames, {int(labels.sum())} yes)"
    return frames, labels, dataset, dict(models), chosen_alphas, title, out


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from vlmrm.evaluation.epic_study import epic_table, epic_to_labels, plot_bars, write_csv

    frames, labels, _, models, chosen_alphas, title, out = labelled_study(args)
    rows = epic_to_labels(models, frames, labels, chosen_alphas)
    Console().print(epic_table(rows, title=title))
    csv_path = write_csv(rows, out / "epic.csv")
    png_path = plot_bars(rows, out / "epic.png", title=title)
    print(f"wrote {csv_path} and {png_path}")
    return 0
