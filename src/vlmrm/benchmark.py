"""How fast frames turn into rewards: rendering, the model, the whole pipeline, and the paper's way.

:func:`run_benchmark` measures, in one process, on the same weights and the same env seeds:

``render_only``
    Env steps with random actions and rendering, through the vector env training builds
    (:func:`vlmrm.rl.vec_env_factory.make_vec_env`: ``RenderFrameInInfo`` + ``Monitor``), frames
    rendered at the model's input size. Frames per second.
``embed_only``
    The reward model (preprocessing, image encoder, reward) on frames rendered in
    ``render_only``, in batches of ``batch``, in the chosen dtype. Images per second.
``e2e_step`` / ``e2e_episode`` / ``e2e_episode_overlap``
    Rewarded env steps per second (env step + render + preprocess + embed + reward) through the
    wrappers training uses (``RenderFrameInInfo`` + :class:`~vlmrm.rl.vec_env.VecVLMReward`)
    with a random policy: per-step scoring; episode-end batches; episode-end batches scored in a
    background thread while the envs keep stepping. Frames of episodes still running when the
    measurement stops are scored inside the timed region, so every frame is paid for.
``reference``
    The same rewarded steps done the way the paper authors' code does it: fp32 weights (the
    same weights), the env's native render (Gymnasium's own 600x400 CartPole and
    MountainCar; Humanoid at 480x480), resized to the model input with an antialiased bicubic
    tensor resize and centre crop, scored per vector step with nothing overlapped.

Each repeat runs every measurement once, in that order, so slow periods of a shared machine hit
all of them; figures are medians over repeats, and ratios are medians of per-repeat ratios.

Memory: the peak resident set size of each measurement, read with
``resource.getrusage(RUSAGE_SELF).ru_maxrss`` after resetting the kernel's high-water mark by
writing ``5`` to ``/proc/self/clear_refs`` (Linux). Where the reset is not possible the figure
is the process's peak so far. Worker processes of ``vec_env="subproc"`` are not counted.
"""

from __future__ import annotations

import copy
import gc
import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from vlmrm.envs import get_env_spec, make_env
from vlmrm.reward import VLMReward
from vlmrm.reward.devices import resolve_device, resolve_dtype
from vlmrm.reward.encoders import TransformersEncoder
from vlmrm.rl.vec_env import VecVLMReward, score_frames
from vlmrm.rl.vec_env_factory import make_vec_env
from vlmrm.rl.wrappers import FRAME_KEY, RenderFrameInInfo

PROMPTS: dict[str, str] = {
    "cartpole": "pole vertically upright on top of the cart",
    "mountaincar": "a car at the peak of the mountain, next to the yellow flag",
    "humanoid": "a humanoid robot kneeling",
}

NATIVE_RENDER_SIZE = 480
"""Square render size of the reference path for envs without a Gymnasium renderer of their own (Humanoid)."""

GYMNASIUM_NATIVE: dict[str, str] = {"cartpole": "CartPole-v1", "mountaincar": "MountainCarContinuous-v0"}
"""Envs whose reference render is Gymnasium's own (600x400)."""

END_TO_END = ("e2e_step", "e2e_episode", "e2e_episode_overlap")

DESCRIPTIONS: dict[str, tuple[str, str]] = {
    "render_only": ("render only: random actions, env step + render at the model's size", "frames/s"),
    "embed_only": ("embed only: preprocess + model + reward on pre-rendered frames", "images/s"),
    "e2e_step": ("end to end, per-step scoring (one batch per vector step)", "env steps/s"),
    "e2e_episode": ("end to end, episode-end batches", "env steps/s"),
    "e2e_episode_overlap": ("end to end, episode-end batches scored while the envs step", "env steps/s"),
    "reference": ("reference style: fp32, native render size + bicubic resize, per step", "env steps/s"),
}


