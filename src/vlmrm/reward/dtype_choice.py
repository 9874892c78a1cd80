"""On a CPU, run the reward model in the dtype that is fastest here, found by timing it once.

``dtype="auto"`` on a CPU times the loaded fp32 model against a bf16 copy (where torch has bf16
kernels for this CPU) on one small batch of images, about a second, and keeps bf16 only when it
runs at least :data:`MIN_SPEEDUP` times as fast as fp32: a lower precision has to pay for the
rounding it adds. No CPU flag predicts the answer (bf16 ran at 0.64x fp32 on a Xeon with AVX512-BF16 and no
AMX, 3x on a Zen 5 with AVX512-BF16 and no AMX, 3.5x on a Xeon with AMX), so it is measured.

``dtype="int8"`` quantises the linear layers of both towers (and the projections) to int8 with
torch's dynamic quantisation, :func:`torch.ao.quantization.quantize_dynamic`: int8 weights,
activations quantised per batch, int8 matrix products, float32 everywhere else. torch 2.10+
deprecates that API in favour of the separate ``torchao`` package, but it is still there and
works in torch 2.13; vlmrm uses it to avoid a new dependency, and says so when it is gone. The
weights are packed for each quantisation engine torch has here (``x86``, ``onednn``; they differ
by 1.5x on an AMX Xeon) and each packing is timed against fp32 in the same way. int8 is accepted
only when the fastest one runs at least :data:`MIN_SPEEDUP` times as fast as fp32; elsewhere it is a
:class:`~vlmrm.errors.ConfigError`. ``auto`` never picks int8: it changes the rewards (slightly),
not only the arithmetic.

A measurement is remembered in ``cpu_dtypes.json`` in the cache folder (:func:`cache_dir`), keyed
by the CPU model (with the flags that matter), the torch version and the model architecture, so
later runs load the model and convert it without timing anything. Delete the file to measure again.

The call site is one line after loading: ``encoder, choice = settle_cpu_dtype(encoder, dtype)``.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import math
import os
import platform
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from vlmrm.errors import ConfigError
from vlmrm.reward.devices import cpu_supports_bf16, dtype_name
from vlmrm.reward.encoders import ImageTextEncoder

__all__ = [
    "MIN_SPEEDUP",
    "DtypeChoice",
    "cache_dir",
    "cpu_identity",
    "quantize_int8",
    "settle_cpu_dtype",
    "time_candidates",
]

logger = logging.getLogger(__name__)

MIN_SPEEDUP = 1.1
"""A lower precision is chosen (``auto``) or accepted (``int8``) where it runs at least this much faster than fp32."""

TIMING_BATCH = 2
"""Images per timed call: a small batch, so that the measurement stays about a second for a ViT-B."""
TIMING_BUDGET_S = 1.0
MIN_ROUNDS, MAX_ROUNDS = 3, 10
CACHE_FILE = "cpu_dtypes.json"
CACHE_VERSION = 1
INT8_ENGINES = ("x86", "onednn")
"""torch's quantisation engines for x86 CPUs (fbgemm is ``x86``'s older name); those this build has are timed.
Elsewhere (ARM) ``qnnpack``, the only one there."""
CPU_FLAGS = (
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)
"""The CPU flags that decide how fast bf16 and int8 run; part of the cache key (a VM may hide the model name)."""

Measure = Callable[[Mapping[str, ImageTextEncoder]], dict[str, float]]
"""Seconds per image of each named candidate encoder (:func:`time_candidates`; tests pass a stub)."""


@dataclass(frozen=True)
class DtypeChoice:
    """What an encoder runs in and why; ``seconds`` per image of each timed candidate, empty if none was."""

    dtype: str
    """``fp32``, ``bf16``, ``fp16`` or ``int8`` (then ``engine`` says whose kernels)."""
    reason: str
    seconds: dict[str, float] = field(default_factory=dict)
    cached: bool = False
    """The timings come from the cache (:func:`cache_dir`), not from this run."""
    engine: str | None = None

    def describe(self) -> str:
        """One line: the dtype and why, e.g. ``bf16: 3.40x as fast as fp32 on this CPU (timed now)``."""
        return f"{self.dtype}: {self.reason}"


def settle_cpu_dtype(
    encoder: ImageTextEncoder,
    requested: str | torch.dtype,
    *,
    measure: Measure | None = None,
    cache: Path | None = None,
) -> tuple[ImageTextEncoder, DtypeChoice]:
    """The encoder to use for ``requested`` and why: on a CPU, ``auto`` and ``int8`` are decided here.

    ``encoder`` is the model as loaded (fp32 on a CPU for ``auto`` and ``int8``, see
    :func:`~vlmrm.reward.devices.resolve_dtype`); the returned encoder may be it, or a converted
    copy. Anything else is returned as it is. ``measure`` times candidates (default:
    :func:`time_candidates`), ``cache`` is the cache folder (default: :func:`cache_dir`).
    """
    current = dtype_name(encoder.dtype)
    if encoder.device.type != "cpu" or requested not in ("auto", "int8"):
        reason = f"auto on {encoder.device.type}" if requested == "auto" else "as requested"
        return encoder, DtypeChoice(current, reason)
    module = _module(encoder)
    if requested == "int8":
        return _settle_int8(encoder, module, measure or time_candidates, cache or cache_dir())
    if encoder.dtype != torch.float32:
        return encoder, DtypeChoice(current, "as loaded")
    if module is None:
        return encoder, DtypeChoice(current, f"{type(encoder).__name__} has no torch model to convert")
    if not cpu_supports_bf16():
        return encoder, _logged(DtypeChoice("fp32", "torch has no bf16 kernels for this CPU"))
    key = _cache_key(module, "auto")
    seconds = _recall(cache or cache_dir(), key, {"fp32", "bf16"})
    cached = seconds is not None
    bf16: ImageTextEncoder | None = None
    if seconds is None:
        bf16 = _in_dtype(encoder, module, torch.bfloat16)
        seconds = (measure or time_candidates)({"fp32": encoder, "bf16": bf16})
        _remember(cache or cache_dir(), key, seconds, encoder.name)
    speedup = seconds["fp32"] / seconds["bf16"]
    when = "from the cache" if cached else "timed now"
    if speedup >= MIN_SPEEDUP:
        choice = DtypeChoice("bf16", f"{speedup:.2f}x as fast as fp32 on this CPU ({when})", seconds, cached)
        chosen = bf16 if bf16 is not None else _in_dtype(encoder, module, torch.bfloat16)
        return chosen, _logged(choice)
    why = f"bf16 ran at {speedup:.2f}x fp32 on this CPU, below the {MIN_SPEEDUP:.2f}x it must reach ({when})"
    return encoder, _logged(DtypeChoice("fp32", why, seconds, cached))


def _settle_int8(
    encoder: ImageTextEncoder, module: torch.nn.Module | None, measure: Measure, cache: Path
) -> tuple[ImageTextEncoder, DtypeChoice]:
    if module is None or encoder.dtype != torch.float32:
        raise ConfigError(f"dtype int8 needs a torch model in fp32; {encoder.name} is not one. Use fp32 or auto.")
    key = _cache_key(module, "int8")
    engines = [engine for engine in INT8_ENGINES if engine in torch.backends.quantized.supported_engines]
    engines = engines or ["qnnpack"]
    seconds = _recall(cache, key, {"fp32", *engines})
    cached = seconds is not None
    quantized: dict[str, ImageTextEncoder] = {}
    if seconds is None:
        quantized = {engine: quantize_int8(encoder, engine) for engine in engines}
        seconds = measure({"fp32": encoder, **quantized})
        _remember(cache, key, seconds, encoder.name)
    engine = min(engines, key=seconds.__getitem__)
    speedup = seconds["fp32"] / seconds[engine]
    when = f"from the cache, {cache / CACHE_FILE}" if cached else "timed now"
    if speedup < MIN_SPEEDUP:
        raise ConfigError(
            f"dtype int8 is not faster than fp32 on this CPU: {speedup:.2f}x fp32 ({engine} kernels, {when}), "
            f"below the {MIN_SPEEDUP:.2f}x it must reach; use fp32, or auto (bf16 where that is faster)."
        )
    when = "from the cache" if cached else "timed now"
    choice = DtypeChoice(
        "int8", f"{speedup:.2f}x as fast as fp32 on this CPU, {engine} kernels ({when})", seconds, cached, engine
    )
    chosen = quantized[engine] if engine in quantized else quantize_int8(encoder, engine)
    return chosen, _logged(choice)


def _logged(choice: DtypeChoice) -> DtypeChoice:
    logger.info("vlmrm: reward model dtype %s", choice.describe())
    return choice


# -- converting an encoder ------------------------------------------------------------------------


def _module(encoder: ImageTextEncoder) -> torch.nn.Module | None:
    """The encoder's torch model (``model`` of the transformers and open_clip encoders), if it has one."""
    module = getattr(encoder, "model", None)
    return module if isinstance(module, torch.nn.Module) else None


