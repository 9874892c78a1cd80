"""What CartPole and MountainCar share: square frames drawn supersampled, one geometry for one state or a
batch, the ``renderer`` option of their batched versions, and a state that can be read and set.

Gymnasium draws these scenes with fixed pixel sizes on a 600x400 canvas; a CLIP model then
sees them resized and centre-cropped, which cuts off the track ends. Here each scene is drawn
directly at ``render_size`` x ``render_size`` with every length scaled to the frame, so the
whole track is visible and no resize is needed. Drawing is 2x supersampled for anti-aliasing.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from PIL import Image
from pydantic import Field

from vlmrm.envs.spec import EnvOptions, SimState
from vlmrm.errors import ConfigError

SUPERSAMPLE = 2
"""Frames are drawn at twice their size and box-filtered down (anti-aliasing)."""


def finish_frame(image: Image.Image, size: int) -> np.ndarray:
    """The supersampled ``image`` box-filtered down to a ``(size, size, 3)`` uint8 frame."""
    return np.asarray(image.resize((size, size), Image.Resampling.BOX), dtype=np.uint8)


# -- geometry: where each shape lies on the supersampled canvas, for one state or a batch ------------------
#
# One truth for both renderers: each env's Pillow renderer and its batched torch renderer draw the
# shapes its geometry function places, from the same float64 arithmetic, on the same static
# background, so their frames agree pixel for pixel.

Number = Any
"""A float, an array of them (one per state) or a float64 torch tensor of them: the geometry is written once
for all three."""
Point = tuple[Number, Number]


class _NumpyTrig:
    """``math``'s names for numpy's functions, for arrays."""

    cos, sin, atan = np.cos, np.sin, np.arctan


class _TorchTrig:
    """``math``'s names for torch's functions, for tensors (on any device)."""

    def __init__(self, torch: Any):
        self.cos, self.sin, self.atan = torch.cos, torch.sin, torch.atan


def trig(value: Number) -> Any:
    """``math`` for one float (a frame costs no ufunc overhead), numpy for arrays, torch for tensors.

    The sums and products around them are IEEE float64 operations, the same in all three; the functions
    themselves may differ in the last bit (measured on this project's CPUs: torch's float64 ``sin``/``cos``
    differ from libm's in about 0.2 % of arguments, by one unit in the last place; numpy's ``arctan``
    differs from ``math.atan`` as often), far below the truncation to integer pixels the shapes go through
    (``tests/test_vector_envs.py`` checks the integers agree)."""
    if isinstance(value, float):
        return math
    torch = sys.modules.get("torch")  # never imported here: the specs stay light
    if torch is not None and isinstance(value, torch.Tensor):
        return _TorchTrig(torch)
    return _NumpyTrig


ClassicRenderer = Literal["auto", "pil", "torch"]
RENDERER_HELP = (
    "How a vectorized env (env.vectorized: true) draws its frames: pil (Pillow, on the host), torch (on the "
    "reward model's device), auto (Pillow on the CPU, torch on a GPU). The same pictures either way; a single "
    "env always uses Pillow."
)


class ClassicOptions(EnvOptions):
    """The options every classic-control env has."""

    renderer: ClassicRenderer = Field(default="auto", description=RENDERER_HELP)


def refuse_device_renderer(options: ClassicOptions) -> None:
    """A single env draws with Pillow: ``renderer: torch`` needs the batched env (a :class:`ConfigError`)."""
    if options.renderer == "torch":
        raise ConfigError(
            "renderer: torch draws a batch of frames on the reward model's device, which needs the vectorized env "
            "(env.vectorized: true); a single env draws with Pillow (renderer: auto or pil)."
        )


class StateVector:
    """:class:`~vlmrm.envs.spec.StatefulEnv` for a classic-control env whose state is ``self.state``."""

    state: Any
    STATE_SIZE: int

    def get_sim_state(self) -> SimState:
        return {"state": np.array(self.state, dtype=np.float64)}

    def set_sim_state(self, state: Mapping[str, Any]) -> None:
        values = np.asarray(state["state"], dtype=np.float64).ravel()
        if values.shape != (self.STATE_SIZE,):
            raise ValueError(f"expected a state of {self.STATE_SIZE} numbers, got shape {values.shape}")
        self.state = values
