"""The experiment file: which configs, which grid, which seeds, what the paper published.

An experiment file names one or more training configs and the cells to run them in::

    name: cartpole-alpha                  # default: the file's name
    description: CartPole by alpha        # a line for the report
    configs: [../../configs/cartpole.yaml]  # relative to this file
    overrides: {rl.total_steps: 50000}    # every trial
    grid:                                 # the cross product of these values ...
      reward.alpha: [0.0, 0.5, 1.0]
    cells:                                # ... times these explicit cells (each a set of values)
      - {name: plain look, set: {env.options.textured: false}}
    seeds: 3                              # or a list: [0, 1, 2]
    resources: {cpu: 1, gpu: 0.25}        # what one trial asks of the Ray cluster
    paper:                                # the paper's numbers, by cell name (for the report)
      source: Rocamonde et al., ICLR 2024, table 2
      success_rate: {alpha=0.0: 1.0}

Every key (``grid``, ``cells[].set``, ``overrides``) is a dotted config field, checked here
against :class:`vlmrm.config.TrainConfig` and the envs' options, so a typo is an error that names
the closest field before anything runs. :mod:`vlmrm.experiments.grid` turns the file into trials.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from vlmrm.config import TrainConfig, read_yaml
from vlmrm.envs.registry import get_env_spec
from vlmrm.errors import ConfigError, VLMRMError
from vlmrm.validation import closest, problem_lines


class ExperimentError(ConfigError):
    """An experiment file, its configs or a sweep's options are invalid (one line: what and how to fix it)."""


def one_line(exc: BaseException) -> str:
    """An error as one line: a vlmrm error's message (a heading's problems joined), else ``Type: first line``."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if isinstance(exc, VLMRMError):
        if len(lines) > 1 and lines[0].endswith(":"):
            return f"{lines[0]} " + "; ".join(lines[1:])
        return " ".join(lines) or type(exc).__name__
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Resources(_Strict):
    """What one trial asks of the Ray cluster (``tune.with_resources``)."""

    cpu: float = Field(default=1.0, gt=0, strict=False, description="CPUs per trial (env workers, torch threads).")
    gpu: float = Field(default=0.0, ge=0, strict=False, description="GPUs per trial; fractions share one GPU.")


class CellFile(_Strict):
    """One explicit cell: config fields set together."""

    name: str | None = Field(default=None, min_length=1, description="The cell's name in the report.")
    set: dict[str, Any] = Field(min_length=1, description="Dotted config fields and their values.")


class PaperFile(_Strict):
    """The paper's published numbers for some cells."""

    source: str = Field(min_length=1, description="Where the numbers come from (table, figure).")
    success_rate: dict[str, float] = Field(
        default_factory=dict, strict=False, description="Success rate in [0, 1] by cell name."
    )

    @field_validator("success_rate")
    @classmethod
    def _fractions(cls, values: dict[str, float]) -> dict[str, float]:
        for cell, value in values.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"the success rate of {cell!r} is {value}; write a fraction in [0, 1] (64 % is 0.64)")
        return values


PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
"""What an experiment's ``name`` may be: one path component that does not start with a dot."""