def _in_dtype(encoder: ImageTextEncoder, module: torch.nn.Module, dtype: torch.dtype) -> ImageTextEncoder:
    """A copy of ``encoder`` whose model is in ``dtype`` (``encoder`` is left as it is)."""
    converted = copy.copy(encoder)
    converted.model = copy.deepcopy(module).to(dtype=dtype)  # type: ignore[attr-defined]
    converted.dtype = dtype
    return converted


@contextlib.contextmanager
def _quantized_engine(engine: str) -> Iterator[None]:
    previous = torch.backends.quantized.engine
    torch.backends.quantized.engine = engine
    try:
        yield
    finally:
        torch.backends.quantized.engine = previous


def quantize_int8(encoder: ImageTextEncoder, engine: str = "x86") -> ImageTextEncoder:
    """A copy of ``encoder`` (fp32, on the CPU) whose linear layers are dynamically quantised to int8.

    The weights are packed for ``engine`` (one of ``torch.backends.quantized.supported_engines``);
    the packing decides which kernels run, whatever the engine is set to later.
    """
    module = _module(encoder)
    if module is None or encoder.dtype != torch.float32 or encoder.device.type != "cpu":
        raise ConfigError(f"dtype int8 needs a torch model in fp32 on a CPU; {encoder.name} is not one.")
    try:
        from torch.ao.quantization import quantize_dynamic
    except ImportError:  # pragma: no cover - a torch that has dropped it
        raise ConfigError(
            f"dtype int8 needs torch.ao.quantization.quantize_dynamic, which torch {torch.__version__} no longer "
            "has; use fp32, or auto (bf16 where that is faster)."
        ) from None
    with warnings.catch_warnings(), _quantized_engine(engine):
        # Deprecated in favour of torchao since torch 2.10; still the one dependency-free way here.
        warnings.filterwarnings("ignore", message=r"torch\.ao\.quantization is deprecated", category=Warning)
        warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor", category=Warning)
        model = quantize_dynamic(copy.deepcopy(module), {torch.nn.Linear}, dtype=torch.qint8, inplace=True)
    quantized = copy.copy(encoder)
    quantized.model = model  # type: ignore[attr-defined]
    return quantized


