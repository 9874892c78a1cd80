"""EPIC distance between VLM rewards and a labelled dataset (Rocamonde et al. 2023, Sec. 4.4).

Each frame of the dataset has a yes/no label for one task. The labels are a (binary, state-only)
ground-truth reward; a VLM reward scores the same frames with the task's sentence as the target
prompt. The EPIC distance between the two is the Pearson distance of their values on the frames
(canonicalisation of a state-only reward subtracts its mean), i.e. ``sqrt((1 - r_pb) / 2)`` with
``r_pb`` the point-biserial correlation. Lower is better; 0.707 is chance (no correlation).

The paper's model-size study scores humanoid poses with four OpenCLIP models and finds that
larger models reach lower distances::

    vlmrm epic DATASET --model open_clip:RN50/openai --model open_clip:ViT-L-14/laion2b_s32b_b82k \\
        --model open_clip:ViT-H-14/laion2b_s32b_b79k --model open_clip:ViT-bigG-14/laion2b_s39b_b160k \\
        --alpha 0 --alpha 0.5 --alpha 1
"""

from __future__ import annotations

import logging
import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vlmrm.errors import ConfigError
from vlmrm.evaluation.dataset import Dataset, DatasetError, binary_labels
from vlmrm.evaluation.epic import ConstantRewardError, pearson_correlation
from vlmrm.evaluation.tables import headless_pyplot, save_figure, write_rows_csv

if TYPE_CHECKING:
    from vlmrm.reward import VLMReward

logger = logging.getLogger(__name__)

CSV_COLUMNS = (
    "model",
    "alpha",
    "frames",
    "positives",
    "epic_distance",
    "correlation",
    "mean_reward_yes",
    "mean_reward_no",
    "target_prompt",
    "baseline_prompt",
)
"""Columns of ``epic.csv``; a model's several prompts are joined with :data:`PROMPT_SEPARATOR`."""

PROMPT_SEPARATOR = " | "

PAPER_MODEL_SIZE_STUDY = (
    "open_clip:RN50/openai",
    "open_clip:ViT-L-14/laion2b_s32b_b82k",
    "open_clip:ViT-H-14/laion2b_s32b_b79k",
    "open_clip:ViT-bigG-14/laion2b_s39b_b160k",
)
"""Model specs of the paper's model-size study, smallest first."""


def labelled_frames(
    dataset: Dataset, source: str = "human", labels_file: str | Path | None = None
) -> tuple[np.ndarray, np.ndarray, str | None]:
    """The frames with a yes/no label, the labels (0/1), and the labelled task's sentence."""
    records, labels, sentence = binary_labels(dataset, source, labels_file)
    if len(records) < 2:
        raise DatasetError(f"{dataset.root} has {len(records)} yes/no labels; the EPIC distance needs at least 2.")
    if labels.min() == labels.max():
        answer = "yes" if labels[0] else "no"
        raise DatasetError(
            f"All {len(labels)} labelled frames of {dataset.root} are '{answer}'; the EPIC distance needs "
            "both yes and no frames. Label more frames (or collect more varied episodes)."
        )
    return dataset.load_frames(records), labels, sentence


def _to_numpy(values: Any) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().float().cpu().numpy()
    return np.asarray(values, dtype=np.float64).ravel()


def check_alphas(models: Mapping[str, VLMReward], alphas: Sequence[float]) -> None:
    """A :class:`ConfigError` unless there is an alpha, and every model has baseline prompts where one is > 0."""
    if not alphas:
        raise ConfigError("Give at least one alpha.")
    for name, reward in models.items():
        if any(a > 0 for a in alphas) and reward.baseline_embedding is None:
            raise ConfigError(f"alpha > 0 needs baseline prompts (model {name!r} has none); give --baseline.")


