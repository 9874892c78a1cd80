"""Whether MuJoCo Warp can render here, and which Humanoid renderer the ``renderer`` option picks.

Kept apart from the renderer itself (:mod:`vlmrm.envs.humanoid.warp_renderer`) so that the env's options
can ask (``env.vectorized: auto``) without importing the renderer, which imports the options.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import torch

from vlmrm.errors import RenderBackendError

INSTALL_HINT = "pip install 'vlmrm[warp]' (warp-lang and mujoco-warp)"
__all__ = ["INSTALL_HINT", "init_warp", "resolve_renderer", "warp_problem"]


def warp_problem(device: torch.device) -> str | None:
    """Why MuJoCo Warp cannot render on ``device`` here, or ``None`` when it can (an NVIDIA GPU with CUDA)."""
    # The device first: with the model on a CPU, installing Warp would not help.
    if device.type != "cuda":
        return f"MuJoCo Warp renders on an NVIDIA GPU, and the frames go to the reward model's device, {device}"
    missing = [name for name in ("warp", "mujoco_warp") if importlib.util.find_spec(name) is None]
    if missing:
        return f"{' and '.join(missing)} not installed ({INSTALL_HINT})"
    wp = init_warp()
    if not wp.is_cuda_available():
        return "Warp finds no CUDA driver (an NVIDIA GPU and driver are needed; see docs/gpu.md)"
    return None


def init_warp() -> Any:
    """Warp, initialised without its banner and kernel-load lines on stdout (its INFO log level; warnings stay)."""
    import warp as wp

    wp.config.log_level = max(wp.config.log_level, wp.LOG_WARNING)
    wp.init()
    return wp


def resolve_renderer(choice: str, device: torch.device, log: Any = None) -> str:
    """``mujoco`` or ``warp`` for the ``renderer`` option ``choice`` with frames wanted on ``device``.

    ``warp`` where Warp cannot render raises a :class:`RenderBackendError` saying why; ``auto`` picks
    ``warp`` when it can, else ``mujoco``, saying why in one log line.
    """
    if choice == "mujoco":
        return "mujoco"
    problem = warp_problem(device)
    if problem is None:
        return "warp"
    if choice == "warp":
        raise RenderBackendError(
            f"renderer: warp cannot render here: {problem}. Use renderer: mujoco (OpenGL), or auto to fall back "
            "to it when Warp cannot render."
        )
    if log is not None:
        log("vlmrm: humanoid renderer auto: OpenGL (MuJoCo), not Warp: %s", problem)
    return "mujoco"
