"""The training configuration: a YAML file validated with pydantic.

Every section rejects unknown fields, so a misspelled key is an error that names it (and the
closest valid name) instead of a silently ignored setting.
"""

from __future__ import annotations

import difflib
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from vlmrm.errors import ConfigError

DEFAULT_MODEL = "openai/clip-vit-base-patch32"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class EnvConfig(_Section):
    """Which environment to train in and how it renders."""

    name: str = Field(description="Environment name: cartpole, mountaincar, humanoid.")
    episode_length: int | None = Field(
        default=None, gt=0, description="Steps per episode (time-limit truncation); default per env."
    )
    render_size: int | None = Field(
        default=None, gt=0, description="Square frame size in pixels; default: the model's input size."
    )
    options: dict[str, Any] = Field(default_factory=dict, description="Environment-specific options.")


class RewardConfig(_Section):
    """The vision-language reward model."""

    model: str = Field(default=DEFAULT_MODEL, description="Hub id, local directory, open_clip:ARCH/TAG, tiny-random.")
    target_prompts: list[str] = Field(min_length=1, description="Sentences describing the goal.")
    baseline_prompts: list[str] = Field(default_factory=list, description="Sentences describing the scene in general.")
    alpha: float = Field(default=0.0, ge=0.0, le=1.0, description="Goal-baseline regularisation strength.")
    batch_size: int = Field(default=64, gt=0, description="Largest number of frames embedded at once.")
    dtype: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    device: str = Field(default="auto", description="auto, cpu, cuda or cuda:N.")
    episode_end_batching: bool | None = Field(
        default=None,
        description="Score whole episodes at once and relabel the replay buffer; default: on for SAC/DQN.",
    )
    overlap_scoring: bool | None = Field(
        default=None,
        description=(
            "Episode-end batching: score finished episodes in a background thread while the envs step; "
            "default: on when the model runs on a GPU or Ray workers, off on a CPU (both would share its cores)."
        ),
    )
    backend: Literal["local", "ray"] = Field(
        default="local", description="Where frames are scored: in the training process, or by a pool of Ray actors."
    )
    num_workers: int | None = Field(
        default=None, gt=0, description="Ray backend: reward-model actors; default one per GPU, else one CPU actor."
    )
    cpus_per_worker: int | None = Field(
        default=None, gt=0, description="Ray backend: CPUs (torch threads) per actor; default 1 on GPUs, else a share."
    )
    ray_address: str | None = Field(
        default=None, description="Ray backend: cluster to join; default $RAY_ADDRESS, else a new local cluster."
    )

    @field_validator("target_prompts", "baseline_prompts")
    @classmethod
    def _prompts_not_empty(cls, prompts: list[str]) -> list[str]:
        for i, prompt in enumerate(prompts):
            if not prompt.strip():
                raise ValueError(f"prompt {i} is empty; write a sentence that describes the scene")
        return prompts

    @field_validator("model")
    @classmethod
    def _model_named(cls, model: str) -> str:
        if not model.strip():
            raise ValueError("the model is empty; name one, e.g. openai/clip-vit-base-patch32 or tiny-random")
        return model

    @field_validator("device")
    @classmethod
    def _known_device(cls, device: str) -> str:
        if device in ("auto", "cpu", "cuda", "mps") or (device.startswith("cuda:") and device[5:].isdigit()):
            return device
        raise ValueError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")

    @model_validator(mode="after")
    def _baseline_for_alpha(self) -> RewardConfig:
        if self.alpha > 0 and not self.baseline_prompts:
            raise ValueError(
                f"alpha={self.alpha} needs baseline_prompts (a sentence describing the scene in general); "
                "add reward.baseline_prompts or set reward.alpha to 0"
            )
        return self


