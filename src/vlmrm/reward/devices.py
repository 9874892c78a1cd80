"""Resolve ``device="auto"`` and ``dtype="auto"`` to what this machine runs fastest.

A device or dtype this machine cannot use is a :class:`~vlmrm.errors.ConfigError` (a
:class:`~vlmrm.errors.DeviceError` for devices) that says what to write instead, so the CLI
prints one line rather than torch's traceback.
"""

from __future__ import annotations

import re

import torch

from vlmrm.device_options import AUTO_DTYPE_RULE, DEVICE_CHOICES, DTYPE_CHOICES
from vlmrm.errors import ConfigError, DeviceError

__all__ = ["AUTO_DTYPE_RULE", "DTYPES", "resolve_device", "resolve_dtype"]

DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
}

_DEVICE = re.compile(r"(cpu|cuda|mps)(?::(\d+))?")


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.float32`` -> ``fp32`` (the config's spelling)."""
    return {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, str(dtype))


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else the CPU; other devices must exist on this machine."""
    if isinstance(device, torch.device):
        check_device_available(device)
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    match = _DEVICE.fullmatch(device) if isinstance(device, str) else None
    if match is None or (match[1] != "cuda" and match[2] is not None):
        raise DeviceError(f"unknown device {device!r}; use {DEVICE_CHOICES}.")
    resolved = torch.device(device)
    check_device_available(resolved)
    return resolved


def check_device_available(device: torch.device) -> None:
    """Raise :class:`DeviceError` when ``device`` does not exist here (no CUDA, too few GPUs, no MPS)."""
    name = str(device)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            why = (
                f"this torch build ({torch.__version__}) has no CUDA support"
                if torch.version.cuda is None
                else "no CUDA GPU is visible (check the driver and CUDA_VISIBLE_DEVICES)"
            )
            raise DeviceError(f"device {name!r} was requested but CUDA is not available: {why}; use cpu or auto.")
        if device.index is not None and device.index >= count:
            visible = "cuda:0" if count == 1 else f"cuda:0 to cuda:{count - 1}"
            raise DeviceError(
                f"device {name!r} was requested but this machine has {count} CUDA "
                f"device{'s' if count > 1 else ''} ({visible}); use one of them, cuda or auto."
            )
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"device {name!r} was requested but MPS (Apple GPU) is not available; use cpu or auto.")


def cpu_supports_bf16() -> bool:
    """True when oneDNN has native bf16 kernels on this CPU (AVX512-BF16/AMX or AVX512 emulation)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - builds without oneDNN
        return False


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    """The dtype to load the model in, for a dtype name (``fp32``, ``bf16``, ``fp16``, ``int8``) or ``auto``.

    ``auto`` is fp16 on CUDA and fp32 elsewhere; on a CPU :func:`vlmrm.reward.dtype_choice.settle_cpu_dtype`
    then times fp32 against bf16 on the loaded model and keeps the faster (:data:`AUTO_DTYPE_RULE`; its
    wording lives in :mod:`vlmrm.device_options` so the CLI help can quote it without importing torch).
    ``int8`` loads in fp32 too, for the same function to quantise; it runs on CPUs only.

    No CPU flag predicts the answer: bf16 ran at 0.64x fp32 on a Xeon with AVX512-BF16 but no AMX,
    at 3x on an AMD Zen 5 with AVX512-BF16 and no AMX, and at 3.5x on a Xeon with AMX.
    """
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPES.values():
            raise ConfigError(f"unsupported dtype {dtype}; use torch.float32, torch.bfloat16 or torch.float16.")
        return dtype
    if dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if dtype == "int8":
        if device.type != "cpu":
            raise ConfigError(
                f"dtype int8 runs on CPUs only (torch's dynamic int8 kernels), not on {device}; "
                "use fp16 or auto there, or --device cpu."
            )
        return torch.float32
    try:
        return DTYPES[dtype]
    except (KeyError, TypeError):  # TypeError: an unhashable value
        raise ConfigError(
            f"unknown dtype {dtype!r}; use {', '.join(DTYPE_CHOICES[:-1])} or {DTYPE_CHOICES[-1]}."
        ) from None