class ExperimentFile(_Strict):
    """The experiment file as written."""

    name: str | None = Field(default=None, min_length=1, description="The sweep's name: sweeps/<name>.")
    description: str = ""
    configs: list[str] = Field(min_length=1, description="Training configs, relative to the experiment file.")
    overrides: dict[str, Any] = Field(default_factory=dict, description="Fields set in every trial.")
    grid: dict[str, list[Any]] | None = Field(default=None, description="Fields and their values: a cross product.")
    cells: list[CellFile] | None = Field(default=None, description="Explicit cells (times the grid).")
    seeds: int | list[int] = Field(default=1, description="How many seeds (0, 1, ...), or the seeds themselves.")
    resources: Resources = Field(default_factory=Resources)
    paper: PaperFile | None = None

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name: str | None) -> str | None:
        # The name becomes the directory sweeps/<name>: a path here would write the sweep elsewhere.
        if name is not None and not PLAIN_NAME.fullmatch(name):
            raise ValueError(
                f"{name!r} is not a plain name; the sweep's name is a name, not a path (it names the directory "
                "sweeps/<name>): use letters, digits, '.', '_' and '-', e.g. name: cartpole-alpha"
            )
        return name

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, seeds: int | list[int]) -> int | list[int]:
        if isinstance(seeds, int) and seeds < 1:
            raise ValueError("give at least one seed (seeds: 3 runs seeds 0, 1, 2)")
        if isinstance(seeds, list):
            if not seeds:
                raise ValueError("the list of seeds is empty; give at least one (seeds: [0])")
            if any(seed < 0 for seed in seeds) or len(set(seeds)) != len(seeds):
                raise ValueError(f"seeds must be distinct integers >= 0 (got {seeds})")
        return seeds


@dataclass(frozen=True)
class Experiment:
    """A checked experiment file: config paths resolved, every key a config field."""

    path: Path
    name: str
    description: str
    configs: list[Path]
    env_names: list[str]
    """The envs the configs train in."""
    overrides: dict[str, Any]
    grid: dict[str, list[Any]]
    cells: list[CellFile]
    seeds: list[int]
    resources: Resources
    paper: PaperFile | None
    text: str = field(repr=False, default="")
    """The file as written (the sweep directory keeps a copy)."""


# -- config keys ---------------------------------------------------------------------------------------------


def _section_names(model: type[BaseModel], prefix: str) -> list[str]:
    return [f"{prefix}{name}" for name in model.model_fields]


def _is_model(annotation: Any) -> TypeGuard[type[BaseModel]]:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _check_option_key(parts: list[str], env_names: list[str], key: str, where: str) -> None:
    """``env.options.<parts>``: an option of one of the envs (and a field of a grouped option like camera)."""
    specs = [get_env_spec(name) for name in env_names]
    models: list[type[BaseModel]] = [spec.options for spec in specs]
    prefix = "env.options."
    for depth, part in enumerate(parts):
        found = [m.model_fields[part] for m in models if part in m.model_fields]
        if not found:
            valid = sorted({f"{prefix}{name}" for m in models for name in m.model_fields})
            envs = " or ".join(sorted(set(env_names)))
            raise ExperimentError(
                f"{where}: {key!r} is not an option of {envs}.{closest(prefix + part, valid)} "
                f"Options: {', '.join(valid)}."
            )
        models = [f.annotation for f in found if _is_model(f.annotation)]
        prefix += f"{part}."
        if not models and depth + 1 < len(parts):
            raise ExperimentError(f"{where}: {key!r}: {prefix[:-1]!r} is a value, not a group of options.")


def check_key(key: str, env_names: list[str], where: str) -> None:
    """Raise :class:`ExperimentError` unless ``key`` is a dotted config field (closest name suggested).

    ``env.options.*`` is checked against the options of ``env_names``; ``rl.hyperparameters.*``
    is left to the config's own rules (the algorithm's arguments).
    """
    parts = key.split(".")
    if not all(parts):
        raise ExperimentError(f"{where}: {key!r} is not a dotted config field like reward.alpha.")
    model: type[BaseModel] = TrainConfig
    prefix = ""
    for index, part in enumerate(parts):
        if part not in model.model_fields:
            valid = _section_names(model, prefix)
            raise ExperimentError(
                f"{where}: {key!r} is not a config field.{closest(prefix + part, valid)} "
                f"Fields here: {', '.join(valid)}."
            )
        annotation = model.model_fields[part].annotation
        rest = parts[index + 1 :]
        if _is_model(annotation):
            model, prefix = annotation, f"{prefix}{part}."
            continue
        if rest and f"{prefix}{part}" == "env.options":
            _check_option_key(rest, env_names, key, where)
        elif rest and f"{prefix}{part}" != "rl.hyperparameters":
            raise ExperimentError(f"{where}: {key!r}: {prefix + part!r} is a value, not a section.")
        return


