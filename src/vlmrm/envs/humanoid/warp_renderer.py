"""The Humanoid's frames for all envs in one call, ray traced by MuJoCo Warp on the reward model's GPU.

Physics stays in MuJoCo on the CPU (each env's own model, PGS solver), unless ``physics: warp`` steps it in
the renderer's own device data (:mod:`~vlmrm.envs.humanoid.warp_physics`, which skips step 1). For rendering, a copy of
the scene (:func:`~vlmrm.envs.humanoid.scene.build_humanoid_xml`, plus a fixed camera where the
env's free camera is) lives on the GPU as a MuJoCo Warp model with one "world" per env. Each call:

1. uploads the joint positions of all envs (``nworld x nq`` float32: the only host-to-device copy),
2. runs forward kinematics, centre-of-mass and camera/light placement for all worlds
   (``mujoco_warp.kinematics``, ``com_pos``, ``camlight``); with ``camera.tracking`` the camera
   moves with each torso, on the device,
3. refits the scene's bounding-volume hierarchy and ray traces every world's camera at once
   (``refit_bvh``, ``render``),
4. hands the packed pixels to torch without a copy (``wp.to_torch``); the only frame-sized work
   after that is one device kernel that reorders Warp's BGRA bytes into RGB.

Known differences from the OpenGL renderer (MuJoCo's ``mjr_render``), see docs/gpu.md:

- MuJoCo Warp supports the CG and Newton solvers only, so the render-only copy switches PGS to
  CG (the solver is never run: only kinematics are);
- it textures planes and meshes only: the body's brushed-metal cube texture becomes its material
  colour (the floor keeps its tiles); there is no horizon haze and no reflections;
- frames show the state in ``qpos`` exactly, where OpenGL draws the geometry MuJoCo computed
  at the start of the last physics substep (1/5 of a step earlier);
- antialiasing is 2 x 2 samples per pixel (OpenGL: 4x multisampling); shadows and the skybox
  follow the ``look`` options.

It needs ``pip install 'vlmrm[warp]'`` (``warp-lang``, ``mujoco-warp``) and, for the renderer
the env options select, an NVIDIA GPU with a CUDA driver (see docs/gpu.md for versions). Without
them :func:`warp_problem` says what is missing and the env raises a
:class:`~vlmrm.errors.RenderBackendError` (``renderer: auto`` falls back to OpenGL with one log
line). :class:`WarpHumanoidRenderer` itself also runs on Warp's CPU device (``device="cpu"``),
slowly, which is how it is tested without a GPU.
"""

from __future__ import annotations

import contextlib
import math
import xml.etree.ElementTree as ET
from typing import Any

import mujoco
import numpy as np
import torch

from vlmrm.envs.humanoid.options import HumanoidCamera, HumanoidOptions
from vlmrm.envs.humanoid.scene import build_humanoid_xml
from vlmrm.envs.humanoid.warp_support import INSTALL_HINT, init_warp, resolve_renderer, warp_problem
from vlmrm.errors import RenderBackendError

__all__ = ["WarpHumanoidRenderer", "free_camera_pose", "render_model", "resolve_renderer", "warp_problem"]

CAMERA_NAME = "vlmrm_camera"


