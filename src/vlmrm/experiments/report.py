"""``vlmrm report SWEEP_DIR``: a sweep's results per cell, beside the paper's numbers.

Writes ``SWEEP_DIR/report/``:

- ``report.md``: per cell, the mean over finished seeds and its 95 % bootstrap interval
  (:mod:`vlmrm.experiments.stats`) of the final evaluation's success rate, per-step success rate,
  env return and VLM return, and the paper's success rate where it published one; the
  ``--set`` values the trials ran with (a smoke run is not the paper's setting); the trials left
  out of the averages (running, failed with their error, interrupted, pending);
- ``figures/success.png``: success rate per cell, ours (mean, interval, each seed) and the paper's;
- ``figures/learning_curves.png``: VLM and env return of the training episodes against steps,
  one line per cell (mean over seeds) with its 95 % band;
- ``figures/eval_curves.png``: the evaluations' success rate and VLM return against steps
  (``summary.json``'s ``eval_history``), likewise;
- a table of the best policy (``checkpoints/best.zip``, kept by eval VLM return) against the final one;
- ``trials.csv``: every trial, one row each.
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vlmrm.errors import RunDirectoryError
from vlmrm.evaluation.tables import headless_pyplot, save_figure, write_rows_csv
from vlmrm.experiments.stats import Estimate, common_grid, curve_band, mean_ci
from vlmrm.experiments.sweep_dir import SweepDir, TrialState
from vlmrm.run.run_dir import best_of

logger = logging.getLogger(__name__)

REPORT_DIR = "report"
TRIAL_COLUMNS = (
    "trial",
    "cell",
    "seed",
    "state",
    "total_steps",
    "eval_success_rate",
    "eval_step_success_rate",
    "eval_env_return",
    "eval_vlm_return",
    "train_seconds",
    "steps_per_second",
    "error",
    "run_dir",
    "best_step",
    "best_success_rate",
    "best_vlm_return",
)
FINAL_METRICS = TRIAL_COLUMNS[5:11]
CURVES = (("rollout/vlm_return", "VLM return"), ("rollout/env_return", "env return"))
EVAL_CURVES = (("success_rate", "success rate"), ("vlm_return", "VLM return"))
"""The ``eval_history`` entries of ``summary.json`` drawn against steps."""
CAPTIONS = {
    "success": "Success rate per cell",
    "learning_curves": "Learning curves (mean over seeds, 95 % band)",
    "eval_curves": "Evaluations against steps (mean over seeds, 95 % band)",
}
LEGEND_ORDER = ("ours (mean over seeds)", "95 % bootstrap interval", "one seed", "paper")


@dataclass
class CellResult:
    """One row of the report."""

    label: str
    trials: int
    done: int
    success: Estimate | None
    step_success: Estimate | None
    env_return: Estimate | None
    vlm_return: Estimate | None
    paper_success_rate: float | None
    seed_success: list[float]
    best_success: Estimate | None = None
    best_vlm_return: Estimate | None = None
    best_step: Estimate | None = None


@dataclass
class Report:
    path: Path
    cells: list[CellResult]
    table: str
    """The results table, in Markdown."""
    figures: list[Path]


# -- reading -----------------------------------------------------------------------------------------------


def read_curves(progress_csv: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{column: (steps, values)}`` of :data:`CURVES` from a run's ``progress.csv`` (rows with a value)."""
    curves: dict[str, tuple[list[float], list[float]]] = {column: ([], []) for column, _ in CURVES}
    try:
        with open(progress_csv, newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                try:
                    step = float(row.get("step") or "nan")
                except ValueError:
                    continue
                for column, _ in CURVES:
                    try:
                        value = float(row.get(column) or "nan")
                    except ValueError:
                        continue
                    if math.isfinite(step) and math.isfinite(value):
                        curves[column][0].append(step)
                        curves[column][1].append(value)
    except (OSError, ValueError, csv.Error) as exc:  # unreadable, or not text: no curve from this run
        logger.warning("cannot read %s (%s); its learning curve is left out", progress_csv, exc)
        return {}
    result = {}
    for column, (steps, values) in curves.items():
        if steps:
            order = np.argsort(steps, kind="stable")
            result[column] = (np.asarray(steps)[order], np.asarray(values)[order])
    return result


def read_eval_curves(summary: dict[str, Any] | None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{key: (steps, values)}`` of :data:`EVAL_CURVES` from a run's ``summary.json`` ``eval_history``."""
    history = (summary or {}).get("eval_history")
    history = history if isinstance(history, list) else []
    entries = [e for e in history if isinstance(e, dict) and _number(e.get("step"))]
    result = {}
    for key, _ in EVAL_CURVES:
        points = sorted((float(e["step"]), float(e[key])) for e in entries if _number(e.get(key)))
        if points:
            steps, values = zip(*points, strict=True)
            result[key] = (np.asarray(steps), np.asarray(values))
    return result


def _value(summary: dict[str, Any] | None, key: str) -> float | None:
    value = (summary or {}).get(key)
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


# -- formatting ---------------------------------------------------------------------------------------------


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.0f} %"


def _fmt(estimate: Estimate | None, percent: bool = False) -> str:
    if estimate is None:
        return "—"
    show = _percent if percent else (lambda v: f"{v:.3g}")
    if estimate.low is None or estimate.high is None:
        return f"{show(estimate.mean)} (1 seed)"
    return f"{show(estimate.mean)} [{show(estimate.low)}, {show(estimate.high)}]"


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(text) for text in row) + " |" for row in rows]
    return "\n".join(lines)


