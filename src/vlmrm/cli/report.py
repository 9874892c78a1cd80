"""``vlmrm report SWEEP_DIR``: a sweep's results per cell (mean and 95 % interval over seeds) beside the paper's."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="Summarise a sweep: per-cell means and 95 %% intervals over seeds, curves, the paper's numbers.",
        description="Read a sweep directory (the --out of vlmrm sweep) and write SWEEP_DIR/report/: report.md (per "
        "cell: success rate, per-step success rate, env return and VLM return of the final evaluation, mean and 95 % "
        "bootstrap interval over finished seeds, and the paper's success rate where it published one), "
        "figures/success.png, figures/learning_curves.png and trials.csv. Running and failed trials are listed, "
        "not averaged. Example: vlmrm report sweeps/humanoid-tasks",
    )
    parser.add_argument("sweep", help="Sweep directory (the --out of vlmrm sweep).")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from vlmrm.experiments.report import build_report

    report = build_report(args.sweep)
    print(report.table)
    print(f"report: {report.path}")
    for figure in report.figures:
        print(f"figure: {figure}")
    return 0
