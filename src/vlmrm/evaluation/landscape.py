"""Reward landscapes: how a VLM reward changes along one state variable.

A *sweep* (each env's spec defines its own, :attr:`vlmrm.envs.spec.EnvSpec.sweep`) puts the
simulator in a sequence of states that move towards the goal along one variable (CartPole's pole
angle, MountainCar's car position, a straight line in joint space between two humanoid poses),
renders each state, and the landscape is the reward of every frame
for each model and each goal-baseline strength ``alpha``. A useful reward rises towards the goal
state; Rocamonde et al. (2023, Fig. 2) show that ``alpha`` smooths the MountainCar landscape.

Frames are embedded once per model (and look); each ``alpha`` only re-projects the embeddings.
"""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vlmrm.envs.registry import available_envs, get_env_spec, parse_options
from vlmrm.envs.spec import StateSweep
from vlmrm.envs.states import render_states
from vlmrm.errors import ConfigError
from vlmrm.evaluation.tables import headless_pyplot, save_figure, write_rows_csv
from vlmrm.memory import check_fits

if TYPE_CHECKING:
    from vlmrm.reward import VLMReward

logger = logging.getLogger(__name__)

LOOKS = ("flat", "textured")
CSV_COLUMNS = ("env", "look", "model", "alpha", "state_index", "variable", "state_value", "goal_value", "reward")


@dataclass
class Sweep:
    """An env's :class:`~vlmrm.envs.spec.StateSweep` with the options it is drawn with, frames cached.

    Attributes:
        env: environment name.
        states: the sweep (variable, values, goal, simulator states, looks).
        options: the env options every frame is drawn with (a look adds its own overrides).
    """

    env: str
    states: StateSweep
    options: Mapping[str, Any] = field(default_factory=dict)
    _cache: dict[tuple[int, str], np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def variable(self) -> str:
        return self.states.variable

    @property
    def values(self) -> np.ndarray:
        return self.states.values

    @property
    def goal(self) -> float:
        return self.states.goal

    @property
    def looks(self) -> tuple[str, ...]:
        return tuple(self.states.looks)

    def frames(self, size: int, look: str = "flat") -> np.ndarray:
        """Rendered frames at ``size`` in ``look``, cached (several models share a size)."""
        if look not in self.states.looks:
            raise ConfigError(f"Environment {self.env!r} has no {look!r} look; looks: {', '.join(self.looks)}.")
        key = (size, look)
        if key not in self._cache:
            options = {**self.options, **self.states.looks[look]}
            self._cache[key] = render_states(self.env, self.states.states, size, options)
        return self._cache[key]

    def thumbnails(self, look: str = "flat", size: int = 96) -> np.ndarray:
        """Small frames for plots: already rendered frames downsampled, or rendered at ``size``."""
        rendered = [frames for (_, cached_look), frames in self._cache.items() if cached_look == look]
        if not rendered:
            return self.frames(size, look)
        from PIL import Image

        return np.stack(
            [np.asarray(Image.fromarray(f).resize((size, size), Image.Resampling.BOX)) for f in rendered[0]]
        )


def _task_options(env: str, task: str | None) -> dict[str, Any]:
    """``{"task": task}`` for an env with tasks (:attr:`EnvSpec.tasks`), an error for one without."""
    if task is None:
        return {}
    spec = get_env_spec(env)
    if not spec.tasks:
        with_tasks = [name for name in available_envs() if get_env_spec(name).tasks]
        raise ConfigError(f"Environment {spec.name!r} has no tasks; --task applies to {', '.join(with_tasks)}.")
    return {"task": task}


ROW_BYTES = 360
"""What one row of the landscape (a dict of 9 values) takes in memory (measured with tracemalloc)."""


def make_sweep(env: str, points: int = 41, task: str | None = None) -> Sweep:
    """The landscape sweep of ``env`` (from its spec); ``task`` picks the task (of an env with tasks) that ends it."""
    if points < 2:
        raise ConfigError(f"A landscape needs at least 2 points, got {points}.")
    check_fits(
        points * ROW_BYTES,
        f"--points {points}: each state is at least one row of the landscape, about {ROW_BYTES} bytes in memory: "
        f"{points} states × {ROW_BYTES} bytes",
        "Use fewer --points (a plot shows a few hundred at most).",
    )
    spec = get_env_spec(env)
    if spec.sweep is None:
        raise ConfigError(f"Environment {spec.name!r} has no landscape sweep.")
    options = parse_options(spec, _task_options(spec.name, task))
    return Sweep(spec.name, spec.sweep(options, points), options.model_dump())


def default_prompts(env: str, task: str | None = None) -> tuple[list[str], list[str]]:
    """The env's default target and baseline prompts (for a humanoid task, the paper's sentence)."""
    spec = get_env_spec(env)
    prompts = spec.default_prompts(_task_options(spec.name, task))
    return list(prompts.target), list(prompts.baseline)


def _to_numpy(values: Any) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().float().cpu().numpy()
    return np.asarray(values, dtype=np.float64).ravel()


def compute_landscape(
    sweep: Sweep,
    models: Mapping[str, VLMReward],
    alphas: Sequence[float],
    looks: Sequence[str] = ("flat",),
) -> list[dict[str, Any]]:
    """Score every state of ``sweep`` with every model, alpha and look.

    Returns one row per (look, model, alpha, state) with the columns of :data:`CSV_COLUMNS`; the
    reward is the raw value of ``reward_from_embeddings`` (no rescaling).
    """
    from vlmrm.reward.video import note_still_clips

    if not alphas:
        raise ConfigError("Give at least one alpha.")
    for alpha in alphas:
        if not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"alpha must lie in [0, 1], got {alpha}.")
    for reward in models.values():
        note_still_clips(reward, "the sweep's states")
    rows: list[dict[str, Any]] = []
    for look in looks:
        for name, reward in models.items():
            if any(a > 0 for a in alphas) and reward.baseline_embedding is None:
                raise ConfigError(f"alpha > 0 needs baseline prompts (model {name!r} has none); give --baseline.")
            size = reward.image_size
            check_fits(
                len(sweep.values) * size * size * 3,
                f"--points {len(sweep.values)}: every state's frame is drawn and kept for the model: "
                f"{len(sweep.values)} frames × {size}×{size}×3 bytes",
                "Use fewer --points.",
            )
            frames = sweep.frames(size, look)
            embeddings = reward.embed_images(frames)
            for alpha in alphas:
                values = _to_numpy(reward.reward_from_embeddings(embeddings, alpha=float(alpha)))
                for i, (state_value, value) in enumerate(zip(sweep.values, values, strict=True)):
                    rows.append(
                        {
                            "env": sweep.env,
                            "look": look,
                            "model": name,
                            "alpha": float(alpha),
                            "state_index": i,
                            "variable": sweep.variable,
                            "state_value": float(state_value),
                            "goal_value": float(sweep.goal),
                            "reward": float(value),
                        }
                    )
    return rows