# -- figures ------------------------------------------------------------------------------------------------


def _success_figure(cells: list[CellResult], path: Path) -> Path | None:
    """One row per cell: our mean (a bar and a tick), its interval, each seed, and the paper's number.

    Ours is drawn on top of the paper's hollow diamond, so a 0 % seed or mean stays visible where the
    paper's number is 0 % too; the legend sits above the axes, never over the data.
    """
    if not any(c.success is not None or c.paper_success_rate is not None for c in cells):
        return None
    plt = headless_pyplot()
    height = 1.2 + 0.45 * len(cells)
    fig, ax = plt.subplots(figsize=(8.0, height))
    y = np.arange(len(cells))[::-1]
    for row, cell in zip(y, cells, strict=True):
        if cell.paper_success_rate is not None:
            ax.scatter(100 * cell.paper_success_rate, row, marker="D", s=90, facecolor="none", edgecolor="#dd8452",
                       linewidth=1.8, zorder=PAPER_ZORDER, label="paper")  # fmt: skip
        if cell.success is not None:
            mean = 100 * cell.success.mean
            ax.barh(row, mean, height=0.55, color="#4c72b0", alpha=0.85, zorder=2, label="ours (mean over seeds)")
            ax.scatter(mean, row, marker="|", s=260, linewidth=2.5, color="#1b2a49", zorder=OURS_ZORDER)
            if cell.success.low is not None and cell.success.high is not None:
                low, high = 100 * cell.success.low, 100 * cell.success.high
                ax.errorbar(
                    mean, row, xerr=[[mean - low], [high - mean]], fmt="none", ecolor="black", capsize=3,
                    zorder=OURS_ZORDER, label="95 % bootstrap interval",
                )  # fmt: skip
            ax.scatter([100 * s for s in cell.seed_success], [row] * len(cell.seed_success), s=16, marker="o",
                       color="#1b2a49", edgecolor="white", linewidth=0.5, zorder=OURS_ZORDER + 1,
                       label="one seed")  # fmt: skip
        else:
            ax.text(2, row, "no finished trial", fontsize=8, va="center", color="gray")
    ax.set_yticks(y, [c.label for c in cells])
    ax.set_xlim(-3, 103)
    ax.set_ylim(-0.6, len(cells) - 0.4)
    ax.set_xlabel("success rate of the final policy (%)")
    ax.set_ylabel("cell")
    ax.grid(axis="x", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    order = [name for name in LEGEND_ORDER if name in unique]
    legend = {"loc": "lower center", "bbox_to_anchor": (0.5, 1.0), "ncol": 4, "frameon": False, "fontsize": 8}
    ax.legend([unique[name] for name in order], order, **legend)
    fig.tight_layout()
    return save_figure(fig, path)


PAPER_ZORDER = 3
OURS_ZORDER = 5
"""Ours over the paper's reference marker (:func:`_success_figure`)."""
RESCALED = frozenset({"rollout/vlm_return", "vlm_return"})
"""Curves rescaled per cell when a figure holds several cells: a VLM return's scale depends on the cell's model,
alpha and prompts, so their raw values do not compare (:func:`_curves_figure`)."""


def rescale_band(mean: np.ndarray, low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, ...]:
    """``mean`` mapped onto [0, 1] (its minimum to 0, its maximum to 1), and its band with it.

    >>> [v.tolist() for v in rescale_band(np.array([2.0, 4.0]), np.array([1.0, 3.0]), np.array([3.0, 5.0]))]
    [[0.0, 1.0], [-0.5, 0.5], [0.5, 1.5]]
    """
    lo, span = float(np.min(mean)), float(np.ptp(mean))
    scale = span if span > 0 else 1.0
    return tuple((values - lo) / scale for values in (mean, low, high))


def _curves_figure(
    curves: dict[str, dict[str, list[tuple[np.ndarray, np.ndarray]]]],
    labels: list[str],
    path: Path,
    panels: tuple[tuple[str, str], ...] = CURVES,
    of: str = "of training episodes",
) -> Path | None:
    """``curves[column][cell label]``: the (steps, values) of each finished seed; one panel per ``(column, title)``.

    With more than one cell, the columns of :data:`RESCALED` (VLM returns) are rescaled to [0, 1] per cell, and
    the panel's title and y label say so.
    """
    if not any(curves[column].get(label) for column, _ in panels for label in labels):
        return None
    plt = headless_pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(12.0, 4.6))
    colors = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")
    for ax, (column, title) in zip(axes, panels, strict=True):
        rescaled = column in RESCALED and len(labels) > 1
        for index, label in enumerate(labels):
            seeds = [c for c in curves[column].get(label, []) if len(c[0]) > 0]
            if not seeds:
                continue
            grid = common_grid([steps for steps, _ in seeds])
            if grid.size == 0:
                continue
            matrix = np.stack([np.interp(grid, steps, values) for steps, values in seeds])
            mean, low, high = curve_band(matrix)
            if rescaled:
                mean, low, high = rescale_band(mean, low, high)
            color = colors(index % colors.N)
            ax.plot(grid, mean, color=color, label=f"{label} (n={len(seeds)})", linewidth=1.6, marker="." if
                    grid.size < 30 else None)  # fmt: skip
            if len(seeds) > 1:
                ax.fill_between(grid, low, high, color=color, alpha=0.18 if len(labels) <= 4 else 0.08, linewidth=0)
        ax.set_title(
            f"{title} {of}" + ("\nrescaled per cell: 0 = its lowest mean, 1 = its highest" if rescaled else "")
        )
        ax.set_xlabel("environment steps")
        ax.set_ylabel(f"{title} (rescaled per cell)" if rescaled else title)
        ax.grid(alpha=0.3)
    handles, names = axes[0].get_legend_handles_labels()
    columns = min(4, max(1, len(names)))
    fig.legend(handles, names, loc="lower center", ncol=columns, frameon=False, fontsize=8)  # below the panels
    rows = math.ceil(len(names) / columns)
    fig.tight_layout(rect=(0, 0.05 + 0.045 * rows, 1, 1))
    return save_figure(fig, path)