class RLConfig(_Section):
    """The RL algorithm (stable-baselines3) and its budget."""

    algorithm: Literal["sac", "dqn", "ppo"] = Field(description="sac (continuous), dqn (discrete), ppo (either).")
    total_steps: int = Field(gt=0, description="Environment steps summed over all envs.")
    n_envs: int = Field(default=1, gt=0)
    seed: int = Field(default=0, ge=0, le=2**32 - 1, description="Seed of the envs, the algorithm and torch.")
    policy: str = "MlpPolicy"
    hyperparameters: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments for the stable-baselines3 algorithm."
    )
    vec_env: Literal["dummy", "subproc"] = Field(default="dummy", description="Run envs in-process or in workers.")


class LoggingConfig(_Section):
    """Where the run is written and how often."""

    run_dir: str | None = Field(default=None, description="Default: runs/<env>-<date>-<time>.")
    checkpoint_freq: int = Field(default=10_000, ge=0, description="Steps between checkpoints; 0: only at the end.")
    video_freq: int = Field(default=10_000, ge=0, description="Steps between policy videos; 0: only at the end.")
    eval_freq: int = Field(default=10_000, ge=0, description="Steps between evaluations; 0: only at the end.")
    eval_episodes: int = Field(default=3, gt=0)
    keep_checkpoints: int = Field(default=3, gt=0, description="How many recent checkpoints to keep.")
    save_replay_buffer: bool | None = Field(default=None, description="Default: on for off-policy algorithms.")
    progress_bar: bool = True

    @field_validator("run_dir")
    @classmethod
    def _run_dir_named(cls, run_dir: str | None) -> str | None:
        if run_dir is not None and not run_dir.strip():
            raise ValueError("the run directory is empty; give a path or leave it out (default runs/<env>-<date>)")
        return run_dir


class TrainConfig(_Section):
    """A whole training run."""

    env: EnvConfig
    reward: RewardConfig
    rl: RLConfig
    logging: LoggingConfig = Field(default_factory=LoggingConfig)


def _section_fields(model: type[BaseModel], location: tuple[Any, ...]) -> list[str]:
    """The valid field names at ``location`` (the parent of an offending field)."""
    current: Any = model
    for part in location:
        if isinstance(part, str) and isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(part)
            if field is None:
                return []
            current = field.annotation
        else:
            return []
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def format_validation_error(
    error: ValidationError, model: type[BaseModel] = TrainConfig, source: str = "config"
) -> str:
    """Turn a pydantic error into lines a user can act on, one per problem."""
    lines = [f"Invalid {source}:"]
    for item in error.errors():
        location = tuple(item["loc"])
        dotted = ".".join(str(p) for p in location) or "(top level)"
        if item["type"] == "extra_forbidden":
            valid = _section_fields(model, location[:-1])
            close = difflib.get_close_matches(str(location[-1]), valid, n=1)
            hint = f" Did you mean {'.'.join([*map(str, location[:-1]), close[0]])!r}?" if close else ""
            lines.append(f"  {dotted}: unknown field.{hint} Valid fields here: {', '.join(valid)}.")
        elif item["type"] == "missing":
            lines.append(f"  {dotted}: required field is missing.")
        else:
            message = item["msg"].removeprefix("Value error, ")
            value = item.get("input")
            hint = ""
            if item["type"] == "int_parsing" and isinstance(value, str) and _looks_like_float(value):
                hint = f" YAML reads {value} as text; write the number in full, e.g. {int(float(value))}."
            lines.append(f"  {dotted}: {message} (got {value!r}).{hint}")
    return "\n".join(lines)


def _looks_like_float(text: str) -> bool:
    try:
        return float(text).is_integer()
    except ValueError:
        return False