# -- loading ------------------------------------------------------------------------------------------------


def _config_path(text: str, base: Path, source: str) -> Path:
    path = Path(text)
    path = path if path.is_absolute() else base / path
    if path.is_file():
        return path.resolve()
    siblings = sorted(p.name for p in path.parent.glob("*.yaml")) if path.parent.is_dir() else []
    close = difflib.get_close_matches(path.name, siblings, n=1)
    hint = f" Did you mean {str(path.parent / close[0])!r}?" if close else ""
    raise ExperimentError(
        f"{source}: config {text!r} does not exist ({str(path)!r}; paths are relative to the experiment file).{hint}"
    )


def config_env_name(config: Path, source: str) -> str:
    """The env a config file trains in (its ``env.name``)."""
    data = read_yaml(config)
    env = data.get("env")
    name = env.get("name") if isinstance(env, dict) else None
    if not isinstance(name, str):
        raise ExperimentError(f"{source}: config {str(config)!r} names no environment (env.name).")
    return get_env_spec(name).name


def _seed_list(seeds: int | list[int]) -> list[int]:
    return list(range(seeds)) if isinstance(seeds, int) else list(seeds)


def read_experiment_file(path: str | Path) -> tuple[ExperimentFile, str]:
    """The experiment file's contents, validated as data; :class:`ExperimentError` in one line."""
    path = Path(path)
    source = str(path)
    if path.is_dir() or not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise ExperimentError(
            f"Experiment file {source!r} {what}; give a YAML file, e.g. experiments/paper/cartpole-alpha.yaml."
        )
    try:
        data = read_yaml(path)
    except ConfigError as exc:
        raise ExperimentError(str(exc).replace("Config file", "Experiment file")) from None
    try:
        parsed = ExperimentFile.model_validate(data)
    except ValidationError as exc:
        lines = problem_lines(exc, ExperimentFile)
        raise ExperimentError(f"{source}: " + "; ".join(lines)) from None
    return parsed, path.read_text()


def load_experiment(path: str | Path) -> Experiment:
    """Read and check an experiment file: configs exist, keys are config fields, the grid has values."""
    path = Path(path)
    source = str(path)
    parsed, text = read_experiment_file(path)
    configs = [_config_path(entry, path.parent, source) for entry in parsed.configs]
    if len(set(configs)) != len(configs):
        raise ExperimentError(f"{source}: a config is listed twice in configs; list each once.")
    env_names = sorted({config_env_name(config, source) for config in configs})
    for key in parsed.overrides:
        check_key(key, env_names, f"{source}: overrides")
    if parsed.grid is not None:
        if not parsed.grid:
            raise ExperimentError(
                f"{source}: the grid is empty; give a field and its values (grid: {{reward.alpha: [0.0, 0.5]}}) "
                "or leave grid out to run the configs as they are."
            )
        for key, values in parsed.grid.items():
            check_key(key, env_names, f"{source}: grid key")
            if not values:
                raise ExperimentError(f"{source}: grid key {key!r} has no values; list at least one.")
    if parsed.cells is not None and not parsed.cells:
        raise ExperimentError(f"{source}: cells is empty; list at least one cell or leave cells out.")
    for index, cell in enumerate(parsed.cells or []):
        for key in cell.set:
            check_key(key, env_names, f"{source}: cells[{index}]")
            if key in (parsed.grid or {}):
                raise ExperimentError(
                    f"{source}: cells[{index}] sets {key!r}, which the grid sets too; set it in one place."
                )
    return Experiment(
        path=path,
        name=parsed.name or path.stem,
        description=parsed.description,
        configs=configs,
        env_names=env_names,
        overrides=dict(parsed.overrides),
        grid=dict(parsed.grid or {}),
        cells=list(parsed.cells or []),
        seeds=_seed_list(parsed.seeds),
        resources=parsed.resources,
        paper=parsed.paper,
        text=text,
    )