def epic_to_labels(
    models: Mapping[str, VLMReward],
    frames: np.ndarray,
    labels: np.ndarray,
    alphas: Sequence[float],
    features: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """One row per (model, alpha): the EPIC distance of its rewards on ``frames`` to ``labels``.

    Frames are embedded once per model (``features``: a model's ``embed_images(frames)``, computed
    already); a model whose rewards are constant on the frames gets a
    distance of NaN (undefined) and a warning.
    """
    from vlmrm.reward.video import note_still_clips

    check_alphas(models, alphas)
    labels = np.asarray(labels, dtype=np.float64)
    rows = []
    for name, reward in models.items():
        note_still_clips(reward, "the dataset's frames")
        embeddings = features[name] if features and name in features else reward.embed_images(frames)
        for alpha in alphas:
            values = _to_numpy(reward.reward_from_embeddings(embeddings, alpha=float(alpha)))
            try:
                rho = pearson_correlation(values, labels, f"the rewards of {name} (alpha={alpha:g})", "the labels")
                distance = math.sqrt(max(0.0, (1.0 - rho) / 2.0))
            except ConstantRewardError as exc:
                logger.warning("%s", exc)
                rho, distance = float("nan"), float("nan")
            rows.append(
                {
                    "model": name,
                    "alpha": float(alpha),
                    "frames": len(labels),
                    "positives": int(labels.sum()),
                    "epic_distance": distance,
                    "correlation": rho,
                    "mean_reward_yes": float(values[labels == 1].mean()),
                    "mean_reward_no": float(values[labels == 0].mean()),
                    "target_prompt": PROMPT_SEPARATOR.join(reward.target_prompts),
                    "baseline_prompt": PROMPT_SEPARATOR.join(reward.baseline_prompts),
                }
            )
    return rows


def _quoted(prompts: str) -> str:
    return ", ".join(repr(p) for p in prompts.split(PROMPT_SEPARATOR)) if prompts else "none"


def epic_title(rows: Sequence[Mapping[str, Any]], heading: str | None = None) -> str:
    """``heading`` and the prompts the rows were scored with: the target and the baseline prompt(s).

    Every EPIC table and plot carries this title, so a result is never read without knowing which
    sentence it scored (a task name such as ``kneeling`` scores very differently from its sentence).
    Models scored with different prompts are listed one by one.
    """
    prompts = {str(r["model"]): (str(r["target_prompt"]), str(r["baseline_prompt"])) for r in rows}
    described = {model: f"target: {_quoted(t)}; baseline: {_quoted(b)}" for model, (t, b) in prompts.items()}
    if len(set(described.values())) <= 1:
        lines = list(dict.fromkeys(described.values()))
    else:
        lines = [f"{model}: {text}" for model, text in described.items()]
    return "\n".join([heading, *lines] if heading else lines)


def write_csv(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Write the rows of :func:`epic_to_labels` as CSV."""
    return write_rows_csv(rows, path, CSV_COLUMNS)


def plot_bars(rows: Sequence[Mapping[str, Any]], path: str | Path, title: str | None = None) -> Path:
    """Grouped bars: EPIC distance per model (groups, in the given order), one bar per alpha.

    The figure's title is ``title`` followed by the prompts (see :func:`epic_title`).
    """
    plt = headless_pyplot()

    models = list(dict.fromkeys(r["model"] for r in rows))
    alphas = sorted(dict.fromkeys(float(r["alpha"]) for r in rows))
    width = 0.8 / max(len(alphas), 1)
    fig, ax = plt.subplots(figsize=(max(4.5, 1.6 + 1.5 * len(models) * max(1, len(alphas)) ** 0.5), 4.2))
    colours = plt.get_cmap("viridis")(np.linspace(0.0, 0.85, max(len(alphas), 1)))
    x = np.arange(len(models))
    for k, (alpha, colour) in enumerate(zip(alphas, colours, strict=True)):
        heights = []
        for model in models:
            match = [r for r in rows if r["model"] == model and float(r["alpha"]) == alpha]
            heights.append(float(match[0]["epic_distance"]) if match else float("nan"))
        bars = ax.bar(x - 0.4 + width * (k + 0.5), heights, width, color=colour, label=f"α = {alpha:g}")
        for bar, height in zip(bars, heights, strict=True):
            if math.isfinite(height):
                ax.annotate(
                    f"{height:.3f}",
                    (bar.get_x() + bar.get_width() / 2, height),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    xytext=(0, 2),
                    textcoords="offset points",
                )
    ax.axhline(math.sqrt(0.5), color="grey", linestyle=":", linewidth=1, label="chance (ρ = 0)")
    ax.set_xticks(x)
    ax.set_xticklabels([m.removeprefix("open_clip:") for m in models], rotation=15, ha="right", fontsize=8)
    ax.set_ylabel("EPIC distance to labels (lower is better)")
    ax.set_ylim(0, 1.0)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    width = int(fig.get_figwidth() * 11)  # characters of a 10-point title that fit across the figure
    wrapped = "\n".join(textwrap.fill(line, width) for line in epic_title(rows, title).splitlines())
    ax.set_title(wrapped, fontsize=9 if wrapped.count("\n") > 2 else 10)
    fig.tight_layout()
    return save_figure(fig, path)


def epic_table(rows: Sequence[Mapping[str, Any]], title: str | None = None) -> Any:
    """The rows as a rich ``Table`` titled ``title`` and the prompts (see :func:`epic_title`), for the CLI to show."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(epic_title(rows, title)))  # Text: brackets in a prompt are not rich markup
    table.add_column("model", overflow="fold")
    for column in ("alpha", "frames", "yes", "EPIC distance", "correlation"):
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(
            str(r["model"]),
            f"{r['alpha']:g}",
            str(r["frames"]),
            str(r["positives"]),
            f"{r['epic_distance']:.4f}",
            f"{r['correlation']:+.4f}",
        )
    return table
