"""From an experiment to trials: cells (configs x explicit cells x grid) times seeds, each a full config.

A trial's config is built in a fixed order, later steps winning:

1. the config file,
2. the experiment's ``overrides``,
3. the cell's values (an explicit cell's ``set``, then the grid's values),
4. ``rl.seed``,
5. the command line's ``--set`` (every trial: ``--set reward.model=tiny-random`` makes any
   experiment a smoke run),
6. ``logging.progress_bar: false`` (trials run side by side; their logs go to files),
7. W&B tracking, where a trial turns it on (``logging.wandb.enabled``), groups the trial under the
   experiment's name and tags it with the sweep and the cell.

Every trial's config is validated here (:func:`vlmrm.config.config_from_dict`), so a sweep that
would fail on a bad value fails before anything runs or is written.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlmrm.config import config_from_dict, parse_override, read_yaml
from vlmrm.errors import ConfigError
from vlmrm.experiments.schema import CellFile, Experiment, ExperimentError, check_key, one_line
from vlmrm.validation import closest


@dataclass(frozen=True)
class Cell:
    """One point of the grid: a config and the fields set on it."""

    label: str
    """The cell's name in reports: an explicit cell's name, else ``field=value`` pairs (and the config's name)."""
    slug: str
    """``label`` made safe for a directory name."""
    config: Path
    values: dict[str, Any]
    paper_success_rate: float | None = None


@dataclass(frozen=True)
class Trial:
    """One run of one cell with one seed: a vlmrm run directory ``trials/<name>`` of the sweep."""

    name: str
    cell: str
    seed: int
    config: dict[str, Any]
    """The full config, as data (before validation and defaults)."""

    @property
    def total_steps(self) -> int:
        return int(self.config["rl"]["total_steps"])


@dataclass(frozen=True)
class Plan:
    """Everything a sweep runs, checked."""

    experiment: Experiment
    cells: list[Cell]
    trials: list[Trial]
    overrides: list[str]
    """The command line's ``--set`` values, as given."""
    cells_total: int
    """How many cells the experiment has (``cells`` may be the first few: ``--cells N``)."""


def format_value(value: Any) -> str:
    """A value as a label shows it: YAML-like scalars, compact JSON for lists and mappings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return str(value)


def _pairs(values: dict[str, Any]) -> str:
    leaves = [key.rsplit(".", 1)[-1] for key in values]
    names = [leaf if leaves.count(leaf) == 1 else key for key, leaf in zip(values, leaves, strict=True)]
    return ", ".join(f"{name}={format_value(value)}" for name, value in zip(names, values.values(), strict=True))


def slugify(label: str) -> str:
    """``"alpha=0.5, textured=true"`` -> ``"alpha-0.5_textured-true"``."""
    text = label.replace(", ", "_").replace("=", "-")
    text = re.sub(r"[^A-Za-z0-9._-]+", "-", text)
    return re.sub(r"-{2,}", "-", text).strip("-._") or "cell"


def expand_cells(experiment: Experiment) -> list[Cell]:
    """configs x explicit cells x grid values, in the file's order."""
    explicit: list[CellFile | None] = [*experiment.cells] or [None]
    keys = list(experiment.grid)
    combos = list(itertools.product(*(experiment.grid[key] for key in keys))) if keys else [()]
    paper = experiment.paper.success_rate if experiment.paper else {}
    cells: list[Cell] = []
    slugs: set[str] = set()
    for config, cell, combo in itertools.product(experiment.configs, explicit, combos):
        grid_values = dict(zip(keys, combo, strict=True))
        parts = [config.stem] if len(experiment.configs) > 1 else []
        if cell is not None:
            parts.append(cell.name or _pairs(cell.set))
        if grid_values:
            parts.append(_pairs(grid_values))
        label = ", ".join(parts) or config.stem
        slug = base = slugify(label)
        suffix = 2
        while slug in slugs:
            slug, suffix = f"{base}-{suffix}", suffix + 1
        slugs.add(slug)
        values = {**(cell.set if cell is not None else {}), **grid_values}
        cells.append(Cell(label, slug, config, values, paper.get(label)))
    labels = [cell.label for cell in cells]
    if len(set(labels)) != len(labels):
        duplicate = next(label for label in labels if labels.count(label) > 1)
        raise ExperimentError(f"{experiment.path}: two cells are both named {duplicate!r}; give each a distinct name.")
    for name in paper:
        if name not in labels:
            raise ExperimentError(
                f"{experiment.path}: paper.success_rate names a cell {name!r} the experiment does not have."
                f"{closest(name, labels)} Cells: {', '.join(labels)}."
            )
    return cells


def set_dotted(data: dict[str, Any], key: str, value: Any, where: str) -> None:
    """``data["a"]["b"]["c"] = value`` for ``key="a.b.c"`` (sections created as needed)."""
    *sections, last = key.split(".")
    node = data
    for part in sections:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ExperimentError(
                f"{where}: cannot set {key!r}: {part!r} is a value ({format_value(child)}), not a section."
            )
        node = child
    node[last] = value


def parse_overrides(texts: list[str], env_names: list[str]) -> list[tuple[str, Any]]:
    """``--set KEY=VALUE`` texts as (key, value); keys checked like the experiment's."""
    parsed = []
    for text in texts:
        path, value = parse_override(text)
        key = ".".join(path)
        check_key(key, env_names, f"--set {text!r}")
        if key == "rl.seed":
            raise ExperimentError(f"--set {text!r}: the sweep sets rl.seed from the seeds; use --seeds N instead.")
        parsed.append((key, value))
    return parsed


def trial_config(cell: Cell, seed: int, experiment: Experiment, overrides: list[tuple[str, Any]]) -> dict[str, Any]:
    """The trial's config as data, built in the order of the module docstring."""
    data = read_yaml(cell.config)
    source = str(experiment.path)
    for key, value in experiment.overrides.items():
        set_dotted(data, key, value, f"{source}: overrides")
    for key, value in cell.values.items():
        set_dotted(data, key, value, f"{source}: cell {cell.label!r}")
    set_dotted(data, "rl.seed", seed, source)
    for key, value in overrides:
        set_dotted(data, key, value, "--set")
    set_dotted(data, "logging.progress_bar", False, source)
    wandb = data.setdefault("logging", {}).setdefault("wandb", {})
    if isinstance(wandb, dict):
        wandb.setdefault("group", experiment.name)
        wandb["tags"] = [*wandb.get("tags", []), f"sweep:{experiment.name}", f"cell:{cell.label}"]
    return data


def plan_trials(
    experiment: Experiment,
    overrides: list[str] | None = None,
    seeds: int | None = None,
    cells: int | None = None,
) -> Plan:
    """The cells and trials of ``experiment``; ``seeds``/``cells``: only the first N of each.

    Raises :class:`ExperimentError` (one line) for a bad ``--set``, a limit below 1, or a trial
    whose config is invalid.
    """
    texts = list(overrides or [])
    parsed = parse_overrides(texts, experiment.env_names)
    for option, value in (("--seeds", seeds), ("--cells", cells)):
        if value is not None and value < 1:
            raise ExperimentError(f"{option} {value}: give a number >= 1.")
    all_cells = expand_cells(experiment)
    chosen = all_cells[:cells] if cells else all_cells
    seed_list = experiment.seeds[:seeds] if seeds else experiment.seeds
    trials = []
    for cell in chosen:
        for seed in seed_list:
            name = f"{cell.slug}-seed{seed}"
            data = trial_config(cell, seed, experiment, parsed)
            try:
                config_from_dict(copy.deepcopy(data), source=f"config of trial {name}")
            except ConfigError as exc:
                raise ExperimentError(f"{experiment.path}: {one_line(exc)}") from None
            trials.append(Trial(name=name, cell=cell.label, seed=seed, config=data))
    return Plan(experiment, chosen, trials, texts, len(all_cells))
