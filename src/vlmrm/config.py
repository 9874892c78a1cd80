"""The training configuration: one YAML file, validated once and resolved once.

Three stages, all here:

1. **Types and ranges** (pydantic): every section rejects unknown fields, so a misspelled key is
   an error that names it and the closest valid name; integers are strict (``true`` is not 1).
2. **Rules across fields** (:func:`config_problems`): env options, which algorithm fits the env's
   actions, episode-end batching and overlap, hyperparameters, the Ray section. Every rule of a
   config lives in this module; nothing downstream re-checks it.
3. **Resolution** (:func:`resolve`): every ``None`` and ``auto`` is filled once (episode length,
   render size, device, dtype, batching, overlap, replay-buffer saving, ``learning_starts``, the
   run directory). The resolved config is what a run's ``config.yaml`` holds and what every other
   module reads.

Whether ``--resume`` may change a field is a property of the field (``resume_safe``), listed by
:func:`resume_safe_fields`.

>>> config = config_from_dict({"env": {"name": "cartpole"}, "rl": {"algorithm": "dqn", "total_steps": 1000}})
>>> config.reward.target_prompts  # the env's default prompts
['pole vertically upright on top of the cart']
>>> resolved = resolve(config, RewardFacts(image_size=224, device="cpu", dtype="fp32"), run_dir="runs/x")
>>> resolved.env.episode_length, resolved.reward.episode_end_batching, resolved.rl.hyperparameters["learning_starts"]
(200, True, 200)
"""

from __future__ import annotations

import importlib
import inspect
import logging
import math
import re
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.config import JsonDict

from vlmrm.envs.registry import available_envs, get_env_spec, parse_options, vectorized_envs
from vlmrm.errors import ConfigError
from vlmrm.validation import closest, problem_lines

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "openai/clip-vit-base-patch32"

ALGORITHM_CLASSES: dict[str, str] = {
    "sac": "stable_baselines3:SAC",
    "dqn": "stable_baselines3:DQN",
    "ppo": "stable_baselines3:PPO",
}
"""The stable-baselines3 class of each algorithm name (imported when a rule needs its signature)."""
OFF_POLICY_ALGORITHMS = frozenset({"sac", "dqn"})
"""Algorithms with a replay buffer: episode-end batching and replay-buffer checkpoints apply to them."""
ACTION_KINDS: dict[str, frozenset[str]] = {
    "sac": frozenset({"continuous"}),
    "dqn": frozenset({"discrete"}),
    "ppo": frozenset({"discrete", "continuous"}),
}
CompileMode = Literal["none", "compile", "cuda-graphs"]
"""``reward.compile``: how the image tower's forward runs (see :mod:`vlmrm.reward.compiled`)."""
COMPILE_FAMILIES_EXCLUDED = ("vqa:", "video:")
"""Model spec prefixes whose rewards are no single image-tower forward: ``reward.compile`` does not apply."""


def compile_problem(mode: str, model: str, device: str, option: str = "reward.compile:") -> str | None:
    """Why ``reward.compile: mode`` cannot work with ``model`` on ``device`` (a one-line message that names the
    setting as ``option``), or None.

    ``device`` may be ``auto``: whether ``cuda-graphs`` has its GPU is then checked once the model is built.
    """
    if mode == "none":
        return None
    family = next((prefix for prefix in COMPILE_FAMILIES_EXCLUDED if model.strip().startswith(prefix)), None)
    if family is not None:
        return f"{option} {mode} compiles a CLIP-style image tower; {family} models have none. Set {option} none."
    if mode == "cuda-graphs" and device != "auto" and not device.startswith("cuda"):
        return (
            f"{option} cuda-graphs replays CUDA graphs and needs a CUDA device, not {device!r}; "
            f"use {option} compile (or none)."
        )
    return None


RESERVED_HYPERPARAMETERS = ("policy", "env", "seed", "tensorboard_log", "verbose", "device", "_init_setup_model")
"""Algorithm arguments vlmrm sets itself (from rl.policy, rl.seed, reward.device)."""

