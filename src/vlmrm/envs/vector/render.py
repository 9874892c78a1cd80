"""What the batched classic-control renderers share: the renderer protocol, the backend rule, and the small
host-to-device step of turning a batch's shapes into integer parameters.

Each env's batched renderer lives in its package (:class:`vlmrm.envs.cartpole.vector.CartPoleFrames`,
:class:`vlmrm.envs.mountaincar.vector.MountainCarFrames`, ...); the drawing primitives they fill on the
device are :mod:`vlmrm.envs.vector.raster`.

>>> choose_backend("auto", torch.device("cpu"))
'pil'
"""

from __future__ import annotations

from typing import Literal, Protocol

import numpy as np
import torch

from vlmrm._moved import moved_names


class FrameRenderer(Protocol):
    """Draws the frames of a batch of simulator states in one call."""

    size: int
    device: torch.device

    def __call__(self, states: np.ndarray) -> torch.Tensor:
        """``(N, ...)`` host states -> ``(N, size, size, 3)`` uint8 frames on :attr:`device`."""
        ...

    def prepare(self, num_envs: int) -> None:
        """Get ready to draw batches of ``num_envs`` frames: capture any CUDA graph now, before training
        starts threads (the rule: :data:`~vlmrm.envs.vector.raster.CAPTURE_ERROR_MODE`)."""
        ...


Backend = Literal["auto", "torch", "pil"]


def choose_backend(backend: Backend, device: torch.device) -> Literal["torch", "pil"]:
    """``auto``: Pillow on the CPU, torch on any other device."""
    if backend not in ("auto", "torch", "pil"):
        raise ValueError(f"backend must be auto, torch or pil, got {backend!r}")
    if backend == "auto":
        return "pil" if device.type == "cpu" else "torch"
    if backend == "pil" and device.type != "cpu":
        raise ValueError(f"the pil backend draws on the host, not on {device}")
    return backend


def choose_device_work(
    requested: bool | None, backend: Literal["torch", "pil"], device: torch.device, what: str
) -> bool:
    """Whether a batched env does ``what`` (``device_geometry``, ``device_state``) on the device: ``None`` means
    where torch draws off the CPU (on a CPU numpy's small arrays are cheaper than torch's); it needs the torch
    backend, since Pillow draws from host arrays."""
    if requested is None:
        return backend == "torch" and device.type != "cpu"
    if requested and backend != "torch":
        raise ValueError(f"{what} needs the torch backend: Pillow draws from host arrays")
    return bool(requested)


def box_array(box: tuple) -> np.ndarray:
    """``(x0, y0, x1, y1)`` of arrays -> ``(N, 4)``."""
    return np.stack(np.broadcast_arrays(*box), axis=1)


def corner_array(points: tuple) -> np.ndarray:
    """``V`` points ``(x, y)`` of arrays -> ``(N, V, 2)``."""
    return np.stack([np.stack(np.broadcast_arrays(*point), axis=1) for point in points], axis=1)


def _column(value: object, like: torch.Tensor) -> torch.Tensor:
    """A tensor as it is, a float as a column like ``like`` (a fill on the device, not an upload)."""
    return value if isinstance(value, torch.Tensor) else torch.full_like(like, float(value))  # type: ignore[arg-type]


def box_tensor(box: tuple, like: torch.Tensor) -> torch.Tensor:
    """:func:`box_array` on the device: ``(x0, y0, x1, y1)`` of ``(N,)`` tensors or floats -> ``(N, 4)``."""
    return torch.stack([_column(value, like) for value in box], dim=1)


def corner_tensor(points: tuple, like: torch.Tensor) -> torch.Tensor:
    """:func:`corner_array` on the device: ``V`` points ``(x, y)`` of tensors or floats -> ``(N, V, 2)``."""
    return torch.stack([torch.stack([_column(v, like) for v in point], dim=1) for point in points], dim=1)


def has_horizontal_edge(vertices: np.ndarray) -> bool:
    """Whether any polygon ``(N, V, 2)`` (integers, on the host) has a horizontal edge."""
    return bool((vertices[:, :, 1] == np.roll(vertices, -1, axis=1)[:, :, 1]).any())


def upload_params(params: np.ndarray, device: torch.device) -> torch.Tensor:
    """One small host-to-device copy of a step's integer shape parameters (not of frames)."""
    return torch.from_numpy(np.ascontiguousarray(params, dtype=np.int64)).to(device, non_blocking=True)


__getattr__ = moved_names(
    __name__,
    {"CartPoleFrames": "vlmrm.envs.cartpole.vector", "MountainCarFrames": "vlmrm.envs.mountaincar.vector"},
)