def _closest(name: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(name, valid, n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def _env_problems(env: EnvConfig) -> list[str]:
    from pydantic import TypeAdapter

    from vlmrm.envs.registry import get_env_spec

    try:
        spec = get_env_spec(env.name)
    except ConfigError as exc:
        return [f"env.name: {exc}"]
    valid = spec.option_names()
    try:
        hints = typing.get_type_hints(spec.factory)
    except Exception:  # unresolvable annotations: check names only
        hints = {}
    problems = []
    for key, value in env.options.items():
        if key not in valid:
            problems.append(
                f"env.options.{key}: unknown option for environment {spec.name!r}.{_closest(key, valid)} "
                f"Valid options: {', '.join(valid) or '(none)'}."
            )
        elif key in hints:
            try:
                adapter = TypeAdapter(hints[key])
                # Strict: "no" is not a bool. YAML has no tuples, so containers are checked leniently.
                adapter.validate_python(value, strict=not isinstance(value, list | dict))
            except ValidationError as exc:
                message = exc.errors()[0]["msg"]
                problems.append(f"env.options.{key}: {message} (got {value!r}).")
            except Exception:  # a type pydantic cannot check: the env will
                pass
    return problems


def _rl_problems(config: TrainConfig) -> list[str]:
    rl = config.rl
    problems = []
    if config.reward.episode_end_batching and rl.algorithm == "ppo":
        problems.append(
            "reward.episode_end_batching: needs an off-policy algorithm (sac, dqn), not ppo; set it to false."
        )
    batching = config.reward.episode_end_batching
    batching_off = batching is False or (batching is None and rl.algorithm == "ppo")
    if config.reward.overlap_scoring and batching_off:
        problems.append(
            "reward.overlap_scoring: needs episode-end batching (an off-policy algorithm, sac or dqn, with "
            "reward.episode_end_batching not false); set it to false."
        )
    if not rl.hyperparameters and rl.policy == "MlpPolicy":
        return problems  # nothing that needs stable-baselines3 to check
    from vlmrm.rl.algorithms import ALGORITHMS, check_hyperparameters

    cls = ALGORITHMS[rl.algorithm]
    policies = sorted(getattr(cls, "policy_aliases", {}))
    if policies and rl.policy not in policies:
        problems.append(
            f"rl.policy: {cls.__name__} has no policy {rl.policy!r}.{_closest(rl.policy, policies)} "
            f"Valid: {', '.join(policies)}."
        )
    try:
        check_hyperparameters(rl.algorithm, rl.hyperparameters)
    except ConfigError as exc:
        problems.append(str(exc))
    return problems


def config_problems(config: TrainConfig) -> list[str]:
    """What field types and ranges cannot say: env names and options, policies, algorithm arguments."""
    return _env_problems(config.env) + _rl_problems(config)


def check_config(config: TrainConfig, source: str = "config") -> TrainConfig:
    """Raise :class:`ConfigError` listing every problem :func:`config_problems` finds."""
    problems = config_problems(config)
    if problems:
        raise ConfigError("\n".join([f"Invalid {source}:", *(f"  {problem}" for problem in problems)]))
    return config


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``a.b.c=value``; the value is read as YAML (numbers, booleans, lists)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. --set rl.total_steps=2000.")
    key, raw = text.split("=", 1)
    path = [part for part in key.strip().split(".")]
    if not all(path):
        raise ConfigError(f"--set {text!r}: the key {key!r} is not a dotted path like reward.alpha.")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {text!r}: the value is not valid YAML ({exc}).") from exc
    return path, value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {text!r}: {part!r} is a value, not a section.")
            node = child
        node[path[-1]] = value
    return data


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file {str(path)!r} does not exist. Example configs are in configs/.")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"Config file {str(path)!r} is not valid YAML: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"Config file {str(path)!r} must be a mapping of sections (env, reward, rl, logging).")
    return data


def config_from_dict(data: dict[str, Any], source: str = "config") -> TrainConfig:
    try:
        config = TrainConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, TrainConfig, source)) from None
    return check_config(config, source)


def load_config(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """Read, override and validate a training config."""
    data = apply_overrides(read_yaml(path), overrides or [])
    return config_from_dict(data, source=f"config {str(path)!r}")


def dump_config(config: TrainConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