SAFE: JsonDict = {"resume_safe": True}
"""``json_schema_extra`` of the fields ``--resume --set`` may change (budgets, logging, how rewards are computed)."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, strict=True)


class EnvConfig(_Section):
    """Which environment to train in and how it renders."""

    name: str = Field(
        description=f"Environment name: {', '.join(available_envs())}, or gym:<id> for any Gymnasium id that "
        "renders rgb_array frames (then reward.target_prompts is required; docs/your-environment.md)."
    )
    episode_length: int | None = Field(
        default=None, gt=0, description="Steps per episode (time-limit truncation); default per env."
    )
    render_size: int | None = Field(
        default=None, gt=0, description="Square frame size in pixels; default: the model's input size."
    )
    options: dict[str, Any] = Field(default_factory=dict, description="Environment-specific options.")
    vectorized: bool | Literal["auto"] = Field(
        default="auto",
        description="Step all envs in one call and draw all their frames in one call, on the reward model's "
        f"device ({', '.join(vectorized_envs())}; see docs/gpu.md). auto: on when the model runs on a GPU and "
        "the env's batched version draws there (cartpole, mountaincar; the humanoid with Warp), else off.",
    )

    @field_validator("name")
    @classmethod
    def _known_env(cls, name: str) -> str:
        return get_env_spec(name).name


class RayConfig(_Section):
    """Where Ray runs the reward workers (``reward.backend: ray``)."""

    num_workers: int | None = Field(
        default=None, gt=0, description="Reward-model actors; default one per GPU of the cluster, else one CPU actor."
    )
    cpus_per_worker: int | None = Field(
        default=None, gt=0, description="CPUs (torch threads) per actor; default 1 with GPUs, else an even share."
    )
    address: str | None = Field(
        default=None, description="Cluster to join; default $RAY_ADDRESS, else a new local cluster."
    )

    def is_empty(self) -> bool:
        return all(value is None for value in self.model_dump().values())


_FLAT_RAY_FIELDS = {"num_workers": "num_workers", "cpus_per_worker": "cpus_per_worker", "ray_address": "address"}


class VideoRewardConfig(_Section):
    """Video-text rewards (``reward.model: video:<id>``): which frames make the clip a step is scored by."""

    window: int | None = Field(
        default=None, gt=0, description="Frames per clip; default (and the only value X-CLIP takes): the model's."
    )
    stride: int = Field(default=1, gt=0, description="Steps between the clip's frames (the last is the step's own).")
    form: Literal["window", "episode"] = Field(
        default="window",
        description="window: each step's reward is its clip's similarity to the prompt (dense); episode: one "
        "reward, for the whole episode's video, at its last step (RoboCLIP; sparse).",
    )


class RewardConfig(_Section):
    """The vision-language reward model."""

    model: str = Field(default=DEFAULT_MODEL, description="Hub id, local directory, open_clip:ARCH/TAG, tiny-random.")
    target_prompts: list[str] | None = Field(
        default=None, min_length=1, description="Sentences describing the goal; default: the env's."
    )
    baseline_prompts: list[str] | None = Field(
        default=None, description="Sentences describing the scene in general; default: the env's, with its target."
    )
    alpha: float = Field(default=0.0, ge=0.0, le=1.0, description="Goal-baseline regularisation strength.")
    batch_size: int = Field(
        default=64, gt=0, json_schema_extra=SAFE, description="Largest number of frames embedded at once."
    )
    dtype: Literal["auto", "fp32", "bf16", "fp16", "int8"] = Field(
        default="auto",
        description="auto: fp16 on CUDA; on a CPU bf16 where timing the model finds it faster than fp32 (cached), "
        "else fp32. int8: linear layers quantised, CPUs only, where faster than fp32.",
    )
    device: str = Field(default="auto", json_schema_extra=SAFE, description="auto, cpu, cuda or cuda:N.")
    episode_end_batching: bool | None = Field(
        default=None,
        description="Score whole episodes at once and relabel the replay buffer; default: on for SAC/DQN.",
    )
    overlap_scoring: bool | None = Field(
        default=None,
        json_schema_extra=SAFE,
        description="Episode-end batching: score finished episodes in a background thread while the envs step; "
        "default: on when the model runs on a GPU or Ray workers, off on a CPU (both would share its cores).",
    )
    compile: CompileMode = Field(
        default="none",
        json_schema_extra=SAFE,
        description="none; compile: torch.compile the image tower for one padded batch shape (compiled when the "
        "model loads); cuda-graphs: that, replayed as CUDA graphs (CUDA only; fastest for small batches).",
    )
    question_template: str | None = Field(
        default=None,
        description="vqa: models: the question, with {goal} for the prompt; default "
        "'Does this image show {goal}? Answer yes or no.'",
    )
    video: VideoRewardConfig = Field(
        default_factory=VideoRewardConfig, description="video: models: the clip each step is scored by."
    )
    backend: Literal["local", "ray"] = Field(
        default="local",
        json_schema_extra=SAFE,
        description="Where frames are scored: in the training process, or by a pool of Ray actors.",
    )
    ray: RayConfig = Field(default_factory=RayConfig, json_schema_extra=SAFE, description="The Ray backend.")

    @model_validator(mode="before")
    @classmethod
    def _nest_flat_ray_fields(cls, data: Any) -> Any:
        """vlmrm 0.1 had the Ray fields flat in ``reward``; move them into ``reward.ray`` (with a warning)."""
        if not isinstance(data, dict) or not any(key in data for key in _FLAT_RAY_FIELDS):
            return data
        data = dict(data)
        ray = dict(data.get("ray") or {})
        moved = []
        for old, new in _FLAT_RAY_FIELDS.items():
            if old in data:
                value = data.pop(old)
                moved.append(f"reward.{old} -> reward.ray.{new}")
                if value is not None:
                    ray[new] = value
        data["ray"] = ray
        warnings.warn(f"deprecated config fields, now nested: {', '.join(moved)}", FutureWarning, stacklevel=2)
        return data

    @field_validator("target_prompts", "baseline_prompts")
    @classmethod
    def _prompts_not_empty(cls, prompts: list[str] | None) -> list[str] | None:
        for i, prompt in enumerate(prompts or []):
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


class RLConfig(_Section):
    """The RL algorithm (stable-baselines3) and its budget."""

    algorithm: Literal["sac", "dqn", "ppo"] = Field(description="sac (continuous), dqn (discrete), ppo (either).")
    total_steps: int = Field(gt=0, json_schema_extra=SAFE, description="Environment steps summed over all envs.")
    n_envs: int = Field(default=1, gt=0)
    seed: int = Field(default=0, ge=0, le=2**32 - 1, description="Seed of the envs, the algorithm and torch.")
    policy: str = "MlpPolicy"
    hyperparameters: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments for the stable-baselines3 algorithm."
    )
    vec_env: Literal["dummy", "subproc"] = Field(
        default="dummy", json_schema_extra=SAFE, description="Run envs in-process or in worker processes."
    )


class WandbConfig(_Section):
    """Weights & Biases tracking (``pip install 'vlmrm[wandb]'``): the run's TensorBoard logs, videos and config."""

    enabled: bool = Field(default=False, description="Stream the run to Weights & Biases.")
    project: str = Field(default="vlmrm", description="W&B project.")
    entity: str | None = Field(default=None, description="W&B team or user; default: your default entity.")
    mode: Literal["online", "offline"] | None = Field(
        default=None, description="online or offline (sync later with `wandb sync`); default: $WANDB_MODE, else online."
    )
    tags: list[str] = Field(default_factory=list, description="Tags of the W&B run (a sweep adds its own).")
    group: str | None = Field(default=None, description="Group of the W&B run (e.g. a sweep's name).")
    name: str | None = Field(default=None, description="Name of the W&B run; default: the run directory's name.")

    @field_validator("project")
    @classmethod
    def _project_named(cls, project: str) -> str:
        if not project.strip():
            raise ValueError("the W&B project is empty; name one, e.g. vlmrm")
        return project