def free_camera_pose(camera: HumanoidCamera) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Position, right and up axes of MuJoCo's free camera (``mjv_updateCamera``) for ``camera``.

    Without tracking; with tracking the position moves by the torso's floor position.
    """
    azimuth, elevation = math.radians(camera.azimuth), math.radians(camera.elevation)
    forward = np.array(
        [math.cos(elevation) * math.cos(azimuth), math.cos(elevation) * math.sin(azimuth), math.sin(elevation)]
    )
    up = np.array(
        [-math.sin(elevation) * math.cos(azimuth), -math.sin(elevation) * math.sin(azimuth), math.cos(elevation)]
    )
    position = np.asarray(camera.lookat, dtype=np.float64) - camera.distance * forward
    return position, np.cross(forward, up), up


def render_model(
    options: HumanoidOptions, size: int, solver: mujoco.mjtSolver = mujoco.mjtSolver.mjSOL_CG
) -> tuple[mujoco.MjModel, int]:
    """The env's MuJoCo model with a fixed camera at the free camera's pose, and the index of that camera.

    ``solver`` replaces the env's PGS, which MuJoCo Warp does not have: CG for a render-only copy (the solver
    never runs), Newton where MuJoCo Warp steps the physics (:mod:`~vlmrm.envs.humanoid.warp_physics`).
    """
    look = options.look
    xml, assets = build_humanoid_xml(textured=look.textured, offscreen_size=size, antialiasing=look.antialiasing)
    root = ET.fromstring(xml)
    worldbody = root.find("worldbody")
    assert worldbody is not None
    probe = mujoco.MjModel.from_xml_string(xml, assets)
    position, right, up = free_camera_pose(options.camera)
    ET.SubElement(
        worldbody,
        "camera",
        name=CAMERA_NAME,
        pos=" ".join(f"{v:.17g}" for v in position),
        xyaxes=" ".join(f"{v:.17g}" for v in (*right, *up)),
        fovy=f"{probe.vis.global_.fovy:.17g}",
    )
    model = mujoco.MjModel.from_xml_string(ET.tostring(root, encoding="unicode"), assets)
    model.opt.solver = solver  # MuJoCo Warp has no PGS
    return model, mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, CAMERA_NAME)


def _warp_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{device.index if device.index is not None else torch.cuda.current_device()}"
    if device.type == "cpu":
        return "cpu"
    raise RenderBackendError(f"MuJoCo Warp cannot render on {device}; use a CUDA device.")


class WarpHumanoidRenderer:
    """Frames of ``nworld`` Humanoid states in one call (see the module docstring).

    Args:
        options: the env's options (camera and look).
        size: square frame size in pixels.
        nworld: how many states each call draws (the number of envs).
        device: a CUDA device (the reward model's), or ``cpu`` for Warp's CPU device (slow; tests).
        solver: the model's constraint solver (see :func:`render_model`).
        nconmax: contacts allocated per world (MuJoCo Warp's ``put_data``; matters only where the physics steps
            on the device).
        njmax: constraint rows allocated per world (likewise).
    """

    def __init__(
        self,
        options: HumanoidOptions,
        size: int,
        nworld: int,
        device: str | torch.device,
        solver: mujoco.mjtSolver = mujoco.mjtSolver.mjSOL_CG,
        nconmax: int | None = None,
        njmax: int | None = None,
    ):
        self.device = torch.device(device)
        self.size = int(size)
        self.nworld = int(nworld)
        self.tracking = options.camera.tracking
        try:
            import mujoco_warp as mjw
            import warp as wp
        except ImportError as exc:
            raise RenderBackendError(f"renderer: warp needs MuJoCo Warp: {exc} ({INSTALL_HINT}).") from None
        self._wp, self._mjw = init_warp(), mjw
        self.warp_device = _warp_device(self.device)
        """Warp's name of :attr:`device` (``cuda:0``, ``cpu``)."""
        model, self.camera_id = render_model(options, self.size, solver)
        self.host_model = model
        self.nq = model.nq
        self._torso = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "torso")
        look = options.look
        with wp.ScopedDevice(self.warp_device):
            self._model = mjw.put_model(model)
            self._data = mjw.put_data(model, mujoco.MjData(model), nworld=self.nworld, nconmax=nconmax, njmax=njmax)
            self._context = mjw.create_render_context(
                model,
                nworld=self.nworld,
                cam_res=(self.size, self.size),
                render_rgb=True,
                render_depth=False,
                cam_active=[self.camera_id],
                use_shadows=look.shadows,
                render_skybox=look.skybox,
                samples_per_pixel=2 if look.antialiasing else 1,
            )
        # Views of Warp's arrays as torch tensors (no copies): joint positions in, camera and torso for tracking.
        self._qpos = wp.to_torch(self._data.qpos)
        self._cam_xpos = wp.to_torch(self._data.cam_xpos)
        self._xpos = wp.to_torch(self._data.xpos)
        self._pixels = wp.to_torch(self._context.rgb_data)  # (nworld, size * size) packed BGRA

    def render(self, qpos: np.ndarray | torch.Tensor) -> torch.Tensor:
        """``(nworld, nq)`` joint positions -> ``(nworld, size, size, 3)`` uint8 frames on :attr:`device`."""
        qpos_t = torch.as_tensor(qpos)
        if tuple(qpos_t.shape) != (self.nworld, self.nq):
            raise ValueError(f"expected joint positions of shape {(self.nworld, self.nq)}, got {tuple(qpos_t.shape)}")
        self._qpos.copy_(qpos_t.to(self._qpos.dtype), non_blocking=True)  # the one host-to-device upload
        return self.draw()

    def draw(self) -> torch.Tensor:
        """The frames of the joint positions already in the device data (:attr:`warp_data`), without an upload."""
        mjw = self._mjw
        with self.on_device():
            mjw.kinematics(self._model, self._data)
            mjw.com_pos(self._model, self._data)
            mjw.camlight(self._model, self._data)
            if self.tracking:  # move the camera by each torso's floor position, on the device
                self._cam_xpos[:, self.camera_id, :2] += self._xpos[:, self._torso, :2]
            mjw.refit_bvh(self._model, self._data, self._context)
            mjw.render(self._model, self._data, self._context)
        packed = self._pixels[:, : self.size * self.size]
        bgra = packed.view(torch.uint8).view(self.nworld, self.size, self.size, 4)
        return torch.flip(bgra[..., :3], dims=(-1,))  # one device kernel: BGRA -> RGB

    @contextlib.contextmanager
    def on_device(self) -> Any:
        """Warp's kernels on Warp's device and, on a GPU, on torch's current stream: ordered with torch's
        work (the qpos upload before, the RGB kernel after) without synchronising the host."""
        wp = self._wp
        with wp.ScopedDevice(self.warp_device):
            if self.device.type == "cuda":
                with wp.ScopedStream(wp.stream_from_torch(torch.cuda.current_stream(self.device))):
                    yield
            else:
                yield

    @property
    def warp_model(self) -> Any:
        """The ``mujoco_warp.Model`` on the device."""
        return self._model

    @property
    def warp_data(self) -> Any:
        """The ``mujoco_warp.Data`` of all worlds on the device: what :meth:`draw` draws."""
        return self._data

    @property
    def qpos(self) -> torch.Tensor:
        """``(nworld, nq)`` the joint positions of the latest call, as uploaded (a view of Warp's array)."""
        return self._qpos

    @property
    def camera_positions(self) -> torch.Tensor:
        """``(nworld, 3)`` where each world's camera was for the latest call."""
        return self._cam_xpos[:, self.camera_id]

    @property
    def torso_positions(self) -> torch.Tensor:
        """``(nworld, 3)`` each world's torso position after the latest call's kinematics."""
        return self._xpos[:, self._torso]

    def close(self) -> None:
        """Drop the device arrays (Warp frees them with their last reference)."""
        self._model = self._data = self._context = None
        self._qpos = self._cam_xpos = self._xpos = self._pixels = torch.empty(0)