@dataclass
class BenchSettings:
    """What to measure; see :func:`run_benchmark`."""

    env: str
    model: str
    dtype: str = "auto"
    device: str = "auto"
    n_envs: int = 4
    batch: int = 64
    steps: int = 100
    repeats: int = 3
    episode_length: int | None = None
    vec_env: Literal["dummy", "subproc"] = "dummy"
    seed: int = 0
    reference: bool = True

    def __post_init__(self) -> None:
        for name in ("n_envs", "batch", "steps", "repeats"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


@dataclass
class Phase:
    """One measurement over all repeats."""

    name: str
    description: str
    unit: str
    rates: list[float] = field(default_factory=list)
    peak_rss_mib: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return float(np.median(self.rates)) if self.rates else float("nan")


@dataclass
class BenchResult:
    settings: BenchSettings
    model_name: str
    dtype: str
    image_size: int
    reference_frame_shape: tuple[int, ...] | None
    phases: dict[str, Phase]
    best_end_to_end: str
    speedup_vs_reference: float | None
    end_to_end_over_embed_only: float
    end_to_end_over_min_render_embed: float
    memory: dict[str, Any]
    machine: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "settings": asdict(self.settings),
            "model": {"name": self.model_name, "dtype": self.dtype, "image_size": self.image_size},
            "reference_frame_shape": list(self.reference_frame_shape) if self.reference_frame_shape else None,
            "phases": {
                name: {
                    "description": phase.description,
                    "unit": phase.unit,
                    "median": phase.median,
                    "rates": phase.rates,
                    "peak_rss_mib": phase.peak_rss_mib,
                }
                for name, phase in self.phases.items()
            },
            "best_end_to_end": self.best_end_to_end,
            "end_to_end_speedup_vs_reference_style": self.speedup_vs_reference,
            "end_to_end_over_embed_only": self.end_to_end_over_embed_only,
            "end_to_end_over_min_render_embed": self.end_to_end_over_min_render_embed,
            "memory": self.memory,
            "machine": self.machine,
        }


# -- memory ---------------------------------------------------------------------------------------


def _maxrss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


class PeakRSS:
    """``with PeakRSS() as peak: ...`` then ``peak.mib``: the peak resident set size during the block."""

    def __enter__(self) -> PeakRSS:
        gc.collect()
        self.reset = reset_peak_rss()
        self.mib = float("nan")
        return self

    def __exit__(self, *exc: object) -> None:
        self.mib = _maxrss_mib()


# -- building blocks ------------------------------------------------------------------------------


def load_rewards(model: str, prompt: str, dtype: str, device: str, batch: int) -> tuple[VLMReward, VLMReward]:
    """``(fast, reference)``: the model in ``dtype`` and the same weights in fp32."""
    torch_device = resolve_device(device)
    reference = VLMReward.from_pretrained(model, [prompt], dtype="fp32", device=torch_device, batch_size=batch)
    fast_dtype = resolve_dtype(dtype, torch_device)
    if fast_dtype == torch.float32:
        return reference, reference
    encoder = reference.encoder
    if isinstance(encoder, TransformersEncoder):
        fast_encoder = TransformersEncoder(
            copy.deepcopy(encoder.model),
            encoder.tokenizer,
            encoder.image_spec,
            encoder.family,
            torch_device,
            fast_dtype,
            encoder.name,
        )
        fast = VLMReward(fast_encoder, [prompt], batch_size=batch)
    else:  # other backends load the same pretrained weights again
        fast = VLMReward.from_pretrained(model, [prompt], dtype=fast_dtype, device=torch_device, batch_size=batch)
    return fast, reference