# -- timing ---------------------------------------------------------------------------------------


def time_candidates(
    candidates: Mapping[str, ImageTextEncoder], budget_s: float = TIMING_BUDGET_S, batch: int = TIMING_BATCH
) -> dict[str, float]:
    """Seconds per image of each candidate, embedding the same ``batch`` random images.

    Every candidate embeds once untimed (one-off kernel selection), then once per round, in turn,
    so that a busy spell of a shared machine slows all of them; a candidate's figure is its fastest
    round, the one least disturbed. Rounds run until ``budget_s`` is spent, at least
    :data:`MIN_ROUNDS` and at most :data:`MAX_ROUNDS`.
    """
    first = next(iter(candidates.values()))
    size = first.image_spec.size
    pixels = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
    inputs = {name: pixels.to(device=enc.device, dtype=enc.dtype) for name, enc in candidates.items()}
    start = time.perf_counter()
    for name, encoder in candidates.items():
        encoder.encode_images(inputs[name])
    best = dict.fromkeys(candidates, math.inf)
    rounds = 0
    while rounds < MIN_ROUNDS or (rounds < MAX_ROUNDS and time.perf_counter() - start < budget_s):
        for name, encoder in candidates.items():
            began = time.perf_counter()
            encoder.encode_images(inputs[name])
            best[name] = min(best[name], time.perf_counter() - began)
        rounds += 1
    logger.debug("timed %s in %d rounds, %.1f s", ", ".join(candidates), rounds, time.perf_counter() - start)
    return {name: seconds / batch for name, seconds in best.items()}


