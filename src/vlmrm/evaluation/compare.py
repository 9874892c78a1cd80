"""Rank reward models side by side on one labelled dataset (``vlmrm rewards compare``).

For each model and alpha, on the same labelled frames:

- **EPIC distance** to the labels (:mod:`vlmrm.evaluation.epic_study`; 0 is perfect, 0.707 chance);
- **Spearman** rank correlation of rewards and labels;
- **value-order correlation**: Kendall's tau-b, the share of frame pairs the reward orders as the
  labels do minus the share it orders the other way (ties in the labels count for neither);
- **ROC-AUC** of the reward as a success detector (the chance a success frame outscores a failure);
- **hacking probe**: the share of the top-decile frames (by reward) that are not successes,
  what a policy that maximised this reward would be shown most;
- **images/s** and **peak memory** of scoring the frames on this machine (CUDA: the peak of
  allocated device memory; CPU: the process's peak resident set size, which includes everything
  loaded so far, so read it as an upper bound).

Frames are scored once per model; every alpha reuses those scores (``reward_from_embeddings``).
"""

from __future__ import annotations

import math
import resource
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vlmrm.evaluation.epic_study import check_alphas, epic_title, epic_to_labels
from vlmrm.evaluation.tables import headless_pyplot, save_figure

if TYPE_CHECKING:
    from vlmrm.reward import VLMReward

__all__ = ["COLUMNS", "compare_models", "hacking_share", "markdown_table", "plot_compare", "roc_auc"]

COLUMNS = (
    ("model", "model"),
    ("alpha", "alpha"),
    ("epic_distance", "EPIC distance ↓"),
    ("spearman", "Spearman ↑"),
    ("kendall_tau", "value order (τ) ↑"),
    ("roc_auc", "ROC-AUC ↑"),
    ("hacking", "top-10% not success ↓"),
    ("images_per_second", "images/s"),
    ("peak_memory_mb", "peak MB"),
)
"""(row key, column heading) of the Markdown table, in order."""


def roc_auc(values: np.ndarray, labels: np.ndarray) -> float:
    """The chance that a random success frame outscores a random failure frame (ties count half).

    >>> roc_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]))
    0.75
    """
    from scipy.stats import rankdata

    positives = labels == 1
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    ranks = rankdata(values)
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def hacking_share(values: np.ndarray, labels: np.ndarray, top: float = 0.1) -> float:
    """The share of the ``top`` fraction of frames by reward (at least one) whose label is not a success."""
    count = max(1, math.ceil(top * len(values)))
    best = np.argsort(-values, kind="stable")[:count]
    return float((labels[best] == 0).mean())


def _peak_memory_mb(device: Any) -> float:
    import torch

    if getattr(device, "type", "cpu") == "cuda":
        return float(torch.cuda.max_memory_allocated(device)) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux, bytes on macOS
    return float(peak) / (2**20 if sys.platform == "darwin" else 2**10)


def compare_models(
    models: Mapping[str, VLMReward], frames: np.ndarray, labels: np.ndarray, alphas: Sequence[float]
) -> list[dict[str, Any]]:
    """One row per (model, alpha) with every measure of the module docstring, models in the given order."""
    import torch
    from scipy.stats import kendalltau, spearmanr

    check_alphas(models, alphas)
    labels = np.asarray(labels, dtype=np.int64)
    rows = []
    for name, reward in models.items():
        if reward.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(reward.device)
        reward.embed_images(frames[:1])  # warm-up: lazy initialisation is not throughput
        start = time.perf_counter()
        features = reward.embed_images(frames)
        if reward.device.type == "cuda":
            torch.cuda.synchronize(reward.device)
        seconds = time.perf_counter() - start
        speed = {
            "images_per_second": len(frames) / max(seconds, 1e-9),
            "peak_memory_mb": _peak_memory_mb(reward.device),
        }
        epic = epic_to_labels({name: reward}, frames, labels, alphas, features={name: features})
        for alpha, epic_row in zip(alphas, epic, strict=True):
            values = (
                reward.reward_from_embeddings(features, alpha=float(alpha)).float().cpu().numpy().astype(np.float64)
            )
            constant = bool(np.ptp(values) == 0)
            rows.append(
                {
                    **epic_row,
                    "spearman": float("nan") if constant else float(spearmanr(values, labels).statistic),
                    "kendall_tau": float("nan") if constant else float(kendalltau(values, labels).statistic),
                    "roc_auc": roc_auc(values, labels),
                    "hacking": hacking_share(values, labels),
                    **speed,
                }
            )
    return rows


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            return "n/a"
        return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3f}"
    return str(value).replace("|", "\\|")


def markdown_table(rows: Sequence[Mapping[str, Any]], title: str | None = None) -> str:
    """The rows as one Markdown table, under the title and the prompts they were scored with (:func:`epic_title`)."""
    lines = ["  \n".join(epic_title(rows, title).splitlines()), ""]
    lines += ["| " + " | ".join(h for _, h in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += [
        "| " + " | ".join(f"{row[key]:g}" if key == "alpha" else _cell(row[key]) for key, _ in COLUMNS) + " |"
        for row in rows
    ]
    return "\n".join(lines) + "\n"


def plot_compare(rows: Sequence[Mapping[str, Any]], path: str | Path, title: str | None = None) -> Path:
    """Four panels (EPIC distance, ROC-AUC, hacking share, images/s), one bar per (model, alpha); chance dotted."""
    plt = headless_pyplot()
    panels = (
        ("epic_distance", "EPIC distance ↓", math.sqrt(0.5)),
        ("roc_auc", "ROC-AUC ↑", 0.5),
        ("hacking", "top-10% not success ↓", None),
        ("images_per_second", "images/s (log)", None),
    )
    labels = [f"{r['model']}\nα={float(r['alpha']):g}" for r in rows]
    fig, axes = plt.subplots(2, 2, figsize=(max(9.0, 1.4 * len(rows) + 2), 7.5))
    colours = plt.get_cmap("tab10")(np.arange(len(rows)) % 10)
    x = np.arange(len(rows))
    for ax, (key, heading, chance) in zip(axes.ravel(), panels, strict=True):
        ax.bar(x, [float(r[key]) for r in rows], color=colours)
        ax.set_title(heading, fontsize=9)
        ax.set_xticks(x)
        ax.set_xticklabels(labels, rotation=20, ha="right", fontsize=7)
        ax.grid(axis="y", alpha=0.3)
        if key == "images_per_second":
            ax.set_yscale("log")
        else:
            ax.set_ylim(0.0, 1.0)
        if chance is not None:
            ax.axhline(chance, color="grey", linestyle=":", linewidth=1, label="chance")
            ax.legend(fontsize=7)
    fig.suptitle(epic_title(rows, title), fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)