def make_reference_vec_env(env: str, n_envs: int, episode_length: int, seed: int) -> VecEnv:
    """The paper authors' setting: the env's native renderer, envs stepped one after another."""

    def builder(index: int) -> Callable[[], gym.Env]:
        def build() -> gym.Env:
            if env in GYMNASIUM_NATIVE:
                # Gymnasium draws these with pygame; with no display SDL prints an XDG_RUNTIME_DIR error.
                os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
                inner = gym.make(GYMNASIUM_NATIVE[env], render_mode="rgb_array", max_episode_steps=episode_length)
            else:
                inner = make_env(env, render_size=NATIVE_RENDER_SIZE, episode_length=episode_length)
            wrapped = RenderFrameInInfo(Monitor(inner))
            wrapped.action_space.seed(seed + index)
            return wrapped

        return build

    venv = DummyVecEnv([builder(i) for i in range(n_envs)])
    venv.seed(seed)
    return venv


class RandomActions:
    """Reproducible random actions for all envs of a vector env."""

    def __init__(self, venv: VecEnv, seed: int):
        self.space = copy.deepcopy(venv.action_space)
        self.space.seed(seed)
        self.n = venv.num_envs

    def __call__(self) -> np.ndarray:
        return np.stack([self.space.sample() for _ in range(self.n)])


def time_render(venv: VecEnv, steps: int, seed: int, keep: int) -> tuple[float, list[np.ndarray]]:
    """Seconds for ``steps`` random vector steps with rendering; the first ``keep`` frames."""
    venv.seed(seed)
    venv.reset()
    actions = RandomActions(venv, seed)
    kept: list[np.ndarray] = []
    start = time.perf_counter()
    for _ in range(steps):
        _, _, _, infos = venv.step(actions())
        for info in infos:
            frame = info.pop(FRAME_KEY)
            if len(kept) < keep:
                kept.append(frame)
    return time.perf_counter() - start, kept


def time_embed(reward: VLMReward, frames: np.ndarray, images: int, batch: int) -> float:
    """Seconds to score ``images`` images, ``batch`` at a time, cycling through ``frames``."""
    start = time.perf_counter()
    done = 0
    while done < images:
        count = min(batch, images - done)
        offset = done % len(frames)
        chunk = frames[offset : offset + count]
        if len(chunk) < count:
            chunk = np.concatenate([chunk, frames[: count - len(chunk)]])
        reward(chunk)
        done += count
    return time.perf_counter() - start


def time_rewarded_steps(venv: VecVLMReward, steps: int, seed: int) -> float:
    """Seconds for ``steps`` random rewarded vector steps, including the scoring of every rendered frame."""
    venv.venv.seed(seed)
    venv.reset()
    actions = RandomActions(venv, seed)
    start = time.perf_counter()
    for _ in range(steps):
        venv.step(actions())
    if venv.mode == "episode":
        venv.drain()
        leftover = [frame for episode in venv.running_episode_frames() for frame in episode]
        score_frames(venv.reward_fn, leftover, venv.max_batch_frames)
    return time.perf_counter() - start


