"""``vlmrm enjoy RUN``: watch a trained policy, as rl-baselines3-zoo's ``enjoy``: its returns, success and a video.

The run's resolved ``config.yaml`` says everything (env, reward, algorithm). The policy is loaded
and checked by :meth:`vlmrm.run.run_dir.RunDir.load_model`; the episodes are run by
:func:`vlmrm.rl.rollout.evaluate` on a :class:`~vlmrm.rl.vec_env.VecVLMReward` scored by the run's
model, seeded as training's evaluations (``rl.seed`` + 10000), so the figures are what an
evaluation during training would have reported. The video shows every step at a viewing size
(``video_size``, 512 px): drawn again at that size from the simulator's state after each step by a
second env of the same kind (:class:`~vlmrm.rl.video.SharpView`; every built-in env can set its state), so a Humanoid
watched from a 224 px run is sharp. An env that cannot set its state (a ``gym:<id>``) has its frames
enlarged from the run's ``render_size`` instead, which the log says.

>>> import numpy as np, tempfile, vlmrm
>>> def redness(frames):
...     return frames[..., 0].mean(axis=(1, 2)) / 255.0
>>> config = vlmrm.config_from_dict({
...     "env": {"name": "cartpole", "episode_length": 20, "render_size": 32},
...     "rl": {"algorithm": "dqn", "total_steps": 40},
...     "logging": {"eval_episodes": 1, "video_freq": 0, "progress_bar": False, "inspect": False}})
>>> run = vlmrm.train(config, run_dir=tempfile.mkdtemp() + "/run", reward_fn=redness).run_dir
>>> watched = enjoy_run(run, episodes=2, video=None, reward_fn=redness)
>>> watched.step, len(watched.evaluation.env_returns), watched.evaluation.success_rate is not None
(40, 2, True)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vlmrm.config import LoggingConfig
from vlmrm.envs import get_env_spec
from vlmrm.errors import CheckpointError, ConfigError
from vlmrm.evaluation.inspect_run import build_reward, evaluation_env
from vlmrm.files import atomic_write
from vlmrm.rl.rollout import EvaluationResult, evaluate
from vlmrm.rl.vec_env import VecVLMReward
from vlmrm.rl.video import SharpView, open_video, video_encoder_problem, video_frame
from vlmrm.run.checkpoints import CheckpointInfo
from vlmrm.run.run_dir import BEST_CHECKPOINT, RunDir

logger = logging.getLogger(__name__)


DEFAULT_VIDEO_SIZE: int = LoggingConfig.model_fields["video_size"].default
"""Pixels of a side of the video's frames: training's (``logging.video_size``), 512."""


@dataclass
class EnjoyResult:
    checkpoint: Path
    step: int | None
    """The checkpoint's step; ``None`` for the best checkpoint or a ``.zip`` given by path."""
    evaluation: EvaluationResult
    """Per-episode env returns, VLM returns and successes (``successes`` is ``None`` without a success flag)."""
    video: Path | None
    env_name: str
    reward_name: str


def find_checkpoint(run: RunDir, checkpoint: str | int | Path | None = None) -> CheckpointInfo:
    """The checkpoint to watch: ``None``, the run's policy (its best, else its newest sound checkpoint:
    :meth:`~vlmrm.run.run_dir.RunDir.policy`); ``final`` (the one ``summary.json`` names, else the newest
    sound one); ``best`` (``checkpoints/best.zip``); a step; or a ``.zip`` path."""
    if checkpoint is None:
        return run.policy()
    if checkpoint == "final":
        return run.checkpoint("final" if run.summary() is not None else "latest")
    if checkpoint == "best" and not (run.checkpoints_dir / BEST_CHECKPOINT).is_file():
        raise CheckpointError(
            f"Run {str(run.path)!r} has no best checkpoint (checkpoints/{BEST_CHECKPOINT}); "
            "use --checkpoint final or a step number."
        )
    if isinstance(checkpoint, str) and checkpoint.isdigit():
        return run.checkpoint(int(checkpoint))
    return run.checkpoint(checkpoint)


def enjoy_run(
    run_dir: str | Path,
    checkpoint: str | int | Path | None = None,
    episodes: int = 5,
    video: str | Path | None = None,
    video_size: int = DEFAULT_VIDEO_SIZE,
    fps: int = 30,
    device: str | None = None,
    seed: int | None = None,
    deterministic: bool = True,
    reward_fn: Any = None,
) -> EnjoyResult:
    """Run a checkpoint of the run in ``run_dir`` for ``episodes`` episodes; write every frame to ``video``.

    Args:
        checkpoint: ``None`` (the run's best policy, else its newest sound checkpoint), ``final`` (the newest
            sound one), ``best``, a step number, or a checkpoint ``.zip``.
        video: an mp4 path, or ``None`` for no video.
        video_size: the video's frame size in pixels: drawn at that size (:class:`SharpView`), or enlarged where
            the env cannot set its state; never shrunk below the run's ``render_size``.
        device: where the run's model scores frames (default: ``auto``).
        seed: the env's seed (default: the run's ``rl.seed`` + 10000, as training's evaluations).
        reward_fn: score with this instead of the run's model (as :func:`vlmrm.train` takes it).
    """
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes <= 0:
        raise ConfigError(f"--episodes must be a positive number of episodes, got {episodes!r}.")
    if isinstance(video_size, bool) or not isinstance(video_size, int) or video_size <= 0:
        raise ConfigError(f"--video-size must be a positive number of pixels, got {video_size!r}.")
    if video is not None and video_encoder_problem() is not None:
        raise ConfigError(f"Cannot write the video {str(video)!r}: {video_encoder_problem()}; or pass --no-video.")
    run = RunDir(run_dir)
    run.require()
    config = run.config()
    run.check_reward_source(
        reward_fn, "from vlmrm.evaluation.enjoy import enjoy_run; enjoy_run({run_dir!r}, reward_fn=...)"
    )
    chosen = find_checkpoint(run, checkpoint)
    path, step = chosen.path, chosen.step
    env = config.env
    inner = evaluation_env(config, seed)
    try:
        model = run.load_model(chosen, env=inner)  # before the reward model: a wrong checkpoint fails fast
        reward, _, _ = build_reward(config, reward_fn, device)
        try:
            venv = VecVLMReward(inner, reward, mode="episode")
            success = get_env_spec(env.name).episode_success
            logger.info("vlmrm: enjoy %s: %d episode(s) of %s, %s", path, episodes, env.name, reward.name)
            if video is None:
                result = evaluate(model, venv, episodes, success, deterministic, record_frames=False)
            else:
                results: list[EvaluationResult] = []
                view = SharpView.attach(inner, config.env, video_size)

                def roll_out_into(tmp: Path) -> None:
                    with open_video(tmp, fps) as add:

                        def sink(episode: int, step: int, frame: np.ndarray, vlm_reward: float) -> None:
                            add(video_frame(frame, view, video_size))

                        results.append(evaluate(model, venv, episodes, success, deterministic, False, sink))

                # A failed rollout leaves no half-written video (and an older one at the path untouched).
                try:
                    atomic_write(Path(video), roll_out_into, tmp_suffix=".mp4")
                finally:
                    if view is not None:
                        view.close()
                [result] = results
        finally:
            reward.close()
    finally:
        inner.close()
    return EnjoyResult(path, step, result, None if video is None else Path(video), env.name, reward.name)


__all__ = ["DEFAULT_VIDEO_SIZE", "EnjoyResult", "enjoy_run", "find_checkpoint"]
