"""How fast frames turn into rewards: rendering, the model, the whole pipeline, and the paper's way.

:func:`run_benchmark` measures, in one process, on the same weights and the same env seeds:

``render_only``
    Env steps with random actions and rendering, through the vector env training builds
    (:func:`vlmrm.rl.vec_env_factory.make_vec_env`: ``RenderFrameInInfo`` + ``Monitor``, or with
    ``vectorized`` the env's batched version, drawing all frames in one call on the model's
    device), frames rendered at the model's input size, by the env's ``renderer`` option when
    given (``pil`` / ``torch`` for the batched classic-control envs, ``mujoco`` / ``warp`` for
    the Humanoid). Frames per second.
``e2e_step`` / ``e2e_episode`` / ``e2e_episode_overlap``
    Rewarded env steps per second (env step + render + preprocess + embed + reward) through the
    wrappers training uses (``RenderFrameInInfo`` + :class:`~vlmrm.rl.vec_env.VecVLMReward`)
    with a random policy: per-step scoring; episode-end batches; episode-end batches scored in a
    background thread while the envs keep stepping. Frames of episodes still running when the
    measurement stops are scored inside the timed region, so every frame is paid for.
``embed_only_step`` / ``embed_only_episode`` / ``embed_only_episode_overlap``
    The reward model alone (preprocessing, image encoder, reward), in the chosen dtype, on frames
    rendered in ``render_only``, in exactly the calls the end-to-end row of the same name made in
    the same repeat, from the same kind of thread: per-step mode sends ``n_envs`` frames per call
    (split into ``batch``-sized calls when ``n_envs > batch``); episode mode sends the frames of
    the episodes that ended, at most ``batch`` per call (``VecVLMReward``'s
    ``max_batch_frames``); overlapped episode mode sends what the background scorer coalesced, at
    most ``batch`` per call. Images per second.
``reference``
    The same rewarded steps done the way the paper authors' code does it: fp32 weights (the
    same weights), the env's native render (Gymnasium's own 600x400 CartPole and
    MountainCar; Humanoid at 480x480), resized to the model input with an antialiased bicubic
    tensor resize and centre crop, scored per vector step with nothing overlapped.

What makes the rows comparable, so that ``end_to_end_over_embed_only`` (the best end-to-end
row over its embed-only row) measures the pipeline's overhead and nothing else:

- The same work: the embed-only row replays the end-to-end row's model calls (the same number
  of frames per call, in the same order; ``frames_per_call`` in the JSON), on frames of the same
  size, so both pay for the same batch shapes and the same number of images.
- The same threads: each call is replayed from the kind of thread it was made from. The
  overlapped row's scorer calls the model from a background thread (all but the calls that score
  the running episodes' frames when the measurement stops, made from the caller's); so does its
  replay (``calls_off_caller_thread`` in the JSON). This matters: glibc's malloc serves threads other
  than the main one from their own arenas, where the model's large temporary tensors cost far
  fewer page faults. On a 2-core machine, CLIP ViT-B/32 on CPU made about 2.5 times as many
  minor page faults and ran 10-30% slower from the main thread than from another thread; with
  ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` raised the difference disappeared.
- The same warm-up: before the first repeat every end-to-end row runs once untimed, so every
  batch shape either row times has been through the model before (one-off kernel selection and
  allocations are in neither).
- The same conditions: each repeat runs every measurement once, in turn (``render_only``, then
  each end-to-end row directly followed by its embed-only row, then ``reference``), so a slow
  period of a shared machine hits all rows; each ratio is computed from the two measurements of
  the same repeat, and the reported figure is the median of the per-repeat ratios.

The end-to-end row does everything its embed-only row does and more, so
``end_to_end_over_embed_only`` (and ``end_to_end_over_min_render_embed``) can exceed 1 only by
noise: the machine got faster or less loaded between the two measurements. When a ratio's median
exceeds 1 by more than the spread of its per-repeat values, :func:`ratio_note` explains this in
a note next to the load average at start and end. Figures of rows are medians over repeats.

Memory: the peak resident set size of each measurement, read with
``resource.getrusage(RUSAGE_SELF).ru_maxrss`` after resetting the kernel's high-water mark by
writing ``5`` to ``/proc/self/clear_refs`` (Linux). Where the reset is not possible the figure
is the process's peak so far. Worker processes of ``vec_env="subproc"`` are not counted.
"""

