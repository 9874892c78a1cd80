"""``vlmrm inspect RUN_DIR``: roll out a checkpoint of a run, score every frame, write ``RUN_DIR/inspect/``.

The run's resolved ``config.yaml`` says everything: the env (name, options, render size, episode
length), the reward (model, prompts, alpha) and the algorithm whose checkpoint to load. The rollout
is :func:`vlmrm.rl.rollout.evaluate` on a :class:`~vlmrm.rl.vec_env.VecVLMReward` in step mode, the
same as training's evaluations; the inspection is :mod:`vlmrm.evaluation.inspection`, the files
:mod:`vlmrm.evaluation.inspection_report`. When the run has baseline prompts, every frame is also
scored by the goal-only (alpha = 0) and the fully projected (alpha = 1) reward, from the same
image embedding.

Any reward function can stand in for the run's model (``reward_fn``, as in :func:`vlmrm.train`):

>>> import numpy as np, tempfile, vlmrm
>>> def redness(frames):
...     return frames[..., 0].mean(axis=(1, 2)) / 255.0
>>> config = vlmrm.config_from_dict({
...     "env": {"name": "cartpole", "episode_length": 20, "render_size": 32},
...     "rl": {"algorithm": "dqn", "total_steps": 40},
...     "logging": {"eval_episodes": 1, "video_freq": 0, "progress_bar": False, "inspect": False}})
>>> run = vlmrm.train(config, run_dir=tempfile.mkdtemp() + "/run", reward_fn=redness).run_dir
>>> result = inspect_run(run, episodes=1, reward_fn=redness)
>>> sorted(p.name for p in result.out_dir.glob("*.html")), result.summary["episodes"]
(['report.html'], 1)
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vlmrm import __version__
from vlmrm.config import TrainConfig, algorithm_class, config_from_dict, read_yaml
from vlmrm.envs import get_env_spec
from vlmrm.errors import CheckpointError, ConfigError, RewardError, RunDirectoryError
from vlmrm.evaluation.inspection import MAIN, FrameKeeper, Inspection, inspect_evaluation
from vlmrm.evaluation.inspection_report import REPORT_FILE, summary_of, write_report
from vlmrm.reward.contract import RewardFunction, as_reward_function
from vlmrm.reward.vlm_reward import VLMReward
from vlmrm.rl.checkpoints import (
    BEST_FILE,
    CHECKPOINT_PATTERN,
    checkpoint_path,
    list_checkpoints,
    read_best,
    run_policy,
    verify_checkpoint,
)
from vlmrm.rl.rollout import evaluate
from vlmrm.rl.run_dir import CONFIG_FILE, INSPECT_DIR
from vlmrm.rl.vec_env import VecVLMReward
from vlmrm.rl.vec_env_factory import make_vec_env

logger = logging.getLogger(__name__)

EVAL_SEED_OFFSET = 10_000
"""The seed of the inspection's env is ``rl.seed`` plus this, as for training's evaluation env."""


@dataclass
class InspectResult:
    out_dir: Path
    """``RUN_DIR/inspect``."""
    report: Path
    inspection: Inspection
    summary: dict[str, Any]
    """What ``summary.json`` holds."""


class VariantReward:
    """A :class:`VLMReward` as a reward function that also scores each frame at other alphas.

    One image embedding per frame gives every alpha (``reward_from_embeddings``). The rewards at the
    other alphas of every frame scored so far, in order, are in :attr:`scored`.
    """

    def __init__(self, reward: VLMReward, alphas: dict[str, float]):
        self.reward = reward
        self.alphas = dict(alphas)
        self.scored: dict[str, list[float]] = {key: [] for key in alphas}

    @property
    def name(self) -> str:
        return self.reward.name

    @property
    def image_size(self) -> int:
        return self.reward.image_size

    @property
    def batch_size(self) -> int:
        return self.reward.batch_size

    @property
    def device(self) -> torch.device:
        return self.reward.device

    def __call__(self, frames: Any) -> np.ndarray:
        embeddings = self.reward.embed_images(frames)
        for key, alpha in self.alphas.items():
            values = self.reward.reward_from_embeddings(embeddings, alpha=alpha).float().cpu().numpy()
            self.scored[key].extend(values.tolist())
        return self.reward.reward_from_embeddings(embeddings).float().cpu().numpy()

    def close(self) -> None:
        self.reward.close()


# -- what to inspect -------------------------------------------------------------------------------------


def load_run(run_dir: Path) -> TrainConfig:
    """The resolved config of the run in ``run_dir``."""
    if not run_dir.is_dir():
        raise RunDirectoryError(f"Run directory {str(run_dir)!r} does not exist.")
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise RunDirectoryError(f"{str(run_dir)!r} is not a vlmrm run directory (it has no {CONFIG_FILE}).")
    return config_from_dict(read_yaml(path), source=f"config {str(path)!r}")


def choose_checkpoint(run_dir: Path, checkpoint: int | str | Path | None) -> tuple[Path, int | None]:
    """The checkpoint file to inspect and its step.

    ``None`` or ``"best"``: the run's best policy (``checkpoints/best.zip``), else its newest sound
    checkpoint; ``"latest"``: the newest sound checkpoint; step ``N``; or a ``.zip`` path.
    """
    directory = run_dir / "checkpoints"
    steps = [step for step, _ in list_checkpoints(directory)]
    if checkpoint in (None, "best", "latest"):
        if checkpoint == "best" and read_best(directory) is None:
            raise CheckpointError(
                f"Run {str(run_dir)!r} has no sound best policy ({BEST_FILE} is written after an evaluation); "
                "give --checkpoint latest or a step."
            )
        if not steps and read_best(directory) is None:
            raise RunDirectoryError(
                f"Run {str(run_dir)!r} has no checkpoint yet: train it first, or wait for its first checkpoint "
                "(logging.checkpoint_freq)."
            )
        try:
            found = run_policy(directory, "latest" if checkpoint == "latest" else "best")
        except CheckpointError:
            raise CheckpointError(
                f"No usable checkpoint in {str(directory)!r}: all {len(steps)} are truncated or corrupt."
            ) from None
        assert found is not None
        return found
    if isinstance(checkpoint, bool) or not isinstance(checkpoint, int | str | Path):
        raise ConfigError(f"--checkpoint must be a step number, best, latest or a .zip file, got {checkpoint!r}.")
    if isinstance(checkpoint, int):
        path = checkpoint_path(directory, checkpoint)
        if not path.exists():
            listed = ", ".join(map(str, steps)) if steps else "none"
            raise CheckpointError(f"Run {str(run_dir)!r} has no checkpoint at step {checkpoint}; its steps: {listed}.")
        return verify_checkpoint(path).path, checkpoint
    path = Path(checkpoint)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {str(path)!r} does not exist; give a step number or a .zip file.")
    match = CHECKPOINT_PATTERN.match(path.name)
    if match:
        return verify_checkpoint(path).path, int(match.group(1))
    return path, None


def build_reward(
    config: TrainConfig, reward_fn: Any = None, device: str | None = None
) -> tuple[RewardFunction, dict[str, tuple[str, float]], str]:
    """The reward to score with, the alpha variants to add (``key -> (label, alpha)``) and the main label.

    The run's model, or ``reward_fn``; a :class:`VLMReward` (the run's, or one given) with baseline
    prompts adds the goal-only (alpha = 0) and projected (alpha = 1) rewards.
    """
    if reward_fn is not None and not isinstance(reward_fn, VLMReward):
        reward = as_reward_function(reward_fn, image_size=config.env.render_size or 224)
        return reward, {}, reward.name
    if isinstance(reward_fn, VLMReward):
        model = reward_fn
    else:
        from vlmrm.reward.devices import resolve_device

        settings = config.reward
        torch_device = resolve_device(device or "auto")
        model = VLMReward.from_pretrained(
            settings.model,
            target_prompts=settings.target_prompts or [],
            baseline_prompts=settings.baseline_prompts or None,
            alpha=settings.alpha,
            device=torch_device,
            # The run's dtype where the model runs where it trained (fp16 on a GPU is no choice for a CPU).
            dtype=settings.dtype if str(torch_device) == settings.device else "auto",
            batch_size=settings.batch_size,
        )
    alpha = model.alpha
    variants: dict[str, tuple[str, float]] = {}
    if model.baseline_embedding is not None:
        if alpha != 0.0:
            variants["alpha0"] = ("goal-only reward (α = 0)", 0.0)
        if alpha != 1.0:
            variants["alpha1"] = ("projected reward (α = 1)", 1.0)
    kind = "goal-only " if alpha == 0 else "projected " if alpha == 1 else ""
    return model, variants, f"{kind}VLM reward (α = {alpha:g}, trained on)"


def load_policy(config: TrainConfig, path: Path, venv: Any) -> Any:
    """The checkpoint's model; a :class:`CheckpointError` when it does not load or fits another env."""
    cls = algorithm_class(config.rl.algorithm)
    try:
        model = cls.load(path, device="cpu")
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise CheckpointError(
            f"Checkpoint {str(path)!r} does not load as {cls.__name__} (the run's rl.algorithm "
            f"{config.rl.algorithm}): {type(exc).__name__}{': ' + first if first else ''}."
        ) from None
    if model.observation_space != venv.observation_space or model.action_space != venv.action_space:
        raise CheckpointError(
            f"Checkpoint {str(path)!r} is of another environment: it takes observations {model.observation_space} "
            f"and actions {model.action_space}; this run's {config.env.name} has {venv.observation_space} and "
            f"{venv.action_space}."
        )
    return model


