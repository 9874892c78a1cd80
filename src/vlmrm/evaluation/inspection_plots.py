"""The figures of a reward inspection (:mod:`vlmrm.evaluation.inspection`), for TensorBoard and the report.

Each function draws one matplotlib figure from an :class:`~vlmrm.evaluation.inspection.Inspection`;
:func:`figure_to_array` turns it into an RGB array (TensorBoard), :func:`~vlmrm.evaluation.tables.save_figure`
into a PNG (the report).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from vlmrm.evaluation.inspection import EpisodeStrip, Inspection, KeptFrame, RewardInspection
from vlmrm.evaluation.tables import headless_pyplot

DONE_COLOUR = "#1a7f37"
NOT_DONE_COLOUR = "#cf222e"
DPI = 100


def figure_to_array(fig: Any) -> np.ndarray:
    """The figure drawn as a uint8 ``(H, W, 3)`` array; the figure is closed."""
    plt = headless_pyplot()
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return image


def _success_text(success: bool | None) -> tuple[str, str]:
    if success is None:
        return "", "black"
    return ("done" if success else "not done"), (DONE_COLOUR if success else NOT_DONE_COLOUR)


def _frame_axis(ax: Any, frame: KeptFrame) -> None:
    ax.imshow(frame.image, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    text, colour = _success_text(frame.success)
    for spine in ax.spines.values():
        spine.set_edgecolor(colour if frame.success is not None else "#999999")
        spine.set_linewidth(3 if frame.success is not None else 1)
    ax.set_title(f"{frame.reward:.4g}" + (f"\n{text}" if text else ""), fontsize=8, color=colour)
    ax.set_xlabel(f"ep {frame.episode} · t {frame.step}", fontsize=7)


def plot_extremes(reward: RewardInspection, title: str | None = None) -> Any:
    """Two rows of frames: the highest VLM rewards (best first), then the lowest (lowest first)."""
    plt = headless_pyplot()
    columns = max(len(reward.highest), len(reward.lowest), 1)
    fig, axes = plt.subplots(2, columns, figsize=(1.35 * columns + 0.9, 4.0), squeeze=False, dpi=DPI)
    for row, (frames, name) in enumerate(((reward.highest, "highest"), (reward.lowest, "lowest"))):
        for col in range(columns):
            ax = axes[row][col]
            if col < len(frames):
                _frame_axis(ax, frames[col])
            else:
                ax.axis("off")
        axes[row][0].annotate(
            f"{name}\nreward",
            xy=(-0.25, 0.5),
            xycoords="axes fraction",
            ha="right",
            va="center",
            fontsize=9,
            fontweight="bold",
        )
    fig.suptitle(title or f"{reward.label}: the frames it likes most and least", fontsize=10)
    fig.tight_layout(rect=(0.06, 0, 1, 1))
    return fig


def _strip_image(frames: Sequence[tuple[int, np.ndarray]], gap: int = 4) -> tuple[np.ndarray, list[float]]:
    """Frames side by side with a thin grey border each; the x centre of each."""
    height = max(f.shape[0] for _, f in frames)
    pieces, centres, x = [], [], 0
    for i, (_, frame) in enumerate(frames):
        framed = np.pad(frame, ((1, 1 + height - frame.shape[0]), (1, 1), (0, 0)), constant_values=150)
        pieces.append(framed)
        centres.append(x + framed.shape[1] / 2)
        x += framed.shape[1]
        if i < len(frames) - 1:
            pieces.append(np.full((framed.shape[0], gap, 3), 255, np.uint8))
            x += gap
    return np.concatenate(pieces, axis=1), centres


def _shade_success(ax: Any, success: np.ndarray | None, label: bool = True) -> None:
    """Green background where the detector says done."""
    if success is None or not success.any():
        return
    edges = np.flatnonzero(np.diff(np.r_[0, success.astype(int), 0]))
    for n, (start, stop) in enumerate(zip(edges[::2], edges[1::2], strict=True)):
        ax.axvspan(
            start - 0.5,
            stop - 0.5,
            color=DONE_COLOUR,
            alpha=0.12,
            lw=0,
            label="done (detector)" if label and n == 0 else None,
        )


def plot_episode(
    inspection: Inspection, episode: EpisodeStrip, reward: RewardInspection, title: str | None = None
) -> Any:
    """Frames at regular steps above the VLM reward, the env reward and the success flag over the episode."""
    plt = headless_pyplot()
    vlm = reward.rewards[episode.index]
    env_rewards = inspection.env_rewards_by_episode[episode.index]
    success = None if inspection.success_by_episode is None else inspection.success_by_episode[episode.index]
    has_strip = bool(episode.frames)
    fig, axes = plt.subplots(
        2 if has_strip else 1,
        1,
        figsize=(9.0, 5.0 if has_strip else 3.2),
        squeeze=False,
        gridspec_kw={"height_ratios": [1.0, 1.4] if has_strip else [1.0]},
        dpi=DPI,
    )
    if has_strip:
        ax = axes[0][0]
        image, centres = _strip_image(episode.frames)
        ax.imshow(image, interpolation="nearest")
        ax.set_xticks(centres)
        ax.set_xticklabels([f"t {step}" for step, _ in episode.frames], fontsize=8)
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
    ax = axes[-1][0]
    steps = np.arange(len(vlm))
    _shade_success(ax, success)
    ax.plot(steps, vlm, color="#0969da", linewidth=1.6, label=reward.label)
    ax.set_xlabel("step")
    ax.set_ylabel("VLM reward", color="#0969da")
    ax.set_xlim(-0.5, max(len(vlm) - 0.5, 0.5))
    ax.grid(alpha=0.3)
    twin = ax.twinx()
    twin.plot(steps, env_rewards, color="#6e7781", linewidth=1.0, linestyle="--", label="env reward")
    twin.set_ylabel("env reward", color="#6e7781")
    handles = ax.get_legend_handles_labels()
    twin_handles = twin.get_legend_handles_labels()
    ax.legend(handles[0] + twin_handles[0], handles[1] + twin_handles[1], fontsize=8, loc="best")
    fig.suptitle(title or f"episode {episode.index}: frames, VLM reward, env reward and success", fontsize=10)
    fig.tight_layout()
    return fig


def _jitter(values: np.ndarray, width: float, seed: int = 0) -> np.ndarray:
    """Spread points of few distinct values sideways so they do not hide each other."""
    if len(np.unique(values)) > 10:
        return values
    span = np.ptp(values) or 1.0
    return values + np.random.default_rng(seed).uniform(-width, width, len(values)) * span


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "undefined" if value is None else format(value, spec)


def plot_correlation(reward: RewardInspection, inspection: Inspection) -> Any:
    """VLM reward against env reward, and against the success flag, with the flag's top frames marked."""
    plt = headless_pyplot()
    values = reward.all_rewards
    env = inspection.env_rewards
    fig, axes = plt.subplots(1, 2, figsize=(10.0, 4.4), dpi=DPI)
    cutoff = np.sort(values)[::-1][reward.hacking.top_frames - 1] if len(values) else 0.0
    ax = axes[0]
    ax.scatter(_jitter(env, 0.04), values, s=9, alpha=0.45, color="#0969da", lw=0)
    ax.axhline(cutoff, color="#bf8700", linestyle="--", linewidth=1.2, label="cut-off of the top frames")
    ax.set_xlabel("env reward")
    ax.set_ylabel("reward")
    ax.set_title(f"against the env reward\nSpearman ρ = {_fmt(reward.spearman_env)}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    ax = axes[1]
    success = inspection.success
    if success is None:
        ax.text(0.5, 0.5, "no success detector\nfor this environment", ha="center", va="center", fontsize=11)
        ax.set_axis_off()
    else:
        x = _jitter(success.astype(float), 0.12, seed=1)
        colours = np.where(success, DONE_COLOUR, NOT_DONE_COLOUR)
        ax.scatter(x, values, s=9, alpha=0.45, c=colours, lw=0)
        ax.axhline(cutoff, color="#bf8700", linestyle="--", linewidth=1.2)
        ax.set_xticks([0, 1])
        ax.set_xticklabels(["not done", "done"])
        ax.set_xlim(-0.6, 1.6)
        ax.set_ylabel("reward")
        ax.grid(alpha=0.3)
        check = reward.hacking
        ax.set_title(
            f"against the success detector: Spearman ρ = {_fmt(reward.spearman_success)}\n"
            f"top {check.top_frames} frames: {_fmt(check.top_not_done, '.0%')} not done — {check.verdict}",
            fontsize=10,
            color=NOT_DONE_COLOUR if check.flagged else "black",
        )
    fig.suptitle(reward.label, fontsize=10)
    fig.tight_layout()
    return fig


def plot_landscape(reward: RewardInspection, inspection: Inspection) -> Any:
    """The reward along each episode (one line per episode), above each episode's success flags."""
    plt = headless_pyplot()
    success = inspection.success_by_episode
    raster = success is not None
    fig, axes = plt.subplots(
        2 if raster else 1,
        1,
        figsize=(9.0, 4.6 if raster else 3.6),
        squeeze=False,
        sharex=True,
        gridspec_kw={"height_ratios": [3.0, 0.2 + 0.25 * len(reward.rewards)] if raster else [1.0]},
        dpi=DPI,
    )
    ax = axes[0][0]
    colours = plt.get_cmap("viridis")(np.linspace(0.0, 0.85, max(len(reward.rewards), 1)))
    for i, (values, colour) in enumerate(zip(reward.rewards, colours, strict=False)):
        ax.plot(np.arange(len(values)), values, color=colour, linewidth=1.3, label=f"episode {i}")
    ax.set_ylabel(reward.label)
    ax.set_title(f"{reward.label} along each episode", fontsize=10)
    ax.grid(alpha=0.3)
    if len(reward.rewards) <= 10:
        ax.legend(fontsize=8, loc="best")
    if raster:
        assert success is not None
        length = max(len(s) for s in reward.rewards)
        grid = np.full((len(success), length), np.nan)
        for i, flags in enumerate(success):
            grid[i, : len(flags)] = flags
        from matplotlib.colors import ListedColormap

        axes[1][0].imshow(
            grid,
            aspect="auto",
            interpolation="nearest",
            cmap=ListedColormap([NOT_DONE_COLOUR, DONE_COLOUR]),
            vmin=0,
            vmax=1,
            extent=(-0.5, length - 0.5, len(success) - 0.5, -0.5),
        )
        axes[1][0].set_yticks(range(len(success)))
        axes[1][0].set_yticklabels([f"ep {i}" for i in range(len(success))], fontsize=7)
        axes[1][0].set_title("success detector (green: done, red: not done)", fontsize=8)
    axes[-1][0].set_xlabel("step")
    fig.tight_layout()
    return fig


def tensorboard_images(inspection: Inspection) -> dict[str, np.ndarray]:
    """The images training logs at each evaluation: ``extremes`` (the highest- and lowest-reward frames)
    and ``episode`` (the strip of the evaluation's first episode), as uint8 ``(H, W, 3)`` arrays."""
    main = inspection.main
    images = {"extremes": figure_to_array(plot_extremes(main))}
    if inspection.strips:
        images["episode"] = figure_to_array(plot_episode(inspection, inspection.strips[0], main))
    return images
