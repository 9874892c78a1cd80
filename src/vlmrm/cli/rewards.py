"""``vlmrm rewards compare DATASET --model A --model B ...``: rank reward models on one labelled dataset.

Any model family goes: CLIP/SigLIP (hub id, ``open_clip:``, ``tiny-random``), generative VLMs
(``vqa:<id>``) and video models (``video:<id>``, each frame a still clip). For each model and
alpha: EPIC distance, Spearman and value-order correlation with the labels, ROC-AUC of success,
the reward-hacking probe, images/s and peak memory (:mod:`vlmrm.evaluation.compare`).
"""

from __future__ import annotations

import argparse

from vlmrm.cli._evaluation_args import add_model_arguments
from vlmrm.cli.epic import add_dataset_arguments, labelled_study

EPILOG = """\
CLIP, a generative VLM and a video model on a CartPole dataset labelled by the success detector:
  vlmrm dataset collect cartpole --policy random --episodes 10 --label-with-detector --out data/cartpole
  vlmrm rewards compare data/cartpole --detector --model openai/clip-vit-base-patch32 \\
      --model vqa:HuggingFaceTB/SmolVLM-256M-Instruct --model video:microsoft/xclip-base-patch32
The paper's model-size study: experiments/paper/model-size-compare.sh
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("rewards", help="Compare reward models on a labelled dataset.")
    commands = parser.add_subparsers(dest="rewards_command", metavar="COMMAND", required=True)
    compare = commands.add_parser(
        "compare",
        help="EPIC distance, correlations, ROC-AUC, hacking probe and speed of reward models on one dataset.",
        description="Score the labelled frames of a dataset with each reward model and alpha and rank them: EPIC "
        "distance to the labels (0 perfect, 0.707 chance), Spearman and value-order (Kendall tau) correlation, "
        "ROC-AUC of success, the share of the top 10%% frames by reward that are not successes (reward hacking), "
        "images/s and peak memory on this machine. Prints one Markdown table and writes compare.md and "
        "compare.png.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_dataset_arguments(compare, "compare.md and compare.png (default: DATASET/compare)")
    add_model_arguments(compare, default_alphas=[0.0])
    compare.set_defaults(handler=run_compare, out_name="compare")


def run_compare(args: argparse.Namespace) -> int:
    from vlmrm.evaluation.compare import compare_models, markdown_table, plot_compare
    from vlmrm.evaluation.dataset import atomic_write_text

    frames, labels, _, models, chosen_alphas, title, out = labelled_study(args)
    rows = compare_models(models, frames, labels, chosen_alphas)
    table = markdown_table(rows, title=title)
    print(table)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "compare.md", table)
    png_path = plot_compare(rows, out / "compare.png", title=title)
    print(f"wrote {out / 'compare.md'} and {png_path}")
    return 0