# -- the inspection ---------------------------------------------------------------------------------------


def inspect_run(
    run_dir: str | Path,
    checkpoint: int | str | Path | None = None,
    episodes: int = 3,
    reward_fn: Any = None,
    k: int = 8,
    device: str | None = None,
    seed: int | None = None,
    deterministic: bool = True,
    progress: Callable[[str], None] | None = None,
) -> InspectResult:
    """Roll out a checkpoint of the run in ``run_dir`` for ``episodes`` episodes and write ``RUN_DIR/inspect/``.

    Args:
        run_dir: a run directory of :func:`vlmrm.train`.
        checkpoint: ``None`` or ``"best"`` (the run's best policy, else its newest sound checkpoint),
            ``"latest"`` (the newest sound checkpoint), a step number, or a checkpoint ``.zip``.
        episodes: episodes to roll out (deterministic actions).
        reward_fn: score with this instead of the run's model (a :class:`~vlmrm.reward.contract.RewardFunction`
            or a function of the frames); there are no alpha variants then.
        k: frames shown at each end of each reward's ranking.
        device: where the run's model scores frames (default: ``auto``).
        seed: the env's seed (default: the run's ``rl.seed`` + 10000, as training's evaluations).
        progress: called with a line of text as the work advances (the CLI prints it).
    """
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes <= 0:
        raise ConfigError(f"--episodes must be a positive number of episodes, got {episodes!r}.")
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise ConfigError(f"--top must be a positive number of frames, got {k!r}.")
    say = progress or (lambda line: logger.info("%s", line))
    started = time.perf_counter()
    run = Path(run_dir)
    config = load_run(run)
    path, step = choose_checkpoint(run, checkpoint)
    env = config.env
    assert env.render_size is not None and env.episode_length is not None  # a run's config is resolved
    inner = make_vec_env(
        env.name,
        n_envs=1,
        render_size=env.render_size,
        episode_length=env.episode_length,
        options=env.options,
        seed=config.rl.seed + EVAL_SEED_OFFSET if seed is None else seed,
    )
    try:
        model = load_policy(config, path, inner)  # before the reward model: a wrong checkpoint fails fast
        reward, variants, label = build_reward(config, reward_fn, device)
        try:
            scorer: RewardFunction = (
                VariantReward(reward, {key: alpha for key, (_, alpha) in variants.items()})  # type: ignore[arg-type]
                if variants
                else reward
            )
            say(f"inspecting {path} ({episodes} episode{'s' * (episodes != 1)} of {env.name}, {reward.name})")
            result, inspection = _roll_out(config, model, inner, scorer, variants, label, episodes, k, deterministic)
        finally:
            reward.close()
    finally:
        inner.close()
    meta = {
        "run directory": str(run),
        "checkpoint": str(path),
        "step": step,
        "environment": env.name,
        "environment options": env.options,
        "reward model": reward.name,
        "target prompts": list(getattr(reward, "target_prompts", [])),
        "baseline prompts": list(getattr(reward, "baseline_prompts", [])),
        "alpha": getattr(reward, "alpha", None),
        "episodes": episodes,
        "frames": int(sum(result.lengths)),
        "mean env return": result.mean_env_return,
        "mean VLM return": result.mean_vlm_return,
        "created": datetime.now().isoformat(timespec="seconds"),
        "vlmrm version": __version__,
    }
    report = write_report(inspection, run / INSPECT_DIR, meta)
    say(f"wrote {report} in {time.perf_counter() - started:.1f} s")
    return InspectResult(run / INSPECT_DIR, report, inspection, summary_of(inspection, meta))