def write_csv(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Write landscape rows (see :data:`CSV_COLUMNS`) to ``path``."""
    return write_rows_csv(rows, path, CSV_COLUMNS)


def rescale(values: np.ndarray) -> np.ndarray:
    """Map values linearly onto [0, 1]; a constant curve maps to 0.5."""
    values = np.asarray(values, dtype=np.float64)
    low, high = float(values.min()), float(values.max())
    if high - low <= 1e-12 * max(abs(high), 1.0):
        return np.full_like(values, 0.5)
    return (values - low) / (high - low)


def plot_landscape(
    rows: Sequence[Mapping[str, Any]],
    path: str | Path,
    sweep: Sweep | None = None,
    title: str | None = None,
    thumbnails: int = 5,
) -> Path:
    """Plot rewards against the swept variable: one panel per (model, look), one line per alpha.

    Each alpha's rewards are rescaled to [0, 1] so curves of different scales compare by shape;
    the goal state is a dashed vertical line. With ``sweep``, a strip of frames along the sweep
    heads each look's column.
    """
    plt = headless_pyplot()

    models = list(dict.fromkeys(r["model"] for r in rows))
    looks = list(dict.fromkeys(r["look"] for r in rows))
    alphas = sorted(dict.fromkeys(float(r["alpha"]) for r in rows))
    if not rows:
        raise ValueError("no landscape rows to plot")
    variable, goal = rows[0]["variable"], float(rows[0]["goal_value"])
    strip = sweep is not None and thumbnails > 0
    n_rows = len(models) + (1 if strip else 0)
    heights = ([0.55] if strip else []) + [1.0] * len(models)
    fig, axes = plt.subplots(
        n_rows,
        len(looks),
        figsize=(5.2 * len(looks), 1.2 + 2.9 * sum(heights)),
        squeeze=False,
        gridspec_kw={"height_ratios": heights},
    )
    colours = plt.get_cmap("viridis")(np.linspace(0.0, 0.85, max(len(alphas), 1)))
    if strip:
        assert sweep is not None
        for col, look in enumerate(looks):
            ax = axes[0][col]
            picks = np.unique(np.linspace(0, len(sweep.values) - 1, thumbnails).round().astype(int))
            frames = sweep.thumbnails(look)
            # Each thumbnail gets a thin grey border (white frames would vanish on the white figure).
            framed = np.pad(frames, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=150)
            gap = np.full((framed.shape[1], 6, 3), 255, np.uint8)
            pieces = []
            for i in picks:
                pieces += [framed[i], gap]
            ax.imshow(np.concatenate(pieces[:-1], axis=1))
            for spine in ax.spines.values():
                spine.set_visible(False)
            width = framed.shape[2] + gap.shape[1]
            ax.set_xticks([i * width + framed.shape[2] / 2 for i in range(len(picks))])
            ax.set_xticklabels([f"{sweep.values[i]:.2f}" for i in picks], fontsize=8)
            ax.set_yticks([])
            ax.set_title(f"{look} look" if len(looks) > 1 else "frames along the sweep", fontsize=10)
    for row_index, model in enumerate(models):
        for col, look in enumerate(looks):
            ax = axes[row_index + (1 if strip else 0)][col]
            for colour, alpha in zip(colours, alphas, strict=True):
                sel = [r for r in rows if r["model"] == model and r["look"] == look and float(r["alpha"]) == alpha]
                sel.sort(key=lambda r: float(r["state_value"]))
                if not sel:
                    continue
                x = np.array([float(r["state_value"]) for r in sel])
                y = rescale(np.array([float(r["reward"]) for r in sel]))
                ax.plot(x, y, color=colour, linewidth=2, label=f"α = {alpha:g}")
            ax.axvline(goal, color="crimson", linestyle="--", linewidth=1.5, label="goal")
            ax.set_ylim(-0.05, 1.05)
            ax.set_xlabel(variable)
            ax.set_ylabel("reward (rescaled)")
            ax.set_title(f"{model}" + (f" — {look}" if len(looks) > 1 else ""), fontsize=10)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8, loc="best")
    if title:
        fig.suptitle("\n".join(textwrap.wrap(title, width=55 * len(looks))), fontsize=11)
    fig.tight_layout()
    return save_figure(fig, path)


def load_models(
    specs: Sequence[str],
    target_prompts: Sequence[str],
    baseline_prompts: Sequence[str] | None,
    device: str = "auto",
    dtype: str = "fp32",
    batch_size: int = 64,
) -> dict[str, VLMReward]:
    """Load each model spec once, with the given prompts."""
    from vlmrm.reward import VLMReward

    models: dict[str, VLMReward] = {}
    for spec in dict.fromkeys(specs):
        logger.info("loading %s", spec)
        models[spec] = VLMReward.from_pretrained(
            spec, target_prompts, baseline_prompts or None, alpha=0.0, device=device, dtype=dtype, batch_size=batch_size
        )
    return models


def run_landscape(
    env: str,
    models: Mapping[str, VLMReward],
    alphas: Sequence[float],
    out_dir: str | Path,
    looks: Sequence[str] = ("flat",),
    points: int = 41,
    task: str | None = None,
    title: str | None = None,
    sweep: Sweep | None = None,
) -> tuple[Path, Path, list[dict[str, Any]]]:
    """Sweep ``env`` (or take ``sweep``), score the frames, write landscape.csv and landscape.png to ``out_dir``."""
    sweep = sweep or make_sweep(env, points, task)
    for look in looks:
        if look not in sweep.looks:
            raise ConfigError(f"Environment {env!r} has no {look!r} look; looks: {', '.join(sweep.looks)}.")
    rows = compute_landscape(sweep, models, alphas, looks)
    out = Path(out_dir)
    csv_path = write_csv(rows, out / "landscape.csv")
    png_path = plot_landscape(rows, out / "landscape.png", sweep=sweep, title=title)
    return csv_path, png_path, rows


__all__ = [
    "compute_landscape",
    "default_prompts",
    "make_sweep",
    "run_landscape",
]
