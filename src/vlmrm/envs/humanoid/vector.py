"""The Humanoid as a batched vector env: all frames in one call, physics per env on the CPU or batched on the GPU.

With ``renderer: warp`` (or ``auto`` where Warp runs) the frames of all envs are ray traced at
once by MuJoCo Warp on the reward model's GPU from their joint positions
(:class:`~vlmrm.envs.humanoid.warp_renderer.WarpHumanoidRenderer`) and never leave it. With
``renderer: mujoco`` each env draws with MuJoCo's OpenGL renderer, as the single envs do, and the
frames are stacked into one tensor on the device (one host-to-device copy per step); the
pictures are then the single envs' exactly. With ``physics: warp`` the physics moves to the device
too: all envs step in MuJoCo Warp and are drawn from the same device data
(:class:`~vlmrm.envs.humanoid.warp_physics.WarpHumanoidSimulation`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import gymnasium as gym
import numpy as np
import torch

from vlmrm.envs.humanoid.env import VLMHumanoidEnv
from vlmrm.envs.humanoid.options import HumanoidOptions
from vlmrm.envs.humanoid.warp_physics import WarpHumanoidSimulation
from vlmrm.envs.humanoid.warp_renderer import WarpHumanoidRenderer
from vlmrm.envs.humanoid.warp_support import resolve_renderer
from vlmrm.envs.vector.vec_env import BatchedVecEnv, EnvListSimulation

logger = logging.getLogger(__name__)


def make_humanoid_vector(
    n_envs: int, render_size: int, episode_length: int, options: HumanoidOptions, device: str | torch.device = "cpu"
) -> BatchedVecEnv:
    """``n_envs`` Humanoids, frames drawn as one tensor on ``device`` (the registry's vector entry point).

    Raises :class:`~vlmrm.errors.RenderBackendError` for ``renderer: warp`` where Warp cannot render.
    """
    device = torch.device(device)
    renderer = resolve_renderer(options.renderer, device, logger.info)
    if options.physics == "warp":  # the options made sure the renderer is warp: it can draw here
        return BatchedVecEnv(WarpHumanoidSimulation(options, render_size, n_envs, device), episode_length)
    single = options.model_copy(update={"renderer": "mujoco"})  # the envs draw only on the OpenGL path
    envs: list[gym.Env] = [VLMHumanoidEnv(render_size, single) for _ in range(n_envs)]
    if renderer == "warp":
        warp = WarpHumanoidRenderer(options, render_size, n_envs, device)

        def draw(envs: Sequence[gym.Env]) -> torch.Tensor:
            qpos: list[np.ndarray] = [env.unwrapped.data.qpos for env in envs]  # type: ignore[attr-defined]
            return warp.render(np.stack(qpos))

        sim = EnvListSimulation(envs, draw, device, "warp", close_renderer=warp.close)
    else:

        def draw(envs: Sequence[gym.Env]) -> torch.Tensor:
            rendered: list[np.ndarray] = [env.render() for env in envs]  # type: ignore[misc]
            frames = torch.from_numpy(np.stack(rendered))
            return frames.to(device, non_blocking=True)

        sim = EnvListSimulation(envs, draw, device, "mujoco")
    return BatchedVecEnv(sim, episode_length)