def _roll_out(
    config: TrainConfig,
    model: Any,
    inner: Any,
    scorer: RewardFunction,
    variants: dict[str, tuple[str, float]],
    label: str,
    episodes: int,
    k: int,
    deterministic: bool,
) -> tuple[Any, Inspection]:
    assert config.env.episode_length is not None
    keeper = FrameKeeper(k=k, episode_length=config.env.episode_length, strip_episodes=min(episodes, 4))
    seen = itertools.count()  # the sink sees the frames in the order they were scored

    def sink(episode: int, step: int, frame: np.ndarray, reward: float) -> None:
        index = next(seen)
        rewards = {MAIN: reward}
        if isinstance(scorer, VariantReward):
            rewards.update({key: values[index] for key, values in scorer.scored.items()})
        if not all(math.isfinite(value) for value in rewards.values()):
            raise RewardError(
                f"The reward of episode {episode}, step {step} is {reward} (not a finite number); "
                "the reward model cannot be inspected."
            )
        keeper.add(episode, step, frame, rewards)

    # Episode mode: each episode's frames are scored in batches when it ends, as in training's evaluations.
    venv = VecVLMReward(inner, scorer, mode="episode")
    spec = get_env_spec(config.env.name)
    result = evaluate(
        model, venv, episodes, spec.episode_success, deterministic=deterministic, record_frames=False, frame_sink=sink
    )
    extra: dict[str, tuple[str, list[np.ndarray]]] = {}
    if isinstance(scorer, VariantReward):
        ends = np.cumsum([0, *result.lengths])
        for key, (title, _) in variants.items():
            values = np.asarray(scorer.scored[key], dtype=np.float32)
            extra[key] = (title, [values[start:end] for start, end in itertools.pairwise(ends)])
    return result, inspect_evaluation(result, keeper, extra, label=label)


__all__ = ["INSPECT_DIR", "REPORT_FILE", "InspectResult", "VariantReward", "inspect_run"]
