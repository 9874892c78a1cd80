"""``vlmrm report``: per-cell means and intervals over seeds, the paper's column, curves, and what is left out.

The sweep directories here are written by hand (a manifest, summaries, progress logs), so the
numbers a report must show are known exactly and nothing trains.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vlmrm.cli.main import main
from vlmrm.experiments.report import build_report, read_curves
from vlmrm.experiments.stats import common_grid, curve_band, mean_ci
from vlmrm.run.lock import RunLock

PNG = b"\x89PNG\r\n\x1a\n"


def summary(success: float, env_return: float, vlm_return: float, steps: int = 100) -> dict:
    """A finished run whose best policy (at step 50) succeeded always and scored twice the final VLM return."""
    best = {"step": 50, "success_rate": 1.0, "vlm_return": 2 * vlm_return, "env_return": env_return}
    return {
        "total_steps": steps,
        "eval_success_rate": success,
        "eval_step_success_rate": success / 2,
        "eval_env_return": env_return,
        "eval_vlm_return": vlm_return,
        "train_seconds": 1.0,
        "steps_per_second": 100.0,
        "eval_history": [
            {**best, "step_success_rate": 1.0},
            {
                "step": steps,
                "success_rate": success,
                "vlm_return": vlm_return,
                "env_return": env_return,
                "step_success_rate": success / 2,
            },
        ],
        "best": {**best, "checkpoint": "checkpoints/best.zip"},
    }


def write_progress(run_dir: Path, steps: list[int], vlm: list[float], env: list[float]) -> None:
    logs = run_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    lines = ["step,rollout/vlm_return,rollout/env_return,train/actor_loss"]
    lines += [f"{s},{v},{e}," for s, v, e in zip(steps, vlm, env, strict=True)]
    lines.append(f"{steps[-1] + 1},,,0.5")  # a row logging something else: no curve point
    (logs / "progress.csv").write_text("\n".join(lines) + "\n")


def make_sweep(root: Path) -> Path:
    """Two cells x three seeds: cell A all done (success 0, 1, 1); cell B one done, one running, one failed;
    plus a cell C whose only trial is pending."""
    sweep = root / "sweep"
    cells = [("A", 1.0), ("B", 0.36), ("C", None)]
    trials = []
    for label, _ in cells:
        for seed in range(3 if label != "C" else 1):
            name = f"{label}-seed{seed}"
            trials.append({"name": name, "cell": label, "seed": seed, "run_dir": f"trials/{name}",
                           "config": {"rl": {"total_steps": 100}}})  # fmt: skip
    manifest = {
        "format": 1,
        "name": "demo",
        "description": "A hand-written sweep.",
        "experiment_file": "/nowhere/demo.yaml",
        "overrides": ["reward.model=tiny-random"],
        "seeds": [0, 1, 2],
        "cells_total": 3,
        "resources": {"cpu": 1, "gpu": 0},
        "paper_source": "Somebody et al., table 1",
        "cells": [
            {"label": label, "slug": label, "config": "/x.yaml", "values": {}, "paper_success_rate": paper}
            for label, paper in cells
        ],
        "trials": trials,
    }
    sweep.mkdir()
    (sweep / "sweep.json").write_text(json.dumps(manifest))
    done = {
        "A-seed0": (0.0, 10.0, 1.0),
        "A-seed1": (1.0, 20.0, 2.0),
        "A-seed2": (1.0, 30.0, 3.0),
        "B-seed0": (0.5, 5, 5),
    }
    for name, values in done.items():
        run_dir = sweep / "trials" / name
        run_dir.mkdir(parents=True)
        (run_dir / "config.yaml").write_text("env: {}\n")
        (run_dir / "summary.json").write_text(json.dumps(summary(*values)))
        offset = float(name[-1])
        write_progress(run_dir, [20, 60, 100], [offset, offset + 1, offset + 2], [offset * 10, 5.0, 7.0])
    for name in ("B-seed1", "B-seed2"):
        (sweep / "trials" / name).mkdir(parents=True)
        (sweep / "trials" / name / "config.yaml").write_text("env: {}\n")
    (sweep / "failures").mkdir()
    (sweep / "failures" / "B-seed2.json").write_text(json.dumps({"error": "Model 'x' not found; use tiny-random"}))
    return sweep


def test_the_report_averages_finished_seeds_and_lists_the_others(tmp_path: Path, capsys) -> None:
    sweep = make_sweep(tmp_path)
    with RunLock(sweep / "trials" / "B-seed1"):  # a trainer holds this lock while it trains: "running"
        assert main(["report", str(sweep)]) == 0
    printed = capsys.readouterr().out
    report = (sweep / "report" / "report.md").read_text()
    results = report.split("## Best policy")[0]
    rows = {line.split(" | ")[0].strip("| "): line for line in results.splitlines() if line.startswith("| ")}
    # Cell A: success 0, 1, 1 -> 67 %; env returns 10, 20, 30 -> 20; paper 100 %.
    assert rows["A"].startswith("| A | 3/3 | 67 % [") and "| 20 [" in rows["A"] and rows["A"].endswith("| 100 % |")
    # Cell B: one finished seed only, no interval; the running and the failed seeds are not averaged.
    assert rows["B"].startswith("| B | 1/3 | 50 % (1 seed) |") and rows["B"].endswith("| 36 % |")
    assert rows["C"] == "| C | 0/1 | — | — | — | — | — |"
    assert "| paper success |" in report and "Somebody et al., table 1" in report
    assert "`--set reward.model=tiny-random`" in report and "not the experiment's own setting" in report
    left_out = report.split("## Trials not in the averages")[1].split("##")[0]
    assert "| B-seed1 | running |" in left_out
    assert "| B-seed2 | failed | Model 'x' not found; use tiny-random |" in left_out
    assert "| C-seed0 | pending |" in left_out and "A-seed" not in left_out
    assert rows["A"] in printed  # the CLI prints the table
    with open(sweep / "report" / "trials.csv", newline="") as handle:
        trials = list(csv.DictReader(handle))
    assert [t["trial"] for t in trials] == ["A-seed0", "A-seed1", "A-seed2", "B-seed0", "B-seed1", "B-seed2", "C-seed0"]
    assert trials[1]["state"] == "done" and float(trials[1]["eval_env_return"]) == 20.0
    assert trials[4]["state"] == "running" and trials[4]["eval_env_return"] == ""
    # The best policy against the final one: cell A's final success 67 %, its best 100 %, kept at step 50.
    best_rows = report.split("## Best policy against final policy")[1].split("##")[0]
    assert "| A | 67 % [" in best_rows and "| 100 % [100 %, 100 %] |" in best_rows and best_rows.count("| 50 |") == 2
    assert trials[1]["best_step"] == "50" and float(trials[1]["best_success_rate"]) == 1.0
    for figure in ("success.png", "learning_curves.png", "eval_curves.png"):
        assert (sweep / "report" / "figures" / figure).read_bytes().startswith(PNG)
        assert f"](figures/{figure})" in report


def test_the_report_of_a_sweep_without_paper_numbers_has_no_paper_column(tmp_path: Path) -> None:
    sweep = make_sweep(tmp_path)
    manifest = json.loads((sweep / "sweep.json").read_text())
    for cell in manifest["cells"]:
        cell["paper_success_rate"] = None
    manifest["paper_source"] = None
    (sweep / "sweep.json").write_text(json.dumps(manifest))
    report = build_report(sweep)
    assert "paper" not in report.table and "paper" not in report.path.read_text().lower().split("## every trial")[0]


@pytest.mark.parametrize("make", ["missing", "empty", "not-a-manifest"])
def test_report_of_a_directory_that_is_not_a_sweep_is_a_one_line_error(tmp_path: Path, capsys, make: str) -> None:
    target = tmp_path / "dir"
    if make != "missing":
        target.mkdir()
    if make == "not-a-manifest":
        (target / "sweep.json").write_text('{"hello": 1}')
    assert main(["report", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "sweep" in err
    assert not (target / "report").exists()


def test_read_curves_keeps_rows_with_values_in_step_order(tmp_path: Path) -> None:
    write_progress(tmp_path, [30, 10, 20], [3.0, 1.0, 2.0], [0.3, 0.1, 0.2])
    curves = read_curves(tmp_path / "logs" / "progress.csv")
    steps, values = curves["rollout/vlm_return"]
    assert steps.tolist() == [10, 20, 30] and values.tolist() == [1.0, 2.0, 3.0]
    assert read_curves(tmp_path / "missing.csv") == {}


def test_bootstrap_interval_brackets_the_mean_and_needs_two_seeds() -> None:
    estimate = mean_ci([0.0, 1.0, 1.0])
    assert estimate is not None and estimate.mean == pytest.approx(2 / 3) and estimate.n == 3
    assert 0.0 <= estimate.low <= estimate.mean <= estimate.high <= 1.0 and estimate.low < estimate.high
    assert mean_ci([0.0, 1.0, 1.0]) == estimate  # a fixed seed: the same report every time
    same = mean_ci([2.0, 2.0])
    assert (same.mean, same.low, same.high) == (2.0, 2.0, 2.0)
    one = mean_ci([5.0, float("nan")])
    assert (one.mean, one.low, one.high, one.n) == (5.0, None, None, 1)
    assert mean_ci([]) is None


def test_curve_band_and_common_grid() -> None:
    grid = common_grid([np.array([0, 10, 20, 30]), np.array([5, 15, 25])])
    assert grid.tolist() == [5, 10, 15, 20, 25]
    curves = np.array([[0.0, 1.0, 2.0], [2.0, 3.0, 4.0]])
    mean, low, high = curve_band(curves)
    assert mean.tolist() == [1.0, 2.0, 3.0] and np.all(low <= mean) and np.all(mean <= high)
    assert np.all(low >= curves.min(axis=0)) and np.all(high <= curves.max(axis=0))
    single, low1, high1 = curve_band(curves[:1])
    assert single.tolist() == low1.tolist() == high1.tolist() == [0.0, 1.0, 2.0]


def edit_manifest(sweep: Path, change) -> None:
    manifest = json.loads((sweep / "sweep.json").read_text())
    change(manifest)
    (sweep / "sweep.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("name", ["../other", "/tmp/other", "..", "A-seed0/../../other"])
def test_the_report_never_reads_a_trial_outside_the_sweep(tmp_path: Path, capsys, name: str) -> None:
    """A trial named like a path in sweep.json must not bring another run's results into the report."""
    sweep = make_sweep(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    (other / "summary.json").write_text(json.dumps(summary(1.0, 99.0, 9.0)))

    def rename(manifest: dict) -> None:
        manifest["trials"][-1]["name"] = name

    edit_manifest(sweep, rename)
    assert main(["report", str(sweep)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "is damaged" in err and "not a plain name" in err and "vlmrm sweep" in err
    assert not (sweep / "report").exists()


def damage_sweep(sweep: Path, how: str) -> None:
    if how == "a trial without config":
        edit_manifest(sweep, lambda m: m["trials"][0].pop("config"))
    elif how == "total_steps not a number":
        edit_manifest(sweep, lambda m: m["trials"][0]["config"]["rl"].update(total_steps="abc"))
    elif how == "cells missing":
        edit_manifest(sweep, lambda m: m.pop("cells"))
    elif how == "truncated":
        text = (sweep / "sweep.json").read_text()
        (sweep / "sweep.json").write_text(text[: len(text) // 2])


@pytest.mark.parametrize("how", ["a trial without config", "total_steps not a number", "cells missing", "truncated"])
def test_a_damaged_manifest_is_one_line_that_says_how_to_continue(tmp_path: Path, capsys, how: str) -> None:
    sweep = make_sweep(tmp_path)
    damage_sweep(sweep, how)
    assert main(["report", str(sweep)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "is damaged" in err and f"--out {sweep}" in err and "experiment.yaml" in err, err


def test_undecodable_progress_logs_and_a_report_file_are_handled(tmp_path: Path, capsys) -> None:
    sweep = make_sweep(tmp_path)
    (sweep / "trials" / "A-seed1" / "logs" / "progress.csv").write_bytes(b"step,rollout/vlm_return\n\xff\xfe\x00\x81")
    (sweep / "report").write_text("my notes")
    assert main(["report", str(sweep)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "report" in err and "move the file away" in err, err
    assert (sweep / "report").read_text() == "my notes"
    (sweep / "report").unlink()
    assert main(["report", str(sweep)]) == 0  # the unreadable log leaves out one curve, not the report
    assert "A | 3/3" in capsys.readouterr().out


def report_figures(sweep: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The report's matplotlib figures by file name; ``boxes[name]``: where its legends and axes were drawn."""
    import vlmrm.experiments.report as report_module

    figures: dict[str, Any] = {"boxes": {}}
    save = report_module.save_figure

    def keep(fig: Any, path: Path) -> Path:
        fig.canvas.draw()  # the layout is final: legends and axes are where the PNG has them
        renderer = fig.canvas.get_renderer()
        legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None] + list(fig.legends)
        figures["boxes"][Path(path).name] = (
            [legend.get_window_extent(renderer) for legend in legends],
            [ax.get_window_extent(renderer) for ax in fig.axes],
        )
        figures[Path(path).name] = fig
        return save(fig, path)

    monkeypatch.setattr(report_module, "save_figure", keep)
    build_report(sweep)
    return figures


def test_report_figures_label_every_axis_and_keep_legends_off_the_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sweep = make_sweep(tmp_path)

    def paper_zero(manifest: dict) -> None:
        manifest["cells"][0]["paper_success_rate"] = 0.0  # cell A's seed 0 succeeded 0 % too: the same point

    edit_manifest(sweep, paper_zero)
    figures = report_figures(sweep, monkeypatch)
    boxes = figures.pop("boxes")
    assert sorted(figures) == ["eval_curves.png", "learning_curves.png", "success.png"]
    for name, fig in figures.items():
        for ax in fig.axes:
            assert ax.get_xlabel() and ax.get_ylabel(), f"{name}: an axis without a label"
        legends, axes = boxes[name]
        assert legends, name
        for legend in legends:
            assert not any(legend.overlaps(ax) for ax in axes), f"{name}: a legend over the data"

    # The paper's 0 % under ours: every mark of ours is drawn above the paper's marker.
    (ax,) = figures["success.png"].axes
    paper = [c for c in ax.collections if c.get_label() == "paper"]
    seeds = [c for c in ax.collections if c.get_label() == "one seed"]
    assert paper and seeds and min(c.get_zorder() for c in seeds) > max(c.get_zorder() for c in paper)
    at_zero = [c for c in [*seeds, *paper] if (c.get_offsets()[:, 0] == 0).any()]
    assert {c.get_label() for c in at_zero} == {"one seed", "paper"}  # the same point, ours and the paper's
    assert all(len(c.get_facecolor()) == 0 or c.get_facecolor()[0][3] == 0 for c in paper)  # hollow: ours shows through


def test_vlm_returns_of_several_cells_are_rescaled_per_cell_and_say_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cells differ in model, alpha or prompts: their VLM returns' scales differ, so one panel rescales each."""
    figures = report_figures(make_sweep(tmp_path), monkeypatch)
    vlm, env = figures["learning_curves.png"].axes
    assert "0 = its lowest mean, 1 = its highest" in vlm.get_title() and "rescaled per cell" in vlm.get_ylabel()
    for line in vlm.get_lines():
        assert line.get_ydata().min() == pytest.approx(0.0) and line.get_ydata().max() == pytest.approx(1.0)
    assert "rescaled" not in env.get_title() and env.get_ylabel() == "env return"
    success, eval_vlm = figures["eval_curves.png"].axes
    assert "rescaled" in eval_vlm.get_ylabel() and success.get_ylabel() == "success rate"
