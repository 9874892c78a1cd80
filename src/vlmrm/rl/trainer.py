"""``train(config)``: one run, from a config to a run directory.

A run directory holds::

    config.yaml        the resolved config
    logs/              TensorBoard events and progress.csv (rollout/vlm_return, rollout/env_return, eval/...)
    checkpoints/       step_<N>.zip policy checkpoints, written atomically
    videos/            step_<N>.mp4 of the policy
    summary.json       evaluation returns, success rate, steps/s
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import CallbackList
from stable_baselines3.common.logger import configure

from vlmrm.config import TrainConfig, dump_config
from vlmrm.envs import get_env_spec
from vlmrm.errors import RunDirectoryError
from vlmrm.reward.backend import build_reward, make_reward_fn
from vlmrm.rl.algorithms import is_off_policy, make_algorithm
from vlmrm.rl.callbacks import (
    CheckpointCallback,
    EpisodeReturnLogger,
    EvaluationCallback,
    ProgressBar,
    StopAtTotalSteps,
)
from vlmrm.rl.checkpoints import atomic_write, checkpoint_path, prune_checkpoints
from vlmrm.rl.vec_env import VecVLMReward
from vlmrm.rl.vec_env_factory import make_vec_env

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    run_dir: Path
    summary: dict[str, Any]


def default_run_dir(config: TrainConfig) -> Path:
    return Path("runs") / f"{config.env.name}-{datetime.now():%Y%m%d-%H%M%S}"


def check_run_dir_free(path: Path, overwrite: bool) -> None:
    """Refuse a run directory that holds a run, unless ``overwrite``."""
    if path.exists() and any(path.iterdir()) and not overwrite:
        raise RunDirectoryError(
            f"Run directory {str(path)!r} already exists and is not empty. Choose another "
            "logging.run_dir, pass --overwrite to delete it and start over, or --resume to continue it."
        )


def prepare_run_dir(path: Path, overwrite: bool) -> Path:
    """Create the run directory; never silently reuse one that holds a run."""
    check_run_dir_free(path, overwrite)
    if path.exists():
        shutil.rmtree(path)
    for sub in ("logs", "checkpoints", "videos"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    return path


def use_episode_end_batching(config: TrainConfig) -> bool:
    choice = config.reward.episode_end_batching
    return is_off_policy(config.rl.algorithm) if choice is None else choice


def save_checkpoint(model: BaseAlgorithm, run_dir: Path, step: int, keep: int) -> Path:
    path = checkpoint_path(run_dir / "checkpoints", step)
    atomic_write(path, lambda tmp: model.save(tmp))
    prune_checkpoints(run_dir / "checkpoints", keep)
    return path


def train(config: TrainConfig, run_dir: str | Path | None = None, overwrite: bool = False) -> TrainResult:
    """Train a policy on the VLM reward described by ``config``; return the run directory and summary."""
    spec = get_env_spec(config.env.name)
    path = Path(run_dir or config.logging.run_dir or default_run_dir(config))
    check_run_dir_free(path, overwrite)
    torch.manual_seed(config.rl.seed)

    reward = build_reward(config.reward)
    reward_fn = make_reward_fn(config.reward, reward)
    render_size = config.env.render_size or reward.image_size
    episode_length = config.env.episode_length or spec.default_episode_length
    episode_batching = use_episode_end_batching(config)
    env_kwargs = dict(
        name=config.env.name, render_size=render_size, episode_length=episode_length, options=config.env.options
    )
    venv = VecVLMReward(
        make_vec_env(n_envs=config.rl.n_envs, seed=config.rl.seed, kind=config.rl.vec_env, **env_kwargs),
        reward_fn,
        mode="episode" if episode_batching else "step",
    )
    eval_env = VecVLMReward(make_vec_env(n_envs=1, seed=config.rl.seed + 10_000, **env_kwargs), reward_fn, mode="step")
    device = "cpu" if reward.device.type == "cpu" else "auto"
    model = make_algorithm(config.rl, venv, episode_batching, episode_length, device=device)
    # Everything that can be wrong with the config has been found: only now touch the disk.
    prepare_run_dir(path, overwrite)
    (path / "config.yaml").write_text(dump_config(config))
    model.set_logger(configure(str(path / "logs"), ["tensorboard", "csv"]))

    log = config.logging
    evaluation = EvaluationCallback(
        eval_env, log.eval_freq, log.eval_episodes, log.video_freq, path / "videos", spec.episode_success
    )
    callbacks: list[Any] = [
        EpisodeReturnLogger(),
        evaluation,
        StopAtTotalSteps(config.rl.total_steps),
        CheckpointCallback(log.checkpoint_freq, lambda step: save_checkpoint(model, path, step, log.keep_checkpoints)),
    ]
    if log.progress_bar:
        callbacks.insert(0, ProgressBar(config.rl.total_steps))

    logger.info(
        "vlmrm: training %s on %s with %s; run directory %s",
        config.rl.algorithm,
        config.env.name,
        reward.encoder.name,
        path,
    )
    start = time.perf_counter()
    try:
        model.learn(total_timesteps=config.rl.total_steps, callback=CallbackList(callbacks))
        learn_seconds = time.perf_counter() - start
        final_checkpoint = save_checkpoint(model, path, model.num_timesteps, log.keep_checkpoints)
        final = evaluation.run(model.num_timesteps, log.eval_episodes, video=True)
    finally:
        venv.close()
        eval_env.close()

    summary: dict[str, Any] = {
        "env": config.env.name,
        "model": reward.encoder.name,
        "algorithm": config.rl.algorithm,
        "total_steps": int(model.num_timesteps),
        "train_seconds": round(learn_seconds, 3),
        "steps_per_second": round(model.num_timesteps / learn_seconds, 2),
        "episode_end_batching": episode_batching,
        "eval_episodes": len(final.env_returns),
        "eval_env_return": final.mean_env_return,
        "eval_vlm_return": final.mean_vlm_return,
        "eval_success_rate": final.success_rate,
        "eval_history": evaluation.history,
        "final_checkpoint": str(final_checkpoint.relative_to(path)),
    }
    (path / "summary.json").write_text(json.dumps(summary, indent=2))
    return TrainResult(path, summary)