# -- the report ---------------------------------------------------------------------------------------------


def build_report(sweep: str | Path) -> Report:
    """Read the sweep in ``sweep`` and write its report (see the module docstring)."""
    from vlmrm.files import atomic_write_text

    directory = SweepDir(sweep)
    manifest = directory.read_manifest()
    trials = manifest["trials"]
    states = directory.states(trials)
    out = directory.path / REPORT_DIR
    if out.exists() and not out.is_dir():
        raise RunDirectoryError(
            f"{str(out)!r} is a file, and the report is written into the folder {REPORT_DIR}/; move the file away."
        )

    rows: list[dict[str, Any]] = []
    by_cell: dict[str, list[tuple[dict[str, Any], TrialState]]] = {}
    for trial in trials:
        state = states[trial["name"]]
        by_cell.setdefault(trial["cell"], []).append((trial, state))
        summary = state.summary
        rows.append(
            {
                "trial": trial["name"],
                "cell": trial["cell"],
                "seed": trial["seed"],
                "state": state.state,
                "total_steps": (summary or {}).get("total_steps", ""),
                **{key: _blank(_value(summary, key)) for key in FINAL_METRICS},
                "error": state.error or "",
                "run_dir": f"trials/{trial['name']}",
                **{key: _blank(value) for key, value in best_of(summary).items() if key in TRIAL_COLUMNS},
            }
        )
    write_rows_csv(rows, out / "trials.csv", TRIAL_COLUMNS)

    cells: list[CellResult] = []
    curves: dict[str, dict[str, list[tuple[np.ndarray, np.ndarray]]]] = {column: {} for column, _ in CURVES}
    eval_curves: dict[str, dict[str, list[tuple[np.ndarray, np.ndarray]]]] = {key: {} for key, _ in EVAL_CURVES}
    for cell in manifest["cells"]:
        label = cell["label"]
        entries = by_cell.get(label, [])
        done = [(trial, state) for trial, state in entries if state.state == "done"]
        summaries = [state.summary for _, state in done]
        for trial, _ in done:
            for column, series in read_curves(directory.run_dir(trial["name"]) / "logs" / "progress.csv").items():
                curves[column].setdefault(label, []).append(series)
        for summary in summaries:
            for key, series in read_eval_curves(summary).items():
                eval_curves[key].setdefault(label, []).append(series)
        bests = [best_of(summary) for summary in summaries]
        successes = [_value(s, "eval_success_rate") for s in summaries]
        cells.append(
            CellResult(
                label=label,
                trials=len(entries),
                done=len(done),
                success=mean_ci([v for v in successes if v is not None]),
                step_success=mean_ci([v for s in summaries if (v := _value(s, "eval_step_success_rate")) is not None]),
                env_return=mean_ci([v for s in summaries if (v := _value(s, "eval_env_return")) is not None]),
                vlm_return=mean_ci([v for s in summaries if (v := _value(s, "eval_vlm_return")) is not None]),
                paper_success_rate=cell.get("paper_success_rate"),
                seed_success=[v for v in successes if v is not None],
                best_success=mean_ci([b["best_success_rate"] for b in bests if _number(b["best_success_rate"])]),
                best_vlm_return=mean_ci([b["best_vlm_return"] for b in bests if _number(b["best_vlm_return"])]),
                best_step=mean_ci([b["best_step"] for b in bests if _number(b["best_step"])]),
            )
        )

    labels = [c.label for c in cells]
    figures = [
        f
        for f in (
            _success_figure(cells, out / "figures" / "success.png"),
            _curves_figure(curves, [c.label for c in cells], out / "figures" / "learning_curves.png"),
            _curves_figure(eval_curves, labels, out / "figures" / "eval_curves.png", EVAL_CURVES, "of evaluations"),
        )
        if f is not None
    ]
    table = _results_table(cells)
    markdown = _markdown(manifest, cells, rows, states, table, figures, out)
    atomic_write_text(out / "report.md", markdown)
    return Report(out / "report.md", cells, table, figures)