from __future__ import annotations

import copy
import gc
import itertools
import logging
import os
import platform
import resource
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from vlmrm.config import CompileMode, compile_problem
from vlmrm.envs import get_env_spec, make_env
from vlmrm.envs.registry import parse_options
from vlmrm.envs.vector.vec_env import FrameBatchSource
from vlmrm.errors import ConfigError
from vlmrm.memory import check_fits
from vlmrm.reward import VLMReward
from vlmrm.reward.contract import RewardFunction, RewardFunctionWrapper
from vlmrm.reward.devices import resolve_device, resolve_dtype
from vlmrm.reward.dtype_choice import DtypeChoice, settle_cpu_dtype
from vlmrm.reward.encoders import load_encoder
from vlmrm.rl.vec_env import FrameBatch, VecVLMReward, frames_for, score_frames, take_step_frames
from vlmrm.rl.vec_env_factory import make_vec_env
from vlmrm.rl.wrappers import RenderFrameInInfo

logger = logging.getLogger(__name__)

NATIVE_RENDER_SIZE = 480
"""Square render size of the reference path for envs without a Gymnasium renderer of their own (Humanoid)."""

END_TO_END: dict[str, tuple[Literal["step", "episode"], bool]] = {
    "e2e_step": ("step", False),
    "e2e_episode": ("episode", False),
    "e2e_episode_overlap": ("episode", True),
}
"""The end-to-end rows: ``VecVLMReward``'s ``mode`` and ``overlap``."""

EMBED_ONLY: dict[str, str] = {name: "embed_only_" + name.removeprefix("e2e_") for name in END_TO_END}
"""The embed-only row that replays each end-to-end row's model calls."""

DESCRIPTIONS: dict[str, tuple[str, str]] = {
    "render_only": ("render only: random actions, env step + render at the model's size", "frames/s"),
    "e2e_step": ("end to end, per-step scoring (one batch per vector step)", "env steps/s"),
    "embed_only_step": ("embed only: the model on pre-rendered frames, in the calls e2e_step made", "images/s"),
    "e2e_episode": ("end to end, episode-end batches", "env steps/s"),
    "embed_only_episode": ("embed only: the model on pre-rendered frames, in the calls e2e_episode made", "images/s"),
    "e2e_episode_overlap": ("end to end, episode-end batches scored while the envs step", "env steps/s"),
    "embed_only_episode_overlap": (
        "embed only: the model on pre-rendered frames, in the calls e2e_episode_overlap made",
        "images/s",
    ),
    "reference": ("reference style: fp32, native render size + bicubic resize, per step", "env steps/s"),
}

SPEEDUP = "end_to_end_speedup_vs_reference_style"
OVER_EMBED = "end_to_end_over_embed_only"
OVER_MIN_RENDER_EMBED = "end_to_end_over_min_render_embed"

BOUNDED_BY_ONE: dict[str, str] = {
    OVER_EMBED: "the end-to-end row makes the same model calls as its embed-only row and renders too",
    OVER_MIN_RENDER_EMBED: "the end-to-end row renders the frames render_only renders and makes the model calls "
    "of its embed-only row",
}
"""Ratios that cannot exceed 1 but by noise, and why."""


