"""Resolve ``device="auto"`` and ``dtype="auto"`` to what this machine runs fastest."""

from __future__ import annotations

import torch

DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
}


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.float32`` -> ``fp32`` (the config's spelling)."""
    return {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, str(dtype))


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else the CPU."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available; use device='cpu' or 'auto'.")
    return resolved


def cpu_supports_bf16() -> bool:
    """True when oneDNN has native bf16 kernels on this CPU (AVX512-BF16/AMX or AVX512 emulation)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - builds without oneDNN
        return False


def cpu_has_amx() -> bool:
    """True when the CPU exposes AMX tiles, the matrix units that make bf16 matmuls fast."""
    try:
        return bool(torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - older torch
        return False


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    """``auto``: fp16 on CUDA, bf16 on a CPU with AMX (and bf16 kernels), else fp32.

    Without AMX, bf16 is slower than fp32 on a CPU even where it is "supported": on a 2-core
    Xeon with AVX512-BF16 but no AMX (torch 2.13), oneDNN's bf16 matmul ran at 175 GFLOP/s
    against MKL's fp32 at 270, and a ViT-B-32 embedded 17.9 images/s in bf16 against 27.7 in
    fp32 (``vlmrm bench``, README "Benchmark"). AMX's bf16 tiles are several times faster than fp32.
    """
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        if device.type == "cuda":
            return torch.float16
        if device.type == "cpu" and cpu_has_amx() and cpu_supports_bf16():
            return torch.bfloat16
        return torch.float32
    try:
        return DTYPES[dtype]
    except KeyError:
        raise ValueError(f"Unknown dtype {dtype!r}; use auto, fp32, bf16 or fp16.") from None