class LoggingConfig(_Section):
    """Where the run is written and how often."""

    run_dir: str | None = Field(default=None, description="Default: runs/<env>-<date>-<time>.")
    checkpoint_freq: int = Field(
        default=10_000, ge=0, json_schema_extra=SAFE, description="Steps between checkpoints; 0: only at the end."
    )
    video_freq: int = Field(
        default=10_000, ge=0, json_schema_extra=SAFE, description="Steps between policy videos; 0: only at the end."
    )
    video_size: int | None = Field(
        default=512,
        gt=0,
        json_schema_extra=SAFE,
        description="Pixels of a side of the policy videos (the mp4s and TensorBoard's eval/video): each step "
        "drawn again at that size from the simulator's state where the env can set it (the built-in envs), "
        "else the model's frames enlarged; null: the model's frames as they are.",
    )
    eval_freq: int = Field(
        default=10_000, ge=0, json_schema_extra=SAFE, description="Steps between evaluations; 0: only at the end."
    )
    eval_episodes: int = Field(default=3, gt=0, json_schema_extra=SAFE)
    keep_checkpoints: int = Field(
        default=3, gt=0, json_schema_extra=SAFE, description="How many recent checkpoints to keep."
    )
    save_replay_buffer: bool | None = Field(
        default=None, json_schema_extra=SAFE, description="Default: on for off-policy algorithms."
    )
    progress_bar: bool = Field(default=True, json_schema_extra=SAFE)
    inspect: bool = Field(
        default=True,
        json_schema_extra=SAFE,
        description="At each evaluation, log the highest- and lowest-reward frames and an episode strip to "
        "TensorBoard (see docs/inspect.md).",
    )
    wandb: WandbConfig = Field(
        default_factory=WandbConfig, json_schema_extra=SAFE, description="Weights & Biases tracking (off by default)."
    )

    @field_validator("run_dir")
    @classmethod
    def _run_dir_named(cls, run_dir: str | None) -> str | None:
        if run_dir is not None and not run_dir.strip():
            raise ValueError("the run directory is empty; give a path or leave it out (default runs/<env>-<date>)")
        return run_dir