MAX_ENVS = 4096
"""The most envs ``vlmrm bench`` builds (``--n-envs``)."""


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
    vectorized: bool = False
    """The env's batched version: all envs stepped, and their frames drawn, in one call each."""
    renderer: str | None = None
    """The env's ``renderer`` option (``None``: its default)."""
    compile: CompileMode = "none"
    """``reward.compile`` of the measured model (the reference row stays eager, as the paper's code)."""
    options: dict[str, Any] = field(default_factory=dict)
    """Other env options (``--option physics=warp``), checked as a config's ``env.options`` are."""

    def __post_init__(self) -> None:
        if self.compile not in get_args(CompileMode):
            raise ConfigError(f"--compile must be one of {', '.join(get_args(CompileMode))}, got {self.compile!r}.")
        problem = compile_problem(self.compile, self.model, self.device, option="--compile")
        if problem is not None:
            raise ConfigError(problem)
        for name in ("n_envs", "batch", "steps", "repeats", "episode_length"):
            value = getattr(self, name)
            if value is not None and value <= 0:  # episode_length None: the env's default
                flag = "--" + name.replace("_", "-")
                raise ConfigError(f"{name} ({flag}) must be 1 or more, got {value}.")
        if self.n_envs > MAX_ENVS:
            raise ConfigError(
                f"n_envs (--n-envs) must be at most {MAX_ENVS}, got {self.n_envs}: every env is a simulator of its "
                "own, built and warmed up before measuring."
            )
        if self.vectorized and self.vec_env != "dummy":
            raise ConfigError("--vectorized steps all envs in this process; --vec-env subproc does not apply.")

    def env_options(self) -> dict[str, Any]:
        """The env options the measured envs are built with (checked against the env's options)."""
        spec = get_env_spec(self.env)
        if "renderer" in self.options:
            raise ConfigError("--option renderer=...: give the renderer as --renderer.")
        options = {**self.options, **({} if self.renderer is None else {"renderer": self.renderer})}
        if self.renderer is not None and "renderer" not in spec.option_names():
            raise ConfigError(f"--renderer: {spec.name} has no renderer option (it draws one way).")
        parsed = parse_options(spec, options, prefix="--")
        if getattr(parsed, "renderer", None) in ("torch", "warp") and not self.vectorized:
            raise ConfigError(f"--renderer {self.renderer} draws all envs' frames in one call: add --vectorized.")
        return options


@dataclass
class Phase:
    """One measurement over all repeats."""

    name: str
    description: str
    unit: str
    rates: list[float] = field(default_factory=list)
    peak_rss_mib: list[float] = field(default_factory=list)
    frames_per_call: list[list[list[int]]] | None = None
    """Per repeat, the model calls as ``[frames, consecutive calls]`` runs, in call order; None without a model."""
    calls_off_caller_thread: list[int] | None = None
    """Per repeat, how many of those calls were made from a thread other than the benchmark's."""

    @property
    def median(self) -> float:
        return float(np.median(self.rates)) if self.rates else float("nan")


@dataclass(frozen=True)
class Ratio:
    """A ratio of two rows' rates, one value per repeat from the two measurements of that repeat."""

    numerator: str
    denominator: str
    per_repeat: tuple[float, ...]

    @classmethod
    def of(cls, numerator: str, denominator: str, above: Sequence[float], below: Sequence[float]) -> Ratio:
        """``above / below`` repeat by repeat: the rates of rows ``numerator`` and ``denominator``."""
        if len(above) != len(below) or not above:
            raise ValueError(f"{numerator} and {denominator} need the same number of repeats, at least one")
        return cls(numerator, denominator, tuple(float(a) / float(b) for a, b in zip(above, below, strict=True)))

    @property
    def median(self) -> float:
        return float(np.median(self.per_repeat))

    @property
    def spread(self) -> float:
        """Largest minus smallest per-repeat value: how much the repeats disagree."""
        return max(self.per_repeat) - min(self.per_repeat)

    def to_dict(self) -> dict[str, Any]:
        return {
            "compares": f"{self.numerator} / {self.denominator}",
            "median": self.median,
            "per_repeat": list(self.per_repeat),
            "spread": self.spread,
        }


def ratio_note(
    label: str, ratio: Ratio, why: str, load_start: list[float] | None, load_end: list[float] | None
) -> str | None:
    """A one-line note when ``ratio``, which ``why`` says cannot exceed 1, does by more than its spread."""
    if not ratio.median - 1.0 > ratio.spread:
        return None
    return (
        f"note: {label} is {ratio.median:.2f}, above 1 by more than the spread of its repeats "
        f"({ratio.spread:.2f}), though {why}: only noise can do that, the machine being faster or less loaded "
        f"while {ratio.numerator} ran than while {ratio.denominator} ran (load average "
        f"{one_minute_load(load_start)} at start, {one_minute_load(load_end)} at end). "
        "Rerun on an idle machine, or with more --steps and --repeats."
    )


