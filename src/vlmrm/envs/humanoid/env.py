"""MuJoCo Humanoid for vision-language rewards: the main experiment of Rocamonde et al. (2023).

The dynamics are Gymnasium's Humanoid-v5 (same model, frame skip, observation and action spaces)
with two changes the paper made: falling does not end the episode (``terminate_when_unhealthy``
is off; only the time limit ends it, as truncation), and frames are square ``rgb_array`` images
of a realistic scene (see :mod:`vlmrm.envs.humanoid.scene`) seen by the paper's camera
(:mod:`vlmrm.envs.humanoid.options`). With ``task`` set, every step reports ``info["is_success"]``
from that task's detector (:mod:`vlmrm.envs.humanoid.success`); an episode succeeds when the pose
holds for at least half of its steps (vlmrm's rule; the paper's raters judged videos by eye).

MuJoCo chooses its OpenGL backend when it is imported, so this module picks an offscreen backend
first (:func:`vlmrm.envs.gl.ensure_gl_backend`). Should no backend work, importing still succeeds
(so other environments stay usable) and building the environment raises the error.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from vlmrm.envs.gl import ensure_gl_backend
from vlmrm.errors import ConfigError, RenderBackendError

try:
    ensure_gl_backend()
    _GL_ERROR: RenderBackendError | None = None
except RenderBackendError as _exc:  # reported when an env is built
    _GL_ERROR = _exc

# MuJoCo picks its default GL backend when imported: these imports must stay below the call above.
import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import utils
from gymnasium.envs.mujoco.humanoid_v5 import HumanoidEnv
from gymnasium.wrappers import TimeLimit

from vlmrm.envs.humanoid.options import HumanoidOptions
from vlmrm.envs.humanoid.scene import build_humanoid_xml, gymnasium_humanoid_xml_path
from vlmrm.envs.humanoid.success import PoseCheck, check_task
from vlmrm.envs.humanoid.tasks import TASKS
from vlmrm.envs.spec import SimState

logger = logging.getLogger(__name__)


def _gl_context(width: int, height: int) -> Any:
    """An offscreen OpenGL context for the backend named by ``MUJOCO_GL`` *now*.

    Chosen at call time (as Gymnasium does), not when MuJoCo was imported, so rendering works
    even if something imported MuJoCo before a backend was chosen.
    """
    backend = os.environ.get("MUJOCO_GL", "").lower()
    if backend == "egl":
        from mujoco.egl import GLContext
    elif backend == "osmesa":
        from mujoco.osmesa import GLContext
    elif backend == "glfw":
        from mujoco.glfw import GLContext
    else:
        GLContext = mujoco.GLContext
    return GLContext(width, height)


class OffscreenRenderer:
    """Renders square RGB frames (or segmentation) of a MuJoCo model into memory."""

    def __init__(self, model: mujoco.MjModel, size: int, max_geom: int = 1000):
        self.model = model
        self.size = size
        self._context = _gl_context(size, size)
        self._context.make_current()
        self.scene = mujoco.MjvScene(model, maxgeom=max_geom)
        self.option = mujoco.MjvOption()
        self._perturb = mujoco.MjvPerturb()
        self._mjr_context = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_150)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._mjr_context)
        self._rect = mujoco.MjrRect(0, 0, size, size)
        self._pixels = np.empty((size, size, 3), dtype=np.uint8)

    def render(
        self,
        data: mujoco.MjData,
        camera: mujoco.MjvCamera,
        flags: dict[int, bool] | None = None,
        segmentation: bool = False,
    ) -> np.ndarray:
        """An ``(size, size, 3)`` uint8 frame; with ``segmentation`` an ``(size, size, 2)`` int
        array of ``(object type, object id)`` per pixel, ``(-1, -1)`` for the background."""
        self._context.make_current()
        mujoco.mjv_updateScene(
            self.model, data, self.option, self._perturb, camera, mujoco.mjtCatBit.mjCAT_ALL, self.scene
        )
        for flag, value in (flags or {}).items():
            self.scene.flags[flag] = value
        self.scene.flags[mujoco.mjtRndFlag.mjRND_SEGMENT] = segmentation
        self.scene.flags[mujoco.mjtRndFlag.mjRND_IDCOLOR] = segmentation
        mujoco.mjr_render(self._rect, self.scene, self._mjr_context)
        mujoco.mjr_readPixels(self._pixels, None, self._rect, self._mjr_context)
        frame = self._pixels[::-1]
        if not segmentation:
            return frame.copy()
        # Segmentation colours encode the scene geom's segid + 1 (0: background).
        codes = (
            frame[..., 0].astype(np.int64)
            + (frame[..., 1].astype(np.int64) << 8)
            + (frame[..., 2].astype(np.int64) << 16)
        )
        table = np.full((self.scene.ngeom + 1, 2), -1, dtype=np.int64)
        for i in range(self.scene.ngeom):
            geom = self.scene.geoms[i]
            if geom.segid != -1:
                table[geom.segid + 1] = (geom.objtype, geom.objid)
        codes[codes > self.scene.ngeom] = 0
        return table[codes]

    def close(self) -> None:
        """Free the GL resources."""
        if self._context is not None:
            self._context.make_current()
            self._mjr_context.free()
            self._context.free()
            self._context = None


class VLMHumanoidEnv(HumanoidEnv):
    """Humanoid-v5 dynamics, no termination on falling, square frames of a realistic scene.

    Args:
        render_size: frames are ``render_size`` x ``render_size`` RGB.
        options: task, camera and look (:class:`~vlmrm.envs.humanoid.options.HumanoidOptions`).
    """

    def __init__(self, render_size: int = 224, options: HumanoidOptions | None = None):
        if render_size <= 0:
            raise ConfigError(f"render_size must be a positive number of pixels, got {render_size}.")
        self.options = options = options or HumanoidOptions()
        self.task = options.task
        self.render_size = int(render_size)
        look = options.look
        self.render_flags = {
            mujoco.mjtRndFlag.mjRND_SHADOW: look.shadows,
            mujoco.mjtRndFlag.mjRND_REFLECTION: look.reflections,
            mujoco.mjtRndFlag.mjRND_SKYBOX: look.skybox,
        }
        self.camera = mujoco.MjvCamera()
        self.camera.type = mujoco.mjtCamera.mjCAMERA_FREE
        self.camera.distance = options.camera.distance
        self.camera.elevation = options.camera.elevation
        self.camera.azimuth = options.camera.azimuth
        self.camera.lookat[:] = options.camera.lookat
        self._renderer: OffscreenRenderer | None = None
        self._warp: Any = None  # a WarpHumanoidRenderer of one world, with renderer: warp (or auto, where it runs)
        self._rgb_renderer: str | None = None  # "mujoco" or "warp", chosen on the first frame
        HumanoidEnv.__init__(
            self,
            xml_file=str(gymnasium_humanoid_xml_path()),
            terminate_when_unhealthy=False,
            reset_noise_scale=options.reset_noise_scale,
            render_mode="rgb_array",
            width=self.render_size,
            height=self.render_size,
        )
        utils.EzPickle.__init__(self, render_size=render_size, options=options)

    def _initialize_simulation(self) -> tuple[mujoco.MjModel, mujoco.MjData]:
        """Build the model from the project's scene instead of reading Gymnasium's file."""
        look = self.options.look
        xml, assets = build_humanoid_xml(
            textured=look.textured, offscreen_size=self.render_size, antialiasing=look.antialiasing
        )
        model = mujoco.MjModel.from_xml_string(xml, assets)
        return model, mujoco.MjData(model)

    # -- task -----------------------------------------------------------------------------

    def check_pose(self, task: str | None = None) -> PoseCheck:
        """Run ``task``'s detector (default: this env's task) on the current state."""
        task = self.task if task is None else task
        if task is None:
            raise ConfigError(f"No task to check; pass one of: {', '.join(TASKS)}.")
        return check_task(task, self.model, self.data)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:  # type: ignore[override]
        """Step Humanoid-v5; with a task, add ``is_success`` and ``success_margin`` to ``info``.

        ``success_margin`` is the detector's raw value: the smallest slack of its rules, >= 0
        exactly when the pose counts as the task.
        """
        obs, reward, terminated, truncated, info = super().step(action)
        if self.task is not None:
            check = self.check_pose()
            info["is_success"] = check.success
            info["success_margin"] = check.margin
        return obs, float(reward), bool(terminated), bool(truncated), info

    def set_qpos(self, qpos: Sequence[float] | np.ndarray) -> None:
        """Put the humanoid in the pose ``qpos`` (length ``model.nq``), at rest, and update positions."""
        self.set_sim_state({"qpos": qpos})

    def get_sim_state(self) -> SimState:
        """Joint positions and velocities (:class:`~vlmrm.envs.spec.StatefulEnv`)."""
        return {"qpos": np.array(self.data.qpos, dtype=np.float64), "qvel": np.array(self.data.qvel, dtype=np.float64)}

    def set_sim_state(self, state: Mapping[str, Any]) -> None:
        """Put the humanoid in ``state["qpos"]`` with velocities ``state["qvel"]`` (zero when absent)."""
        qpos = np.asarray(state["qpos"], dtype=np.float64)
        qvel = np.asarray(state.get("qvel", np.zeros(self.model.nv)), dtype=np.float64)
        if qpos.shape != (self.model.nq,) or qvel.shape != (self.model.nv,):
            raise ConfigError(
                f"a humanoid state has qpos of {self.model.nq} and qvel of {self.model.nv} numbers, "
                f"got shapes {qpos.shape} and {qvel.shape}."
            )
        self.set_state(qpos, qvel)

    # -- rendering ------------------------------------------------------------------------

    def update_camera(self) -> mujoco.MjvCamera:
        """Aim the camera: with tracking, ``camera.lookat`` is offset by the torso's floor position."""
        lookat = np.array(self.options.camera.lookat, dtype=np.float64)
        if self.options.camera.tracking:
            lookat[:2] += self.data.body("torso").xpos[:2]
        self.camera.lookat[:] = lookat
        return self.camera

    def _render(self, segmentation: bool = False) -> np.ndarray:
        if not segmentation and self._use_warp():
            return self._warp.render(self.data.qpos[None]).cpu().numpy()[0]
        if self._renderer is None:
            if _GL_ERROR is not None:
                raise _GL_ERROR
            self._renderer = OffscreenRenderer(self.model, self.render_size)
        return self._renderer.render(self.data, self.update_camera(), self.render_flags, segmentation)

    def _use_warp(self) -> bool:
        """Whether RGB frames come from MuJoCo Warp (``renderer``: warp, or auto where Warp runs)."""
        if self._rgb_renderer is None:
            import torch

            from vlmrm.envs.humanoid.warp_renderer import WarpHumanoidRenderer
            from vlmrm.envs.humanoid.warp_support import resolve_renderer

            device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
            self._rgb_renderer = resolve_renderer(self.options.renderer, device, logger.info)
            if self._rgb_renderer == "warp":
                self._warp = WarpHumanoidRenderer(self.options, self.render_size, 1, device)
        return self._rgb_renderer == "warp"

    def render(self) -> np.ndarray:
        """A ``(render_size, render_size, 3)`` uint8 frame of the current state."""
        return self._render()

    def body_mask(self) -> np.ndarray:
        """A ``(render_size, render_size)`` boolean mask of the pixels that show the humanoid.

        Rendered as segmentation with the same camera as :meth:`render`.
        """
        objects = self._render(segmentation=True)
        is_geom = (objects[..., 0] == mujoco.mjtObj.mjOBJ_GEOM) & (objects[..., 1] >= 0)
        mask = np.zeros(objects.shape[:2], dtype=bool)
        mask[is_geom] = self.model.geom_bodyid[objects[..., 1][is_geom]] != 0
        return mask

    def close(self) -> None:
        """Free the renderer's OpenGL context."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        if self._warp is not None:
            self._warp.close()
            self._warp = None
        super().close()


def make_humanoid(render_size: int, episode_length: int, options: HumanoidOptions) -> gym.Env:
    """Humanoid-v5 that never terminates, truncated after ``episode_length`` steps (100 in the paper).

    With ``options.task`` set, ``info["is_success"]`` at each step comes from the task's detector and
    ``info["success_margin"]`` holds its raw value; without a task, ``info`` has no ``is_success``.
    """
    if options.physics == "warp":
        raise ConfigError(
            "env.options.physics: warp steps all envs together in the vectorized env; set env.vectorized: true "
            "(or physics: mujoco)."
        )
    if _GL_ERROR is not None:
        raise _GL_ERROR
    return TimeLimit(VLMHumanoidEnv(render_size, options), max_episode_steps=episode_length)