def directory_name(report_dir: Path) -> str:
    """The sweep's folder name, for a manifest without a name."""
    return report_dir.resolve().parent.name


def _blank(value: float | None) -> Any:
    return "" if value is None else value


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def best_vs_final_table(cells: list[CellResult]) -> str | None:
    """Markdown: per cell, the best policy (kept by eval VLM return) against the final one; ``None`` without bests."""
    if not any(c.best_vlm_return is not None for c in cells):
        return None
    header = ["cell", "final success", "best success", "final VLM return", "best VLM return", "best at step"]
    rows = [
        [c.label, _fmt(c.success, percent=True), _fmt(c.best_success, percent=True), _fmt(c.vlm_return),
         _fmt(c.best_vlm_return), "—" if c.best_step is None else f"{c.best_step.mean:.0f}"]
        for c in cells
    ]  # fmt: skip
    return _markdown_table(header, rows)


def _results_table(cells: list[CellResult]) -> str:
    paper = any(c.paper_success_rate is not None for c in cells)
    header = ["cell", "seeds done", "success", "step success", "env return", "VLM return"]
    header += ["paper success"] if paper else []
    rows = []
    for c in cells:
        row = [
            c.label,
            f"{c.done}/{c.trials}",
            _fmt(c.success, percent=True),
            _fmt(c.step_success, percent=True),
            _fmt(c.env_return),
            _fmt(c.vlm_return),
        ]
        rows.append(row + ([_percent(c.paper_success_rate)] if paper else []))
    return _markdown_table(header, rows)