def one_minute_load(load_average: list[float] | None) -> str:
    """The 1-minute load average, or '-' where the platform has none."""
    return f"{load_average[0]:.2f}" if load_average else "-"


@dataclass
class BenchResult:
    settings: BenchSettings
    frames: str
    """How frames were drawn and where they were (see :func:`describe_frames`)."""
    model_name: str
    dtype: str
    """``fp32``, ``bf16``, ``fp16`` or ``int8``."""
    dtype_choice: DtypeChoice
    """Why the model runs in ``dtype`` (for ``auto``: the timings it chose by)."""
    image_size: int
    reference_frame_shape: tuple[int, ...] | None
    phases: dict[str, Phase]
    best_end_to_end: str
    ratios: dict[str, Ratio]
    """``SPEEDUP`` (absent without the reference row), ``OVER_EMBED`` and ``OVER_MIN_RENDER_EMBED``."""
    notes: list[str]
    memory: dict[str, Any]
    machine: dict[str, Any]
    flops_per_image: float | None = None
    """The model's image tower, FLOPs per image (torch's flop counter); ``None`` where it cannot count."""
    attention: str | None = None
    """The attention implementation of a ``transformers`` model (``sdpa``, ``eager``); ``None`` for others."""

    @property
    def embed_tflops(self) -> float | None:
        """TFLOP/s of the best end-to-end mode's embed-only row."""
        if self.flops_per_image is None:
            return None
        return self.flops_per_image * self.phases[EMBED_ONLY[self.best_end_to_end]].median / 1e12

    @property
    def fraction_of_peak(self) -> float | None:
        """:attr:`embed_tflops` over the device's dense 16-bit peak, where the device and dtype are known."""
        peak = dense_peak_tflops(self.machine.get("device_name"), self.dtype)
        tflops = self.embed_tflops
        return None if peak is None or tflops is None else tflops / peak

    @property
    def speedup_vs_reference(self) -> float | None:
        return self.ratios[SPEEDUP].median if SPEEDUP in self.ratios else None

    @property
    def end_to_end_over_embed_only(self) -> float:
        return self.ratios[OVER_EMBED].median

    @property
    def end_to_end_over_min_render_embed(self) -> float:
        return self.ratios[OVER_MIN_RENDER_EMBED].median

    def to_dict(self) -> dict[str, Any]:
        return {
            "settings": asdict(self.settings),
            "frames": self.frames,
            "model": {
                "name": self.model_name,
                "dtype": self.dtype,
                "dtype_reason": self.dtype_choice.reason,
                "dtype_seconds_per_image": self.dtype_choice.seconds,
                "image_size": self.image_size,
                "compile": self.settings.compile,
                "attention": self.attention,
                "flops_per_image": self.flops_per_image,
                "embed_tflops": self.embed_tflops,
                "fraction_of_dense_peak": self.fraction_of_peak,
            },
            "reference_frame_shape": list(self.reference_frame_shape) if self.reference_frame_shape else None,
            "phases": {
                name: {
                    "description": phase.description,
                    "unit": phase.unit,
                    "median": phase.median,
                    "rates": phase.rates,
                    "peak_rss_mib": phase.peak_rss_mib,
                    "frames_per_call": phase.frames_per_call,
                    "calls_off_caller_thread": phase.calls_off_caller_thread,
                }
                for name, phase in self.phases.items()
            },
            "best_end_to_end": self.best_end_to_end,
            SPEEDUP: self.speedup_vs_reference,
            OVER_EMBED: self.end_to_end_over_embed_only,
            OVER_MIN_RENDER_EMBED: self.end_to_end_over_min_render_embed,
            "ratios": {name: ratio.to_dict() for name, ratio in self.ratios.items()},
            "notes": self.notes,
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


def load_rewards(
    model: str, prompt: str, dtype: str, device: str, batch: int, compile: CompileMode = "none"
) -> tuple[VLMReward, VLMReward, DtypeChoice]:
    """``(fast, reference, choice)``: the model in ``dtype``, the same weights in fp32, and why ``fast`` has its dtype.

    ``auto`` and ``int8`` on a CPU are settled as training settles them
    (:func:`~vlmrm.reward.dtype_choice.settle_cpu_dtype`: timed, or read from the cache), on the eager
    model; ``fast`` is then compiled as ``compile`` says (``reference`` never is).
    """
    torch_device = resolve_device(device)
    reference = VLMReward.from_pretrained(model, [prompt], dtype="fp32", device=torch_device, batch_size=batch)
    load_dtype = resolve_dtype(dtype, torch_device)
    encoder = reference.encoder
    if load_dtype != torch.float32:
        try:  # the same weights, copied into the fast dtype
            encoder = encoder.with_dtype(load_dtype)
        except NotImplementedError:  # an encoder without a torch model to copy: load it again
            encoder = load_encoder(model, torch_device, load_dtype)
    encoder, choice = settle_cpu_dtype(encoder, dtype)
    if encoder is reference.encoder and compile == "none":
        return reference, reference, choice
    return VLMReward(encoder, [prompt], batch_size=batch, compile=compile), reference, choice


def make_reference_vec_env(env: str, n_envs: int, episode_length: int, seed: int) -> VecEnv:
    """The paper authors' setting: the env's native renderer, envs stepped one after another."""

    def builder(index: int) -> Callable[[], gym.Env]:
        def build() -> gym.Env:
            gym_id = get_env_spec(env).gym_id  # the env's reference render is Gymnasium's own (600x400)
            if gym_id is not None:
                # Gymnasium draws these with pygame; with no display SDL prints an XDG_RUNTIME_DIR error.
                os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
                inner = gym.make(gym_id, render_mode="rgb_array", max_episode_steps=episode_length)
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


def describe_frames(venv: VecEnv) -> str:
    """How ``venv`` draws frames: ``batched, <renderer> on <device>`` or ``one env at a time, host arrays``."""
    source = venv.unwrapped
    if isinstance(source, FrameBatchSource):
        renderer = getattr(getattr(source, "sim", None), "renderer_name", "batched renderer")
        return f"batched, {renderer} on {source.frame_device}"
    return "one env at a time, host arrays"


def synchronize(frames: object) -> None:
    """Wait for the device that holds ``frames`` (a CUDA tensor) to finish drawing them: timings count the work."""
    if isinstance(frames, torch.Tensor) and frames.is_cuda:
        torch.cuda.synchronize(frames.device)


def time_render(venv: VecEnv, steps: int, seed: int, keep: int) -> tuple[float, list[FrameBatch]]:
    """Seconds for ``steps`` random vector steps with rendering; the first ``keep`` frames (arrays or tensors)."""
    venv.seed(seed)
    venv.reset()
    actions = RandomActions(venv, seed)
    kept: list[FrameBatch] = []
    frames: FrameBatch | None = None
    start = time.perf_counter()
    for _ in range(steps):
        _, _, _, infos = venv.step(actions())
        frames = take_step_frames(venv, infos)
        for frame in frames[: max(0, keep - len(kept))]:
            kept.append(frame)
    synchronize(frames)
    return time.perf_counter() - start, kept


def stack_frames(frames: Sequence[FrameBatch]) -> FrameBatch:
    """Frames kept by :func:`time_render`, stacked where they are."""
    items: list[Any] = list(frames)
    return torch.stack(items) if isinstance(items[0], torch.Tensor) else np.stack(items)


class ModelCalls(RewardFunctionWrapper):
    """A reward function that records each call: how many frames, and whether from another thread.

    "Another thread" is any thread but the one that made this recorder (the background scorer's,
    for ``VecVLMReward(overlap=True)``).
    """

    def __init__(self, reward_fn: RewardFunction):
        super().__init__(reward_fn)
        self.calls: list[tuple[int, bool]] = []
        self._home = threading.get_ident()

    def __call__(self, frames: FrameBatch) -> np.ndarray:
        # list.append is atomic: safe from the background scorer's thread.
        self.calls.append((len(frames), threading.get_ident() != self._home))
        return self.reward_fn(frames)

    @property
    def sizes(self) -> list[int]:
        return [frames for frames, _ in self.calls]

    @property
    def off_home_thread(self) -> int:
        return sum(other for _, other in self.calls)


def run_lengths(sizes: Sequence[int]) -> list[list[int]]:
    """``[4, 4, 4, 9]`` -> ``[[4, 3], [9, 1]]``: call sizes as ``[frames, consecutive calls]``, in order."""
    runs: list[list[int]] = []
    for size in sizes:
        if runs and runs[-1][0] == size:
            runs[-1][1] += 1
        else:
            runs.append([int(size), 1])
    return runs


def time_calls(reward_fn: RewardFunction, pool: FrameBatch, calls: Sequence[tuple[int, bool]]) -> float:
    """Seconds to make ``calls`` (frames, from another thread) on frames of ``pool`` (slices, no copies).

    Calls marked ``True`` are made from one worker thread, the others from the calling thread, in
    order, as :class:`ModelCalls` recorded them (see the module docstring for why the thread matters).
    """
    if max((frames for frames, _ in calls), default=0) > len(pool):
        raise ValueError(f"a call of {max(frames for frames, _ in calls)} frames needs that many frames in the pool")
    chunks: list[tuple[FrameBatch, bool]] = []
    offset = 0
    for count, other in calls:
        if offset + count > len(pool):
            offset = 0
        chunks.append((pool[offset : offset + count], other))
        offset += count

    def score(group: list[FrameBatch]) -> None:
        for chunk in group:
            reward_fn(chunk)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="vlmrm-bench-replay") as worker:
        worker.submit(lambda: None).result()  # start the thread before timing, as VecVLMReward starts its scorer
        start = time.perf_counter()
        for other, group in itertools.groupby(chunks, key=lambda chunk: chunk[1]):
            frames = [chunk for chunk, _ in group]
            if other:
                worker.submit(score, frames).result()
            else:
                score(frames)
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
    """What the figures were measured on; ``load_average`` at the start (run_benchmark adds the end)."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "load_average": _load_average(),
    }


# -- the benchmark --------------------------------------------------------------------------------


DENSE_PEAK_TFLOPS: dict[str, float] = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0}
"""Dense bf16/fp16 tensor-core peaks (vendors' datasheets, SXM parts, no sparsity), by a name the device's contains."""


def dense_peak_tflops(device_name: str | None, dtype: str) -> float | None:
    """The dense 16-bit peak of a known GPU for a bf16 or fp16 model; ``None`` for other devices or dtypes."""
    if device_name is None or dtype not in ("bf16", "fp16"):
        return None
    return next((peak for name, peak in DENSE_PEAK_TFLOPS.items() if name in device_name), None)


def image_flops(reward: VLMReward) -> float | None:
    """FLOPs of the image tower for one image, counted by :class:`torch.utils.flop_counter.FlopCounterMode` on one
    forward pass (matrix products, convolutions and attention); ``None`` for a model it cannot count."""
    from torch.utils.flop_counter import FlopCounterMode

    encoder = reward.encoder
    size = encoder.image_spec.size
    pixels = torch.zeros((1, 3, size, size), device=encoder.device, dtype=encoder.dtype)
    counter = FlopCounterMode(display=False)
    try:
        with torch.inference_mode(), counter:
            encoder.encode_images(pixels)
    except Exception as exc:  # a backend the counter does not follow costs the figure, not the bench
        logger.info("vlmrm: bench: the model's FLOPs could not be counted (%s)", exc)
        return None
    total = counter.get_total_flops()
    return float(total) if total > 0 else None


@dataclass(frozen=True)
class ScalePoint:
    """One number of envs of a scale sweep (``vlmrm bench --n-envs 16,64,256``): the medians of its rows."""

    n_envs: int
    render: float
    """render_only, frames/s."""
    embed: float
    """The embed-only row of the best end-to-end mode, images/s."""
    end_to_end: float
    """The best end-to-end mode, rewarded env steps/s (one frame per env step)."""
    best_end_to_end: str

    @classmethod
    def of(cls, result: BenchResult) -> ScalePoint:
        phases = result.phases
        return cls(
            result.settings.n_envs,
            phases["render_only"].median,
            phases[EMBED_ONLY[result.best_end_to_end]].median,
            phases[result.best_end_to_end].median,
            result.best_end_to_end,
        )

    @property
    def over_min_render_embed(self) -> float:
        return self.end_to_end / min(self.render, self.embed)


def plot_scale(points: list[ScalePoint], path: str | Path, title: str) -> Path:
    """A PNG of render-only, embed-only and best end-to-end rates against the number of envs (log axes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = [point.n_envs for point in points]
    figure, axes = plt.subplots(figsize=(6.4, 4.2), constrained_layout=True)
    for values, label, marker in (
        ([p.render for p in points], "render only (frames/s)", "o"),
        ([p.embed for p in points], "embed only (images/s)", "s"),
        ([p.end_to_end for p in points], "end to end, best mode (env steps/s)", "^"),
    ):
        axes.plot(envs, values, marker=marker, label=label)
    axes.set_xscale("log", base=2)
    axes.set_yscale("log")
    axes.set_xticks(envs, [str(n) for n in envs])
    axes.set_xlabel("envs")
    axes.set_ylabel("per second (median of repeats)")
    axes.set_title(title, fontsize=9)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    path = Path(path)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def run_benchmark(settings: BenchSettings) -> BenchResult:
    """Warm up, then run every measurement ``settings.repeats`` times; see the module docstring.

    What it is doing is logged at INFO level (``vlmrm bench`` shows it on stderr).
    """
    machine = _machine()
    env = settings.env.lower()
    spec = get_env_spec(env)
    episode_length = settings.episode_length or spec.default_episode_length
    prompt = spec.default_prompts().target[0]
    logger.info(f"loading {settings.model} ...")
    fast, reference, choice = load_rewards(
        settings.model, prompt, settings.dtype, settings.device, settings.batch, settings.compile
    )
    machine["device_name"] = (
        torch.cuda.get_device_name(fast.device) if fast.device.type == "cuda" else machine["processor"]
    )
    size = fast.image_size
    n, steps = settings.n_envs, settings.steps
    held = min(steps, episode_length)  # episode mode keeps each episode's frames until it ends
    check_fits(
        n * held * size * size * 3,
        f"--n-envs {n}: episode-end scoring keeps up to {held} frames per env: {n} envs × {held} frames × "
        f"{size}×{size}×3 bytes",
        "Use fewer --n-envs, --steps or --episode-length.",
    )
    frames_per_run = n * steps

    options = settings.env_options()

    def vec_env() -> VecEnv:
        return make_vec_env(
            env,
            n,
            size,
            episode_length,
            options,
            seed=settings.seed,
            kind=settings.vec_env,
            vectorized=settings.vectorized,
            device=fast.device,
        )

    def rewarded_steps(name: str) -> tuple[float, ModelCalls]:
        """Seconds for the end-to-end row ``name``, and the model calls it made."""
        mode, overlap = END_TO_END[name]
        calls = ModelCalls(fast)
        wrapped = VecVLMReward(vec_env(), calls, mode=mode, overlap=overlap, max_batch_frames=settings.batch)
        try:
            seconds = time_rewarded_steps(wrapped, steps, settings.seed)
        finally:
            wrapped.close()
        if sum(calls.sizes) != frames_per_run:  # the embed-only row would not replay the same work
            raise RuntimeError(f"{name} scored {sum(calls.sizes)} frames, expected {frames_per_run}")
        return seconds, calls

    # Warm up: each end-to-end row once, untimed, so every batch shape that it and its embed-only
    # row will time has been through the model (one-off kernel selection, allocations).
    logger.info("warming up: each end-to-end row once, untimed")
    for name in END_TO_END:
        rewarded_steps(name)
    reference_shape = None
    if settings.reference:
        ref_env = make_reference_vec_env(env, n, episode_length, settings.seed)
        _, ref_frames = time_render(ref_env, 1, settings.seed, n)
        ref_env.close()
        reference_shape = tuple(ref_frames[0].shape)
        reference(np.stack(ref_frames))  # the reference row's one batch shape: n frames
    peak_after_load = _maxrss_mib()

    names = ["render_only"]
    for name in END_TO_END:
        names += [name, EMBED_ONLY[name]]
    names += ["reference"] if settings.reference else []
    phases = {name: Phase(name, *DESCRIPTIONS[name]) for name in names}
    pool: FrameBatch | None = None
    probe = vec_env()
    frames_label = describe_frames(probe)
    probe.close()
    logger.info(f"frames: {frames_label}")

    def record(name: str, seconds: float, work: int, peak: PeakRSS, calls: ModelCalls | None = None) -> None:
        phase = phases[name]
        phase.rates.append(work / seconds)
        phase.peak_rss_mib.append(round(peak.mib, 1))
        if calls is not None:
            phase.frames_per_call = [*(phase.frames_per_call or []), run_lengths(calls.sizes)]
            phase.calls_off_caller_thread = [*(phase.calls_off_caller_thread or []), calls.off_home_thread]
        logger.info(f"  {name:<28} {work / seconds:9.2f} {phase.unit}")

    reset_ok = True
    for repeat in range(settings.repeats):
        logger.info(f"repeat {repeat + 1}/{settings.repeats}")
        with PeakRSS() as peak:
            venv = vec_env()
            seconds, kept = time_render(venv, steps, settings.seed, keep=min(frames_per_run, 2 * settings.batch))
            venv.close()
        reset_ok &= peak.reset
        record("render_only", seconds, frames_per_run, peak)
        if pool is None:
            # Every call is at most min(batch, frames_per_run) frames: the pool holds it, where the model wants it.
            pool = frames_for(fast, stack_frames(kept))
        del kept
        for name in END_TO_END:
            with PeakRSS() as peak:
                seconds, calls = rewarded_steps(name)
            record(name, seconds, frames_per_run, peak, calls)
            replay = ModelCalls(fast)
            with PeakRSS() as peak:
                seconds = time_calls(replay, pool, calls.calls)
            record(EMBED_ONLY[name], seconds, frames_per_run, peak, replay)
        if settings.reference:
            with PeakRSS() as peak:
                calls = ModelCalls(reference)
                wrapped = VecVLMReward(
                    make_reference_vec_env(env, n, episode_length, settings.seed),
                    calls,
                    max_batch_frames=settings.batch,
                )
                seconds = time_rewarded_steps(wrapped, steps, settings.seed)
                wrapped.close()
                del wrapped
            record("reference", seconds, frames_per_run, peak, calls)

    best = max(END_TO_END, key=lambda name: phases[name].median)
    best_rates, embed = phases[best].rates, phases[EMBED_ONLY[best]]
    ratios = {}
    if settings.reference:
        ratios[SPEEDUP] = Ratio.of(best, "reference", best_rates, phases["reference"].rates)
    ratios[OVER_EMBED] = Ratio.of(best, embed.name, best_rates, embed.rates)
    slower = np.minimum(phases["render_only"].rates, embed.rates)
    ratios[OVER_MIN_RENDER_EMBED] = Ratio.of(best, f"min(render_only, {embed.name})", best_rates, slower.tolist())
    machine["load_average_end"] = _load_average()
    notes = [
        note
        for label, why in BOUNDED_BY_ONE.items()
        if (note := ratio_note(label, ratios[label], why, machine["load_average"], machine["load_average_end"]))
    ]
    return BenchResult(
        settings=settings,
        frames=frames_label,
        model_name=fast.encoder.name,
        dtype=choice.dtype,
        dtype_choice=choice,
        image_size=size,
        reference_frame_shape=reference_shape,
        phases=phases,
        best_end_to_end=best,
        ratios=ratios,
        notes=notes,
        memory={
            "method": "getrusage(RUSAGE_SELF).ru_maxrss per measurement, after resetting the peak via "
            "/proc/self/clear_refs"
            if reset_ok
            else "getrusage(RUSAGE_SELF).ru_maxrss: the process peak so far (could not reset the peak)",
            "peak_rss_after_load_mib": round(peak_after_load, 1),
            "ru_maxrss_end_mib": round(_maxrss_mib(), 1),
        },
        machine=machine,
        flops_per_image=image_flops(fast),
        attention=getattr(fast.encoder, "attention", None),
    )
