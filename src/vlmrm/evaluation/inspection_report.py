"""The files of ``vlmrm inspect``: a self-contained ``report.html``, its PNGs, ``summary.json`` and ``steps.csv``.

Everything is written into a temporary directory next to the destination, which replaces the
destination (``RUN_DIR/inspect``) only once complete: a failed or killed inspection leaves the
previous report as it was, never a half-written one.
"""

from __future__ import annotations

import base64
import html
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from vlmrm.evaluation.inspection import HACKING_THRESHOLD, TOP_FRACTION, Inspection, RewardInspection
from vlmrm.evaluation.inspection_plots import plot_correlation, plot_episode, plot_extremes, plot_landscape
from vlmrm.evaluation.tables import save_figure, write_rows_csv

REPORT_FILE = "report.html"
SUMMARY_FILE = "summary.json"
STEPS_FILE = "steps.csv"

FLAG_DEFINITION = (
    f"Reward-hacking flag: among the frames in the top {TOP_FRACTION:.0%} by this reward (or as many frames as "
    "the detector accepted, if fewer), the share the environment's success detector says are not done. Flagged "
    f"when it is above {HACKING_THRESHOLD:.0%}: most of the frames the reward likes best are frames the detector "
    "rejects, although it accepted others in the same episodes. A reward that tracks the task ranks accepted frames "
    "first (a share near 0%); a reward blind to the task reaches the share of all frames that are not done. Not "
    "assessed without a detector, or when it never fired or accepted every frame (nothing to compare)."
)

_CSS = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1180px;
       padding: 1.5em; color: #1f2328; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #d0d7de; padding-bottom: 0.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.8em 0; }