def _markdown(
    manifest: dict[str, Any],
    cells: list[CellResult],
    rows: list[dict[str, Any]],
    states: dict[str, TrialState],
    table: str,
    figures: list[Path],
    out: Path,
) -> str:
    counts = {name: sum(1 for s in states.values() if s.state == name) for name in
              ("done", "running", "failed", "interrupted", "pending")}  # fmt: skip
    seeds = ", ".join(str(seed) for seed in manifest.get("seeds", []))
    shown = len(manifest["cells"])
    of_cells = (
        f" (the first {shown} of {manifest['cells_total']})" if shown < manifest.get("cells_total", shown) else ""
    )
    lines = [f"# Sweep report: {manifest.get('name', directory_name(out))}", ""]
    if manifest.get("description"):
        lines += [manifest["description"], ""]
    lines += [
        f"- Experiment file: `{manifest.get('experiment_file', 'unknown')}`",
        f"- {len(states)} trials: {len(cells)} cells{of_cells} x seeds {seeds}. "
        + ", ".join(f"{n} {name}" for name, n in counts.items() if n or name in ("done", "failed")),
    ]
    if manifest.get("overrides"):
        sets = " ".join(f"`--set {text}`" for text in manifest["overrides"])
        paper = any(c.paper_success_rate is not None for c in cells)
        lines.append(
            f"- Every trial ran with {sets}: **not the experiment's own setting**"
            + ("; the paper column is there for orientation, not comparison." if paper else ".")
        )
    lines += [
        "",
        "## Results",
        "",
        "Final evaluation of each finished trial (`summary.json`), averaged over seeds: mean "
        "[95 % percentile-bootstrap interval over seeds]. *step success* is the share of evaluation steps that met "
        "the task's success condition. Trials that are running, failed or unfinished are listed below, not averaged.",
        "",
        table,
        "",
    ]
    best_table = best_vs_final_table(cells)
    if best_table is not None:
        lines += [
            "## Best policy against final policy",
            "",
            "The best policy of each trial is the one whose evaluation scored the highest VLM return "
            "(`checkpoints/best.zip`, what a user without a true reward can select by); its success rate is that "
            "evaluation's. Mean [95 % interval] over finished seeds; *best at step*: the mean step.",
            "",
            best_table,
            "",
        ]
    if manifest.get("paper_source"):
        lines += [f"Paper: {manifest['paper_source']}", ""]
    for figure in figures:
        caption = CAPTIONS.get(figure.stem, figure.stem)
        lines += [f"![{caption}]({figure.relative_to(out).as_posix()})", ""]
    left_out = [r for r in rows if r["state"] != "done"]
    if left_out:
        lines += ["## Trials not in the averages", ""]
        lines.append(
            _markdown_table(["trial", "state", "error"], [[r["trial"], r["state"], r["error"] or ""] for r in left_out])
        )
        lines.append("")
    lines += [
        "## Every trial",
        "",
        _markdown_table(
            ["trial", "state", "success", "env return", "VLM return", "steps"],
            [
                [
                    r["trial"],
                    r["state"],
                    "" if r["eval_success_rate"] == "" else _percent(r["eval_success_rate"]),
                    "" if r["eval_env_return"] == "" else f"{r['eval_env_return']:.3g}",
                    "" if r["eval_vlm_return"] == "" else f"{r['eval_vlm_return']:.3g}",
                    str(r["total_steps"]),
                ]
                for r in rows
            ],
        ),
        "",
        "Every number of every trial: `trials.csv`. Each trial's run directory: `../trials/<trial>/`.",
        "",
    ]
    return "\n".join(lines)