# -- the cache ------------------------------------------------------------------------------------


def cache_dir() -> Path:
    """Where timings are remembered: ``$VLMRM_CACHE_DIR``, else ``$XDG_CACHE_HOME/vlmrm``, else ``~/.cache/vlmrm``."""
    override = os.environ.get("VLMRM_CACHE_DIR")
    if override:
        return Path(override).expanduser()
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base).expanduser() if base else Path.home() / ".cache") / "vlmrm"


def cpu_identity() -> str:
    """The CPU model and the flags that decide bf16 and int8 speed: ``<model name> (family F model M) <flags>``."""
    fields: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            name, _, value = line.partition(":")
            if not name.strip():
                break  # the first processor's block is enough
            fields.setdefault(name.strip(), value.strip())
    model = fields.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in fields:
        model += f" (family {fields['cpu family']} model {fields.get('model', '?')})"
    flags = set(fields.get("flags", "").split())
    return " ".join([model, *(flag for flag in CPU_FLAGS if flag in flags)])


def _architecture(module: torch.nn.Module) -> str:
    """The model's class and a digest of its parameters' names and shapes: one value per architecture."""
    digest = hashlib.sha256()
    for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
        digest.update(f"{name}:{tuple(tensor.shape)};".encode())
    return f"{type(module).__name__} {digest.hexdigest()[:16]}"


def _cache_key(module: torch.nn.Module, question: str) -> str:
    return f"{question} | {cpu_identity()} | torch {torch.__version__} | {_architecture(module)}"


def _read_cache(folder: Path) -> dict[str, Any]:
    path = folder / CACHE_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        logger.warning("vlmrm: ignoring the unreadable dtype cache %s (%s); it will be rewritten", path, exc)
        return {}
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION or not isinstance(data.get("entries"), dict):
        return {}
    return data["entries"]


def _recall(folder: Path, key: str, candidates: set[str]) -> dict[str, float] | None:
    """The remembered seconds per image of exactly ``candidates``, or None."""
    entry = _read_cache(folder).get(key)
    seconds = entry.get("seconds") if isinstance(entry, dict) else None
    if not isinstance(seconds, dict) or set(seconds) != candidates:
        return None
    if not all(isinstance(value, (int, float)) and value > 0 for value in seconds.values()):
        return None
    return {str(name): float(value) for name, value in seconds.items()}


def _remember(folder: Path, key: str, seconds: dict[str, float], model: str) -> None:
    """Add one measurement to the cache file, written atomically; a cache that cannot be written is only logged."""
    entries = _read_cache(folder)
    entries[key] = {"seconds": seconds, "model": model, "measured": datetime.now(UTC).isoformat()}
    text = json.dumps({"version": CACHE_VERSION, "entries": entries}, indent=1, sort_keys=True) + "\n"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=f".{CACHE_FILE}.", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
            os.replace(temporary, folder / CACHE_FILE)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as exc:
        logger.warning("vlmrm: could not save the dtype timing in %s (%s); the next run times it again", folder, exc)
