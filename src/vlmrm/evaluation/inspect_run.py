"""``vlmrm inspect RUN_DIR``: roll out a checkpoint of a run, score every frame, write ``RUN_DIR/inspect/``.

The run's resolved ``config.yaml`` says everything: the env (name, options, render size, episode
length), the reward (model, prompts, alpha) and the algorithm whose checkpoint to load. The rollout
is :func:`vlmrm.rl.rollout.evaluate` on a :class:`~vlmrm.rl.vec_env.VecVLMReward` in episode mode
(each episode scored when it ends), the same as training's evaluations, so a ``video:`` model scores
each step by the clip of frames training scores it by and the report's VLM return is training's; the
inspection is :mod:`vlmrm.evaluation.inspection`, the files :mod:`vlmrm.evaluation.inspection_report`.
When the run has baseline prompts, every frame is also scored by the goal-only (alpha = 0) and the
fully projected (alpha = 1) reward, from the same image (or clip) embedding.

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

from vlmrm._version import __version__
from vlmrm.config import TrainConfig
from vlmrm.envs import get_env_spec
from vlmrm.errors import ConfigError, RewardError
from vlmrm.evaluation.inspection import MAIN, FrameKeeper, Inspection, inspect_evaluation
from vlmrm.evaluation.inspection_report import REPORT_FILE, summary_of, write_report
from vlmrm.reward.contract import RewardFunction, RewardFunctionWrapper, as_reward_function
from vlmrm.reward.video import VideoReward
from vlmrm.reward.vlm_reward import VLMReward
from vlmrm.rl.rollout import evaluate
from vlmrm.rl.vec_env import VecVLMReward
from vlmrm.rl.vec_env_factory import make_vec_env
from vlmrm.run.run_dir import INSPECT_DIR, RunDir

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


class VariantReward(RewardFunctionWrapper):
    """A :class:`VLMReward` as a reward function that also scores each frame at other alphas.

    One image embedding per frame gives every alpha (``reward_from_embeddings``); for a video model,
    one clip embedding per step of an episode, the clips training scores. The rewards at the other
    alphas of every frame scored so far, in order, are in :attr:`scored`. Name, image size, batch
    size, device and ``close()`` are the wrapped reward's.
    """

    def __init__(self, reward: VLMReward, alphas: dict[str, float]):
        super().__init__(reward)
        self.reward = reward
        self.alphas = dict(alphas)
        self.scored: dict[str, list[float]] = {key: [] for key in alphas}

    def __call__(self, frames: Any) -> np.ndarray:
        embeddings = self.reward.embed_images(frames)
        for key, alpha in self.alphas.items():
            values = self.reward.reward_from_embeddings(embeddings, alpha=alpha).float().cpu().numpy()
            self.scored[key].extend(values.tolist())
        return self.reward.reward_from_embeddings(embeddings).float().cpu().numpy()

    def score_episodes(self, episodes: Any) -> list[np.ndarray]:
        """Whole episodes: a video model's clips, as training scores them (one clip embedding per step gives
        every alpha); any other model frame by frame."""
        if not isinstance(self.reward, VideoReward):
            return [self(episode) for episode in episodes]
        scored = []
        for frames in episodes:
            embeddings = self.reward.embed_episode(frames)
            for key, alpha in self.alphas.items():
                values = self.reward.rewards_from_clip_embeddings(embeddings, len(frames), alpha=alpha)
                self.scored[key].extend(values.tolist())
            scored.append(self.reward.rewards_from_clip_embeddings(embeddings, len(frames)))
        return scored


# -- what to inspect -------------------------------------------------------------------------------------


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

        torch_device = resolve_device(device or "auto")
        # The run's dtype where the model runs where it trained (fp16 on a GPU is no choice for a CPU).
        same_device = str(torch_device) == config.reward.device
        model = VLMReward.from_config(config.reward, device=torch_device, dtype=None if same_device else "auto")
    alpha = model.alpha
    variants: dict[str, tuple[str, float]] = {}
    if model.baseline_embedding is not None:
        if alpha != 0.0:
            variants["alpha0"] = ("goal-only reward (α = 0)", 0.0)
        if alpha != 1.0:
            variants["alpha1"] = ("projected reward (α = 1)", 1.0)
    kind = "goal-only " if alpha == 0 else "projected " if alpha == 1 else ""
    return model, variants, f"{kind}VLM reward (α = {alpha:g}, trained on)"


# -- the inspection ---------------------------------------------------------------------------------------


def evaluation_env(config: TrainConfig, seed: int | None = None) -> Any:
    """One env of the run's resolved ``config``, seeded as training's evaluations (``rl.seed`` + 10000) unless
    ``seed`` is given: what inspect and enjoy roll the policy out in."""
    env = config.env
    assert env.render_size is not None and env.episode_length is not None  # a run's config is resolved
    return make_vec_env(
        env.name,
        n_envs=1,
        render_size=env.render_size,
        episode_length=env.episode_length,
        options=env.options,
        seed=config.rl.seed + EVAL_SEED_OFFSET if seed is None else seed,
    )


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
        checkpoint: ``None``: the run's policy (its best, ``checkpoints/best.zip``, else its newest sound
            checkpoint); ``"best"``, ``"latest"`` (the newest sound checkpoint), ``"final"``, a step number, or a
            checkpoint ``.zip`` (:meth:`vlmrm.run.run_dir.RunDir.policy`).
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
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32):
        raise ConfigError(f"--seed must be an integer from 0 to {2**32 - 1}, got {seed!r}.")
    say = progress or (lambda line: logger.info("%s", line))
    started = time.perf_counter()
    run = RunDir(run_dir)
    run.require()
    config = run.config()
    chosen = run.policy(checkpoint)
    for bad, why in chosen.skipped:
        logger.warning("vlmrm: checkpoint %s is unusable (%s); inspecting %s instead", bad, why, chosen.path.name)
    path, step = chosen.path, chosen.step
    run.check_reward_source(
        reward_fn, "from vlmrm.evaluation.inspect_run import inspect_run; inspect_run({run_dir!r}, reward_fn=...)"
    )
    env = config.env
    inner = evaluation_env(config, seed)
    try:
        model = run.load_model(chosen, env=inner)  # before the reward model: a wrong checkpoint fails fast
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
        "run directory": str(run.path),
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
    report = write_report(inspection, run.inspect_dir, meta)
    say(f"wrote {report} in {time.perf_counter() - started:.1f} s")
    return InspectResult(run.inspect_dir, report, inspection, summary_of(inspection, meta))


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