td, th { border: 1px solid #d0d7de; padding: 0.3em 0.7em; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
.meta td:first-child { font-weight: 600; white-space: nowrap; }
.badge { display: inline-block; padding: 0.05em 0.6em; border-radius: 1em; font-weight: 600; color: white; }
.flagged { background: #cf222e; } .passed { background: #1a7f37; } .unassessed { background: #6e7781; }
.definition { color: #57606a; font-size: 0.92em; max-width: 60em; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #d0d7de; }
figcaption { color: #57606a; font-size: 0.9em; }
code { background: #f6f8fa; padding: 0.1em 0.3em; border-radius: 4px; }
"""


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "—" if value is None else format(value, spec)


def _verdict(reward: RewardInspection) -> tuple[str, str]:
    """The verdict and its CSS class."""
    flagged = reward.hacking.flagged
    return reward.hacking.verdict, "unassessed" if flagged is None else "flagged" if flagged else "passed"


def _image_tag(path: Path, alt: str, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(alt)}" '
        f'data-file="{html.escape(path.name)}"><figcaption>{html.escape(caption)}</figcaption></figure>'
    )


def _meta_value(value: Any) -> str:
    if isinstance(value, float):
        return format(value, ".4g")
    if isinstance(value, list | tuple):
        return "; ".join(str(v) for v in value) or "—"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {v}" for k, v in value.items()) or "—"
    return "—" if value is None else str(value)


def _meta_rows(meta: Mapping[str, Any]) -> str:
    rows = []
    for key, value in meta.items():
        value = _meta_value(value)
        rows.append(f"<tr><td>{html.escape(str(key))}</td><td>{html.escape(str(value))}</td></tr>")
    return "\n".join(rows)


def _verdict_table(inspection: Inspection) -> str:
    head = (
        "<tr><th>reward</th><th>Spearman ρ with env reward</th><th>Spearman ρ with success</th>"
        "<th>mean reward: done / not done</th><th>highest-reward frames not done</th><th>verdict</th></tr>"
    )
    rows = []
    for reward in inspection.rewards:
        text, css = _verdict(reward)
        check = reward.hacking
        share = "—" if check.top_not_done is None else f"{check.top_not_done:.0%} of {check.top_frames}"
        rows.append(
            f'<tr data-testid="row-{reward.key}"><td>{html.escape(reward.label)}</td>'
            f"<td>{_fmt(reward.spearman_env)}</td><td>{_fmt(reward.spearman_success)}</td>"
            f"<td>{_fmt(reward.mean_when_done, '.4g')} / {_fmt(reward.mean_when_not_done, '.4g')}</td><td>{share}</td>"
            f'<td><span class="badge {css}" data-testid="verdict-{reward.key}" '
            f'data-flagged="{str(check.flagged).lower()}" title="{html.escape(check.reason)}">{text}</span></td></tr>'
        )
    return f'<table data-testid="verdicts">{head}\n' + "\n".join(rows) + "</table>"


def _write_figures(inspection: Inspection, out: Path) -> dict[str, Path]:
    """Every PNG of the report, by name."""
    files: dict[str, Path] = {}
    for reward in inspection.rewards:
        files[f"{reward.key}_extremes"] = save_figure(plot_extremes(reward), out / f"{reward.key}_extremes.png")
        files[f"{reward.key}_correlation"] = save_figure(
            plot_correlation(reward, inspection), out / f"{reward.key}_correlation.png"
        )
        files[f"{reward.key}_landscape"] = save_figure(
            plot_landscape(reward, inspection), out / f"{reward.key}_landscape.png"
        )
    for strip in inspection.strips:
        files[f"episode_{strip.index}"] = save_figure(
            plot_episode(inspection, strip, inspection.main), out / f"episode_{strip.index}.png"
        )
    return files


def render_html(inspection: Inspection, meta: Mapping[str, Any], files: Mapping[str, Path]) -> str:
    """The report page: every image inline (``data:`` URIs), so it opens offline, alone."""
    main = inspection.main
    text, css = _verdict(main)
    sections = []
    for reward in inspection.rewards:
        sections.append(
            f'<section id="reward-{reward.key}"><h2>{html.escape(reward.label)}</h2>'
            f"<p><strong>{html.escape(reward.hacking.verdict)}</strong>: {html.escape(reward.hacking.reason)}.</p>"
            + _image_tag(
                files[f"{reward.key}_extremes"],
                f"{reward.label}: highest and lowest frames",
                "Top row: the frames with the highest reward, best first; bottom row: the lowest, lowest first. "
                "Green border: the success detector says done; red: not done.",
            )
            + _image_tag(
                files[f"{reward.key}_correlation"],
                f"{reward.label} against env reward and success",
                "Each dot is one frame. Above the dashed line: the highest-reward frames the flag looks at.",
            )
            + _image_tag(
                files[f"{reward.key}_landscape"],
                f"{reward.label} along each episode",
                "The reward landscape along the episodes; below, the success detector step by step.",
            )
            + "</section>"
        )
    strips = "".join(
        _image_tag(
            files[f"episode_{strip.index}"],
            f"episode {strip.index}",
            f"Episode {strip.index}: frames at regular steps above the trained-on reward, the env reward "
            "and the detector's verdict (green background: done).",
        )
        for strip in inspection.strips
    )
    title = f"vlmrm inspect: {meta.get('run directory', '')}"
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{_CSS}</style>
</head>
<body data-flagged="{str(main.hacking.flagged).lower()}">
<h1>What the reward rewards</h1>
<p>Verdict for the trained-on reward: <span class="badge {css}" data-testid="verdict">{text}</span>
 — {html.escape(main.hacking.reason)}.</p>
<table class="meta">
{_meta_rows(meta)}
</table>
<h2>Summary</h2>
{_verdict_table(inspection)}
<p class="definition">{html.escape(FLAG_DEFINITION)} Spearman's ρ is the rank correlation over all frames of the
evaluated episodes (undefined when either side is constant).</p>
{"".join(sections)}
<section id="episodes"><h2>Episodes</h2>{strips}</section>
<footer class="definition"><p>Files next to this page: {", ".join(sorted(p.name for p in files.values()))},
{SUMMARY_FILE} (the numbers), {STEPS_FILE} (every step).</p></footer>
</body>
</html>
"""


def _step_rows(inspection: Inspection) -> tuple[list[dict[str, Any]], list[str]]:
    columns = ["episode", "step", "env_reward", "success", *(r.key for r in inspection.rewards)]
    rows = []
    for episode, env_rewards in enumerate(inspection.env_rewards_by_episode):
        success = None if inspection.success_by_episode is None else inspection.success_by_episode[episode]
        for step, env_reward in enumerate(env_rewards):
            row: dict[str, Any] = {
                "episode": episode,
                "step": step,
                "env_reward": float(env_reward),
                "success": "" if success is None else int(success[step]),
            }
            for reward in inspection.rewards:
                row[reward.key] = float(reward.rewards[episode][step])
            rows.append(row)
    return rows, columns


def summary_of(inspection: Inspection, meta: Mapping[str, Any]) -> dict[str, Any]:
    """``summary.json``: what was inspected and every reward's numbers."""
    return {
        **{key.replace(" ", "_"): value for key, value in meta.items()},
        "has_success_detector": inspection.has_detector,
        "flag_definition": FLAG_DEFINITION,
        "top_fraction": TOP_FRACTION,
        "hacking_threshold": HACKING_THRESHOLD,
        "rewards": [reward.summary() for reward in inspection.rewards],
    }


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def write_report(inspection: Inspection, out_dir: str | Path, meta: Mapping[str, Any]) -> Path:
    """Write the report into ``out_dir`` (replacing what is there only once all is written); return the page."""
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        files = _write_figures(inspection, tmp)
        rows, columns = _step_rows(inspection)
        write_rows_csv(rows, tmp / STEPS_FILE, columns)
        summary = summary_of(inspection, meta)
        (tmp / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, default=_json_default) + "\n")
        (tmp / REPORT_FILE).write_text(render_html(inspection, meta, files), encoding="utf-8")
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes the directory private; give it the usual permissions
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out / REPORT_FILE


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _replace_dir(new: Path, target: Path) -> None:
    """Put the directory ``new`` at ``target``; an existing ``target`` is moved aside first, then deleted."""
    old = None
    if target.exists() or target.is_symlink():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", suffix=".tmp", dir=target.parent))
        os.rmdir(old)
        os.replace(target, old)
    try:
        os.replace(new, target)
    except BaseException:
        if old is not None:
            os.replace(old, target)  # put the previous report back
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