class TrainConfig(_Section):
    """A whole training run."""

    env: EnvConfig
    reward: RewardConfig = Field(default_factory=RewardConfig)
    rl: RLConfig
    logging: LoggingConfig = Field(default_factory=LoggingConfig)


# -- rules across fields ----------------------------------------------------------------------------------


def is_off_policy(algorithm: str) -> bool:
    """Whether ``algorithm`` learns from a replay buffer."""
    return algorithm in OFF_POLICY_ALGORITHMS


def algorithm_class(algorithm: str) -> Any:
    """The stable-baselines3 class of ``algorithm`` (imported on first use: it loads torch)."""
    module, _, name = ALGORITHM_CLASSES[algorithm].partition(":")
    return getattr(importlib.import_module(module), name)


def episode_end_batching(config: TrainConfig) -> bool:
    """Whether episodes are scored at their end (the config's choice, else on for off-policy algorithms)."""
    choice = config.reward.episode_end_batching
    return is_off_policy(config.rl.algorithm) if choice is None else choice


def episode_length(config: TrainConfig) -> int:
    """The config's episode length, else the env's default."""
    return config.env.episode_length or get_env_spec(config.env.name).default_episode_length


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _train_freq_ok(value: Any) -> bool:
    if isinstance(value, list | tuple):
        return len(value) == 2 and _positive_int(value[0]) and value[1] in ("step", "episode")
    return _positive_int(value)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _in(low: float, high: float = math.inf, low_open: bool = False, high_open: bool = False) -> Any:
    """A check that a value is a finite number from ``low`` to ``high`` (``*_open``: the bound itself excluded)."""

    def check(value: Any) -> bool:
        if not _number(value):
            return False
        above = value > low if low_open else value >= low
        below = value < high if high_open else value <= high
        return above and below

    return check


def _net_arch_ok(value: Any) -> bool:
    def layers(sizes: Any) -> bool:
        return isinstance(sizes, list | tuple) and all(_positive_int(size) for size in sizes)

    if isinstance(value, dict):
        return bool(value) and all(isinstance(key, str) and layers(sizes) for key, sizes in value.items())
    return layers(value)


def _policy_kwargs_ok(value: Any) -> bool:
    return isinstance(value, dict) and ("net_arch" not in value or _net_arch_ok(value["net_arch"]))


