"""Learning evidence: train a shipped preset on an oracle reward read from the frames, over seeds.

Each seed is an ordinary ``vlmrm.train`` run of ``configs/<env>.yaml`` with the reward replaced
by an oracle of :mod:`learning_oracles` (a function of the pixels, never of the simulator state):
if a preset cannot learn from a reward that is known to be right, it cannot learn from CLIP's.
Writes to ``--out``:

- ``runs/seed_<N>/``: the run directories (``summary.json`` with ``best`` and ``final``);
- ``learning_curves.png``: eval success rate and eval VLM return against steps, each seed and the mean;
- ``results.md`` and ``results.json``: per seed, the best policy's step and success (kept by eval
  VLM return, as ``best.zip``) and the final policy's success.

Run (the full CartPole study, 3 seeds, 3 at a time)::

    nice python benchmarks/learning_study.py cartpole --seeds 0 1 2 --jobs 3 --out study/cartpole

A cheap version (one seed, short) runs in the test suite: tests/test_learning_study.py.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learning_oracles import cartpole_upright, mountaincar_progress

ORACLES = {"cartpole": cartpole_upright, "mountaincar": mountaincar_progress}
"""The env presets with a pixel oracle (the Humanoid's poses need more than colour masks: none yet)."""
CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def study_overrides(seed: int, steps: int | None, eval_freq: int | None, eval_episodes: int | None) -> list[str]:
    """The ``--set`` overrides of one seed's run: its seed, no videos, no progress bar, the study's lengths."""
    overrides = [f"rl.seed={seed}", "logging.video_freq=0", "logging.progress_bar=false", "logging.inspect=false"]
    if steps is not None:
        overrides.append(f"rl.total_steps={steps}")
    if eval_freq is not None:
        overrides.append(f"logging.eval_freq={eval_freq}")
    if eval_episodes is not None:
        overrides.append(f"logging.eval_episodes={eval_episodes}")
    return overrides


def train_seed(env: str, seed: int, out: Path, overrides: list[str], preset: Path | None = None) -> dict[str, Any]:
    """Train one seed of ``env``'s preset on its oracle; return what the study table needs."""
    import torch

    import vlmrm

    torch.set_num_threads(1)  # seeds run side by side: one core each
    config = vlmrm.load_config(preset or CONFIGS / f"{env}.yaml", overrides)
    run_dir = out / "runs" / f"seed_{seed}"
    vlmrm.train(config, run_dir=run_dir, overwrite=True, reward_fn=ORACLES[env])
    return collect_seed(seed, out)


def collect_seed(seed: int, out: Path) -> dict[str, Any]:
    """What :func:`train_seed` returned, read back from the finished run of ``seed`` in ``out``."""
    run_dir = out / "runs" / f"seed_{seed}"
    summary = json.loads((run_dir / "summary.json").read_text())
    return {
        "seed": seed,
        "run_dir": str(run_dir),
        "history": summary["eval_history"],
        "best": summary["best"],
        "final": summary["final"],
        "train_seconds": summary["train_seconds"],
    }


def plot_curves(results: list[dict[str, Any]], title: str, path: Path) -> Path:
    """Eval success rate and eval VLM return against steps: each seed thin, their mean thick."""
    from vlmrm.evaluation.tables import headless_pyplot, save_figure

    plt = headless_pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11.0, 4.0))
    panels = (("success_rate", "eval success rate"), ("vlm_return", "eval VLM return"))
    for ax, (key, label) in zip(axes, panels, strict=True):
        series = []
        for result in results:
            points = [(e["step"], e[key]) for e in result["history"] if e.get(key) is not None]
            if not points:
                continue
            steps, values = map(np.asarray, zip(*points, strict=True))
            ax.plot(steps, values, linewidth=0.9, alpha=0.6, label=f"seed {result['seed']}")
            series.append((steps, values))
        if len(series) > 1 and all(len(s[0]) == len(series[0][0]) for s in series):
            ax.plot(series[0][0], np.mean([v for _, v in series], axis=0), color="black", linewidth=2.2, label="mean")
        for result in results:
            best = result["best"]
            if best is not None and best.get(key) is not None:
                ax.scatter(best["step"], best[key], marker="*", s=90, color="black", zorder=3)
        ax.set_xlabel("environment steps")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylim(-0.03, 1.03)
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle(f"{title} (stars: the best policy kept, by eval VLM return)")
    fig.tight_layout()
    return save_figure(fig, path)


def results_table(results: list[dict[str, Any]]) -> str:
    """Markdown: per seed, the best policy's step and success and the final policy's success."""

    def pct(value: float | None) -> str:
        return "—" if value is None else f"{100 * value:.0f} %"

    lines = [
        "| seed | best step | best success | best VLM return | final success | final VLM return |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        best, final = r["best"] or {}, r["final"]
        lines.append(
            f"| {r['seed']} | {best.get('step', '—')} | {pct(best.get('success_rate'))} | "
            f"{best.get('vlm_return', float('nan')):.4g} | {pct(final['success_rate'])} | {final['vlm_return']:.4g} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("env", choices=sorted(ORACLES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, help="rl.total_steps (default: the preset's)")
    parser.add_argument("--eval-freq", type=int, help="logging.eval_freq (default: the preset's)")
    parser.add_argument("--eval-episodes", type=int, help="logging.eval_episodes (default: the preset's)")
    parser.add_argument("--preset", type=Path, help="another config than configs/<env>.yaml (a candidate)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="more config overrides")
    parser.add_argument("--jobs", type=int, default=1, help="seeds trained at once, in processes")
    parser.add_argument("--collect", action="store_true", help="train nothing: plot the finished runs in --out")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    overrides = {s: study_overrides(s, args.steps, args.eval_freq, args.eval_episodes) + args.overrides
                 for s in args.seeds}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    if args.collect:
        finished = [s for s in args.seeds if (args.out / "runs" / f"seed_{s}" / "summary.json").is_file()]
        if len(finished) < len(args.seeds):
            print(f"unfinished seeds left out: {sorted(set(args.seeds) - set(finished))}")
        results = [collect_seed(s, args.out) for s in finished]
    elif args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            futures = [pool.submit(train_seed, args.env, s, args.out, overrides[s], args.preset) for s in args.seeds]
            results = [future.result() for future in futures]
    else:
        results = [train_seed(args.env, s, args.out, overrides[s], args.preset) for s in args.seeds]

    preset = args.preset or CONFIGS / f"{args.env}.yaml"
    plot_curves(results, f"{args.env}: {preset.name}, oracle pixel reward", args.out / "learning_curves.png")
    table = results_table(results)
    (args.out / "results.md").write_text(
        f"# {args.env}: {preset.name} on the oracle pixel reward\n\n"
        f"Command: `python benchmarks/learning_study.py {' '.join(argv if argv is not None else sys.argv[1:])}`\n\n"
        f"{table}\n"
    )
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    print(table)


if __name__ == "__main__":
    main()