def _load_average() -> list[float] | None:
    """The 1, 5 and 15-minute load averages, or None where the platform has none."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def _machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "load_average": _load_average(),
    }


# -- the benchmark --------------------------------------------------------------------------------


def run_benchmark(settings: BenchSettings, log: Callable[[str], None] | None = None) -> BenchResult:
    """Run every measurement ``settings.repeats`` times; see the module docstring."""
    log = log or (lambda message: None)
    machine = _machine()
    env = settings.env.lower()
    spec = get_env_spec(env)
    episode_length = settings.episode_length or spec.default_episode_length
    prompt = PROMPTS.get(env, f"a picture of {env}")
    log(f"loading {settings.model} ...")
    fast, reference = load_rewards(settings.model, prompt, settings.dtype, settings.device, settings.batch)
    size = fast.image_size
    n, steps = settings.n_envs, settings.steps
    frames_per_run = n * steps

    def vec_env() -> VecEnv:
        return make_vec_env(env, n, size, episode_length, seed=settings.seed, kind=settings.vec_env)

    # Warm up: one-off kernel selection for the batch shapes used, and a first frame for shapes.
    _, warm_frames = time_render(vec_env(), 1, settings.seed, n)
    warm = np.stack(warm_frames)
    fast(np.concatenate([warm] * (settings.batch // n + 1))[: settings.batch])
    fast(warm)
    reference_shape = None
    if settings.reference:
        ref_env = make_reference_vec_env(env, n, episode_length, settings.seed)
        _, ref_frames = time_render(ref_env, 1, settings.seed, n)
        ref_env.close()
        reference_shape = tuple(ref_frames[0].shape)
        reference(np.stack(ref_frames))
    peak_after_load = _maxrss_mib()

    names = ["render_only", "embed_only", *END_TO_END] + (["reference"] if settings.reference else [])
    phases = {name: Phase(name, *DESCRIPTIONS[name]) for name in names}
    pool: np.ndarray | None = None

    def record(name: str, seconds: float, work: int, peak: PeakRSS) -> None:
        phases[name].rates.append(work / seconds)
        phases[name].peak_rss_mib.append(round(peak.mib, 1))
        log(f"  {name:<20} {work / seconds:9.2f} {phases[name].unit}")

    reset_ok = True
    for repeat in range(settings.repeats):
        log(f"repeat {repeat + 1}/{settings.repeats}")
        with PeakRSS() as peak:
            venv = vec_env()
            seconds, kept = time_render(venv, steps, settings.seed, keep=min(frames_per_run, 2 * settings.batch))
            venv.close()
        reset_ok &= peak.reset
        record("render_only", seconds, frames_per_run, peak)
        if pool is None:
            pool = np.stack(kept)
        del kept
        with PeakRSS() as peak:
            seconds = time_embed(fast, pool, frames_per_run, settings.batch)
        record("embed_only", seconds, frames_per_run, peak)
        for name in END_TO_END:
            mode = "step" if name == "e2e_step" else "episode"
            with PeakRSS() as peak:
                wrapped = VecVLMReward(vec_env(), fast, mode=mode, overlap=name == "e2e_episode_overlap")
                seconds = time_rewarded_steps(wrapped, steps, settings.seed)
                wrapped.close()
                del wrapped
            record(name, seconds, frames_per_run, peak)
        if settings.reference:
            with PeakRSS() as peak:
                wrapped = VecVLMReward(make_reference_vec_env(env, n, episode_length, settings.seed), reference)
                seconds = time_rewarded_steps(wrapped, steps, settings.seed)
                wrapped.close()
                del wrapped
            record("reference", seconds, frames_per_run, peak)

    best = max(END_TO_END, key=lambda name: phases[name].median)
    best_rates = np.asarray(phases[best].rates)

    def ratio(denominator: np.ndarray) -> float:
        return float(np.median(best_rates / denominator))

    render_rates = np.asarray(phases["render_only"].rates)
    embed_rates = np.asarray(phases["embed_only"].rates)
    machine["load_average_end"] = _load_average()
    return BenchResult(
        settings=settings,
        model_name=fast.encoder.name,
        dtype=str(fast.dtype).removeprefix("torch."),
        image_size=size,
        reference_frame_shape=reference_shape,
        phases=phases,
        best_end_to_end=best,
        speedup_vs_reference=ratio(np.asarray(phases["reference"].rates)) if settings.reference else None,
        end_to_end_over_embed_only=ratio(embed_rates),
        end_to_end_over_min_render_embed=ratio(np.minimum(render_rates, embed_rates)),
        memory={
            "method": "getrusage(RUSAGE_SELF).ru_maxrss per measurement, after resetting the peak via "
            "/proc/self/clear_refs"
            if reset_ok
            else "getrusage(RUSAGE_SELF).ru_maxrss: the process peak so far (could not reset the peak)",
            "peak_rss_after_load_mib": round(peak_after_load, 1),
            "ru_maxrss_end_mib": round(_maxrss_mib(), 1),
        },
        machine=machine,
    )