def _non_finite(value: Any) -> bool:
    """Whether ``value`` is, or holds (in a list or mapping), a NaN or an infinity."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_non_finite(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(_non_finite(item) for item in value)
    return False


_UNIT = (_in(0, 1), "a number in [0, 1]")
_POSITIVE = (_in(0, low_open=True), "a finite number > 0")
_NON_NEGATIVE = (_in(0), "a finite number >= 0")

# Number-valued stable-baselines3 arguments: (check, what it must be).
_HYPERPARAMETER_RULES: dict[str, tuple[Any, str]] = {
    "buffer_size": (_positive_int, "a positive integer"),
    "batch_size": (_positive_int, "a positive integer"),
    "n_steps": (_positive_int, "a positive integer"),
    "n_epochs": (_positive_int, "a positive integer"),
    "target_update_interval": (_positive_int, "a positive integer"),
    "learning_starts": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "an integer >= 0"),
    "train_freq": (_train_freq_ok, "a positive integer, or [N, step] / [N, episode]"),
    "gradient_steps": (lambda v: _positive_int(v) or v == -1, "a positive integer, or -1 (as many as env steps)"),
    "gamma": _UNIT,
    "tau": (_in(0, 1, low_open=True), "a number in (0, 1]"),
    "learning_rate": _POSITIVE,
    "exploration_fraction": _UNIT,
    "exploration_initial_eps": _UNIT,
    "exploration_final_eps": _UNIT,
    "gae_lambda": _UNIT,
    "max_grad_norm": _POSITIVE,
    "clip_range": _POSITIVE,
    "clip_range_vf": (lambda v: v is None or _POSITIVE[0](v), "null or a finite number > 0"),
    "target_kl": (lambda v: v is None or _POSITIVE[0](v), "null or a finite number > 0"),
    "vf_coef": _NON_NEGATIVE,
    "ent_coef": (
        lambda v: _NON_NEGATIVE[0](v) or (isinstance(v, str) and v.startswith("auto")),
        "a finite number >= 0 (SAC: or auto, auto_<initial value>)",
    ),
    "policy_kwargs": (
        _policy_kwargs_ok,
        "a mapping whose net_arch is a list of positive layer sizes, e.g. [64, 64], or one per network, "
        "e.g. {pi: [64], qf: [64]}",
    ),
}


def _hyperparameter_problems(rl: RLConfig) -> list[str]:
    cls = algorithm_class(rl.algorithm)
    problems = []
    policies = sorted(getattr(cls, "policy_aliases", {}))
    if policies and rl.policy not in policies:
        problems.append(
            f"rl.policy: {cls.__name__} has no policy {rl.policy!r}.{closest(rl.policy, policies)} "
            f"Valid: {', '.join(policies)}."
        )
    valid = [n for n in inspect.signature(cls.__init__).parameters if n not in ("self", *RESERVED_HYPERPARAMETERS)]
    for key, value in rl.hyperparameters.items():
        if key in RESERVED_HYPERPARAMETERS:
            problems.append(f"rl.hyperparameters.{key}: set by vlmrm; use rl.seed, rl.policy or reward.device.")
        elif key not in valid:
            problems.append(
                f"rl.hyperparameters.{key}: {cls.__name__} has no such parameter.{closest(key, valid)} "
                f"Valid: {', '.join(valid)}."
            )
        elif key in _HYPERPARAMETER_RULES and not _HYPERPARAMETER_RULES[key][0](value):
            problems.append(f"rl.hyperparameters.{key}: must be {_HYPERPARAMETER_RULES[key][1]} (got {value!r}).")
        elif _non_finite(value):
            problems.append(f"rl.hyperparameters.{key}: must hold finite numbers, not NaN or infinity (got {value!r}).")
    return problems


def _batching_problems(config: TrainConfig) -> list[str]:
    rl, reward = config.rl, config.reward
    problems = []
    if reward.episode_end_batching and not is_off_policy(rl.algorithm):
        problems.append(
            f"reward.episode_end_batching: needs an off-policy algorithm (sac, dqn), not {rl.algorithm}; "
            "set it to false."
        )
    batching = episode_end_batching(config)
    if reward.overlap_scoring and not batching:
        problems.append(
            "reward.overlap_scoring: needs episode-end batching (an off-policy algorithm, sac or dqn, with "
            "reward.episode_end_batching not false); set it to false."
        )
    if batching and is_off_policy(rl.algorithm) and rl.hyperparameters.get("replay_buffer_class") is not None:
        problems.append("rl.hyperparameters.replay_buffer_class: cannot be set with episode-end batching.")
    return problems


def _vectorized_problems(config: TrainConfig) -> list[str]:
    env, spec = config.env, get_env_spec(config.env.name)
    renderer = env.options.get("renderer")
    batched_renderer = renderer in ("warp", "torch")  # only the batched env draws this way: auto picks it
    batched = env.vectorized is True or (env.vectorized == "auto" and batched_renderer)
    problems = []
    if batched and spec.vector_entry_point is None:
        problems.append(f"env.vectorized: {spec.name} has no batched version; set it to false.")
    if batched and config.rl.vec_env == "subproc":
        problems.append(
            "rl.vec_env: subproc does not apply to a vectorized env (it steps all envs in this process); "
            "set rl.vec_env: dummy or env.vectorized: false."
        )
    if env.options.get("physics") == "warp" and env.vectorized is False:
        problems.append(
            "env.options.physics: warp steps all envs together in the batched env, which needs env.vectorized: true; "
            "set it (or auto), or use physics: mujoco."
        )
    elif batched_renderer and env.vectorized is False:
        problems.append(
            f"env.options.renderer: {renderer} draws all envs' frames in one call, which needs env.vectorized: true; "
            "set it (or auto), or use renderer: auto."
        )
    return problems


def _reward_problems(reward: RewardConfig) -> list[str]:
    problems = []
    if reward.alpha > 0 and not reward.baseline_prompts:
        problems.append(
            f"reward.alpha={reward.alpha} needs baseline_prompts (a sentence describing the scene in general); "
            "add reward.baseline_prompts or set reward.alpha to 0."
        )
    if reward.backend == "local" and not reward.ray.is_empty():
        given = next(name for name, value in reward.ray.model_dump().items() if value is not None)
        problems.append(
            f"reward.ray.{given}: only applies to reward.backend: ray (the backend is local); "
            f"set reward.backend: ray or remove reward.ray.{given}."
        )
    compile_rule = compile_problem(reward.compile, reward.model, reward.device)
    if compile_rule is not None:
        problems.append(compile_rule)
    if reward.backend == "ray" and reward.device.startswith("cuda:"):
        problems.append(
            f"reward.device={reward.device!r} names one GPU, but with reward.backend: ray Ray gives each worker its "
            "own GPU; use device: cuda (or auto)."
        )
    return problems


def config_problems(config: TrainConfig) -> list[str]:
    """Every rule a config breaks that field types and ranges cannot express, one line each."""
    spec = get_env_spec(config.env.name)
    problems: list[str] = []
    try:
        parse_options(spec, config.env.options)
    except ConfigError as exc:
        problems += [line.strip() for line in str(exc).splitlines()[1:]]
    if spec.action_kind not in ACTION_KINDS[config.rl.algorithm]:
        fits = sorted(name for name, kinds in ACTION_KINDS.items() if spec.action_kind in kinds)
        problems.append(
            f"rl.algorithm: {config.rl.algorithm} needs {' or '.join(sorted(ACTION_KINDS[config.rl.algorithm]))} "
            f"actions; {spec.name} has {spec.action_kind} actions. Use {' or '.join(fits)}."
        )
    problems += _vectorized_problems(config)
    problems += _reward_problems(config.reward)
    problems += _batching_problems(config)
    problems += _hyperparameter_problems(config.rl)
    return problems


def with_defaults(config: TrainConfig) -> TrainConfig:
    """The env's options with their defaults filled in, and the env's default prompts where none are given.

    Invalid options stay as they are (:func:`config_problems` reports them); the prompts are then the
    env's defaults for default options.
    """
    spec = get_env_spec(config.env.name)
    data = config.model_dump()
    try:
        options = parse_options(spec, config.env.options)
        data["env"]["options"] = options.model_dump(mode="json")
    except ConfigError:
        options = spec.options()
    if config.reward.target_prompts is None:
        prompts = spec.prompts(options)
        data["reward"]["target_prompts"] = list(prompts.target)
        if config.reward.baseline_prompts is None:
            data["reward"]["baseline_prompts"] = list(prompts.baseline)
    if data["reward"]["baseline_prompts"] is None:
        data["reward"]["baseline_prompts"] = []
    return TrainConfig.model_validate(data)


def check_config(config: TrainConfig, source: str = "config") -> TrainConfig:
    """``config`` with defaults filled in (:func:`with_defaults`); :class:`ConfigError` listing every problem."""
    config = with_defaults(config)
    problems = config_problems(config)
    if problems:
        raise ConfigError("\n".join([f"Invalid {source}:", *(f"  {problem}" for problem in problems)]))
    return config


# -- resolution -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RewardFacts:
    """What the reward function knows once it is built: what ``resolve`` needs from it."""

    image_size: int
    device: str
    """Where the model runs (``cpu``, ``cuda``, ``cuda:N``); a Ray pool's workers' device."""
    dtype: str | None = None
    """``fp32``, ``bf16`` or ``fp16``; ``None`` for a reward function that does not say."""


def default_run_dir(config: TrainConfig) -> Path:
    # gym:ALE/Pong-v5 -> gym-ALE-Pong-v5: one directory level, no colon.
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", config.env.name)
    return Path("runs") / f"{name}-{datetime.now():%Y%m%d-%H%M%S}"


def resolve(config: TrainConfig, facts: RewardFacts, run_dir: str | Path | None = None) -> TrainConfig:
    """Fill every ``None`` and ``auto`` of a checked config (see the module docstring).

    ``run_dir`` overrides ``logging.run_dir``; without either the default ``runs/<env>-<date>-<time>``.
    """
    data = config.model_dump()
    env, reward, rl, log = data["env"], data["reward"], data["rl"], data["logging"]
    env["episode_length"] = episode_length(config)
    env["render_size"] = env["render_size"] or facts.image_size
    if reward["device"] == "auto":
        reward["device"] = facts.device
    if reward["dtype"] == "auto" and facts.dtype is not None:
        reward["dtype"] = facts.dtype
    batching = episode_end_batching(config)
    reward["episode_end_batching"] = batching
    if reward["overlap_scoring"] is None:
        # Overlap pays where scoring does not share the envs' CPU cores (measured on 2 cores: -3% CartPole).
        reward["overlap_scoring"] = batching and (facts.device != "cpu" or reward["backend"] == "ray")
    if log["save_replay_buffer"] is None:
        log["save_replay_buffer"] = is_off_policy(rl["algorithm"])
    log["run_dir"] = str(run_dir or log["run_dir"] or default_run_dir(config))
    if env["vectorized"] == "auto":
        env["vectorized"] = choose_vectorized(config, facts)
    if batching:
        rl["hyperparameters"]["learning_starts"] = learning_starts(config)
    return TrainConfig.model_validate(data)


def choose_vectorized(config: TrainConfig, facts: RewardFacts) -> bool:
    """``env.vectorized: auto``: the batched env where it pays, that is where frames are drawn on the GPU the
    model runs on (see :meth:`~vlmrm.envs.spec.EnvSpec.batched_on_device`), never with subprocess envs or Ray
    workers, which want frames on the host. A renderer that only the batched env has (torch, warp) asks for it."""
    if config.env.options.get("renderer") in ("torch", "warp"):
        return True
    if config.rl.vec_env == "subproc" or config.reward.backend == "ray":
        return False
    chosen = get_env_spec(config.env.name).batched_on_device(config.env.options, facts.device)
    if chosen:
        logger.info("vlmrm: env.vectorized auto: the batched env, all frames drawn in one call on %s", facts.device)
    return chosen


def learning_starts(config: TrainConfig) -> int:
    """``learning_starts`` with episode-end batching: at least ``n_envs * episode_length``, since the first
    gradient step must find finished, relabelled episodes. A lower value (a preset's, tuned for one env) is
    raised to it, with one log line, so raising ``rl.n_envs`` for a GPU run needs nothing else."""
    minimum = config.rl.n_envs * episode_length(config)
    starts = config.rl.hyperparameters.get("learning_starts")
    if starts is None:
        return max(minimum, 100)
    if starts < minimum:
        logger.info(
            "vlmrm: rl.hyperparameters.learning_starts raised from %d to n_envs * episode_length = %d x %d = %d: "
            "with episode-end batching no reward is known before the first episodes end",
            starts,
            config.rl.n_envs,
            episode_length(config),
            minimum,
        )
        return minimum
    return int(starts)


# -- resume safety ------------------------------------------------------------------------------------------


def _is_safe(field: Any) -> bool:
    extra = field.json_schema_extra
    return isinstance(extra, dict) and bool(extra.get("resume_safe"))


def is_resume_safe(dotted: str, model: type[BaseModel] = TrainConfig) -> bool:
    """Whether ``--resume --set`` may change the field ``dotted`` (it, or a section above it, is resume-safe)."""
    current: Any = model
    for part in dotted.split("."):
        if not (isinstance(current, type) and issubclass(current, BaseModel)) or part not in current.model_fields:
            return False
        field = current.model_fields[part]
        if _is_safe(field):
            return True
        current = field.annotation
    return False


def resume_safe_fields(model: type[BaseModel] = TrainConfig, prefix: str = "") -> list[str]:
    """The dotted names of the resume-safe fields (a safe section is listed as ``section.*``)."""
    names = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if _is_safe(field):
            is_section = isinstance(annotation, type) and issubclass(annotation, BaseModel)
            names.append(f"{prefix}{name}" + (".*" if is_section else ""))
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names += resume_safe_fields(annotation, f"{prefix}{name}.")
    return names


def flatten(data: dict[str, Any], model: type[BaseModel] = TrainConfig, prefix: str = "") -> dict[str, Any]:
    """``{"reward": {"ray": {"address": x}}}`` -> ``{"reward.ray.address": x}``: sections are flattened,
    mapping-valued fields (``env.options``, ``rl.hyperparameters``) are kept whole."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        field = model.model_fields.get(key)
        annotation = field.annotation if field is not None else None
        if isinstance(value, dict) and isinstance(annotation, type) and issubclass(annotation, BaseModel):
            flat.update(flatten(value, annotation, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


# -- reading and writing --------------------------------------------------------------------------------------


class DuplicateKeyError(yaml.YAMLError):
    """A key repeated in one YAML mapping (``key``, and the lines of both)."""

    def __init__(self, key: Any, first_line: int, second_line: int):
        super().__init__(f"the key {key!r} appears twice in one section, on lines {first_line} and {second_line}")
        self.key, self.first_line, self.second_line = key, first_line, second_line


class UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key repeated in a mapping is an error (YAML keeps the last, silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # "<<: *defaults" may be overridden on purpose
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.setdefault(key, line)
            except TypeError:  # an unhashable key: construct_mapping reports it
                continue
            if first != line:
                raise DuplicateKeyError(key, first, line)
        return super().construct_mapping(node, deep)


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``a.b.c=value``; the value is read as YAML (numbers, booleans, lists)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. --set rl.total_steps=2000.")
    key, raw = text.split("=", 1)
    path = [part for part in key.strip().split(".")]
    if not all(path):
        raise ConfigError(f"--set {text!r}: the key {key!r} is not a dotted path like reward.alpha.")
    try:
        value = yaml.load(raw, Loader=UniqueKeyLoader) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {text!r}: the value is not valid YAML ({exc}).") from exc
    return path, value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set each ``KEY=VALUE`` of ``overrides`` in the nested ``data`` (sections are created as needed)."""
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
    """The mapping in a YAML config file; a :class:`ConfigError` for a missing, unreadable or odd file."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"Config {str(path)!r} is a directory; give a YAML file, e.g. configs/cartpole.yaml.")
    if not path.is_file():
        raise ConfigError(f"Config file {str(path)!r} does not exist. Example configs are in configs/.")
    try:
        data = yaml.load(path.read_text(), Loader=UniqueKeyLoader)
    except DuplicateKeyError as exc:
        raise ConfigError(
            f"Config file {str(path)!r} sets {exc.key!r} twice in one section (lines {exc.first_line} and "
            f"{exc.second_line}); YAML would keep only the second. Delete one of them."
        ) from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Config file {str(path)!r} is not valid YAML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"Config file {str(path)!r} cannot be read: {exc.strerror or exc}.") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"Config file {str(path)!r} must be a mapping of sections (env, reward, rl, logging).")
    return data


def config_from_dict(data: dict[str, Any], source: str = "config") -> TrainConfig:
    """Validate ``data`` (types, then rules) and fill the env's defaults; :class:`ConfigError` lists every problem."""
    try:
        config = TrainConfig.model_validate(data)
    except ValidationError as exc:
        lines = problem_lines(exc, TrainConfig)
        raise ConfigError("\n".join([f"Invalid {source}:", *(f"  {line}" for line in lines)])) from None
    return check_config(config, source)


def load_config(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """Read, override and validate a training config."""
    data = apply_overrides(read_yaml(path), overrides or [])
    return config_from_dict(data, source=f"config {str(path)!r}")


def dump_config(config: TrainConfig) -> str:
    """The config as YAML, sections in order."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


__all__ = [
    "EnvConfig",
    "LoggingConfig",
    "RLConfig",
    "RayConfig",
    "RewardConfig",
    "RewardFacts",
    "TrainConfig",
    "WandbConfig",
    "check_config",
    "config_from_dict",
    "is_resume_safe",
    "load_config",
    "resolve",
    "resume_safe_fields",
]
