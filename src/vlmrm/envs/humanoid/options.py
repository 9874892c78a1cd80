"""The Humanoid's options, camera and look, and its spec: plain data, importable without MuJoCo.

``env.options`` of a ``humanoid`` config::

    task: kneeling              # a task adds info["is_success"] from its pose detector
    camera: paper               # paper | gymnasium, or {distance, elevation, azimuth, lookat, tracking}
    look: {textured: true, shadows: true, reflections: true, skybox: true, antialiasing: true}
    reset_noise_scale: 0.01
    renderer: mujoco            # mujoco | warp | auto (warp: all envs at once on the GPU, env.vectorized)
    physics: mujoco             # mujoco | warp (warp: all envs step in MuJoCo Warp; needs renderer: warp)

The paper's camera (:data:`PAPER_CAMERA`) is what the authors' runs saw: distance 3.5, look-at
(0, 0, 1), elevation -10, azimuth 180 on a *free* camera. Their config also names
``trackbodyid: 1``, but MuJoCo ignores it on a free camera, so their camera did not follow the
body; ``tracking: true`` makes it follow the torso across the floor instead. Gymnasium's default
(:data:`GYMNASIUM_CAMERA`) is Humanoid-v5's ``DEFAULT_CAMERA_CONFIG`` on the same free camera.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from vlmrm.envs.gl import ensure_gl_backend
from vlmrm.envs.humanoid.success import humanoid_pose
from vlmrm.envs.humanoid.tasks import BASELINE_PROMPT, DEFAULT_TASK, TASK_PROMPTS, TASKS
from vlmrm.envs.spec import EnvOptions, EnvSpec, Prompts, StateSweep, half_of_steps_succeed
from vlmrm.validation import closest


class HumanoidCamera(EnvOptions):
    """Where the camera is: MuJoCo's free camera, optionally following the torso."""

    distance: float = Field(default=3.5, gt=0, description="Metres from the point looked at.")
    elevation: float = Field(default=-10.0, description="Degrees; negative looks down.")
    azimuth: float = Field(default=180.0, description="Degrees; 180 looks at the humanoid's front as it starts.")
    lookat: tuple[float, float, float] = Field(
        default=(0.0, 0.0, 1.0), strict=False, description="The point looked at (x, y, z), metres."
    )
    tracking: bool = Field(
        default=False, description="Add the torso's floor position (x, y) to lookat every frame (follow the body)."
    )


class HumanoidLook(EnvOptions):
    """How the scene is drawn (:mod:`vlmrm.envs.humanoid.scene`)."""

    textured: bool = Field(
        default=True, description="Sky, stone-tile floor, light metallic body; False: MuJoCo's look."
    )
    shadows: bool = Field(default=True, description="Shadows (about half the frame rate on a CPU renderer).")
    reflections: bool = Field(default=True, description="Floor reflections (the textured floor reflects nothing).")
    skybox: bool = Field(default=True, description="Draw the sky; without it the background is black.")
    antialiasing: bool = Field(default=True, description="4x multisampling; off renders 2-3x faster on a CPU.")


PAPER_CAMERA = HumanoidCamera()
"""The authors' camera: distance 3.5, look-at (0, 0, 1), elevation -10, azimuth 180, not following the body."""

GYMNASIUM_CAMERA = HumanoidCamera(distance=4.0, elevation=-20.0, azimuth=90.0, lookat=(0.0, 0.0, 2.0))
"""Gymnasium Humanoid-v5's default camera (``DEFAULT_CAMERA_CONFIG`` on a free camera, MuJoCo's default azimuth)."""

CAMERA_PRESETS: dict[str, HumanoidCamera] = {"paper": PAPER_CAMERA, "gymnasium": GYMNASIUM_CAMERA}
LOOK_PRESETS: dict[str, HumanoidLook] = {
    "textured": HumanoidLook(),
    "mujoco": HumanoidLook(textured=False),
}

# env.options of vlmrm 0.1 named the camera and look fields one by one.
_FLAT_CAMERA = {f"camera_{name}": name for name in HumanoidCamera.model_fields}
_FLAT_LOOK = {name: name for name in HumanoidLook.model_fields}


class HumanoidOptions(EnvOptions):
    """Options of ``humanoid``."""

    task: str | None = Field(default=None, description=f"One of {', '.join(TASKS)}: adds info['is_success'].")
    camera: HumanoidCamera = Field(default=PAPER_CAMERA, description="'paper', 'gymnasium' or camera fields.")
    look: HumanoidLook = Field(default_factory=HumanoidLook, description="'textured', 'mujoco' or look fields.")
    reset_noise_scale: float = Field(default=1e-2, ge=0, description="Uniform noise on the initial state.")
    renderer: Literal["mujoco", "warp", "auto"] = Field(
        default="mujoco",
        description="mujoco: MuJoCo's OpenGL renderer, one env at a time. warp: MuJoCo Warp's batch ray tracer, "
        "all envs of a vectorized env in one call on the reward model's GPU (pip install 'vlmrm[warp]'; a "
        "slightly different look, docs/gpu.md). auto: warp where it can run, else mujoco.",
    )

    physics: Literal["mujoco", "warp"] = Field(
        default="mujoco",
        description="mujoco: each env steps in MuJoCo on the CPU (PGS solver). warp: all envs of the vectorized env "
        "step in MuJoCo Warp on the reward model's GPU, drawn by the warp renderer from the same device data "
        "(Newton solver, float32: close to, not equal to, MuJoCo's dynamics; docs/gpu.md). Needs renderer: warp.",
    )

    @model_validator(mode="after")
    def _warp_physics_draws_with_warp(self) -> HumanoidOptions:
        if self.physics == "warp" and self.renderer != "warp":
            raise ValueError(
                f"physics: warp draws the device data with MuJoCo Warp's renderer; set renderer: warp "
                f"(not {self.renderer}) or physics: mujoco"
            )
        return self

    @model_validator(mode="before")
    @classmethod
    def _grouped(cls, data: Any) -> Any:
        """Accept presets by name, and the flat option names of vlmrm 0.1 (with a warning)."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for key, presets in (("camera", CAMERA_PRESETS), ("look", LOOK_PRESETS)):
            value = data.get(key)
            if isinstance(value, str):
                if value not in presets:
                    raise ValueError(
                        f"unknown {key} preset {value!r};{closest(value, list(presets))} "
                        f"use one of {', '.join(presets)} or a mapping of {key} fields"
                    )
                data[key] = presets[value].model_dump()
        flat = [key for key in data if key in _FLAT_CAMERA or key in _FLAT_LOOK]
        if flat:
            warnings.warn(
                f"env.options {', '.join(flat)}: flat humanoid options are deprecated; write them under "
                "env.options.camera (distance, elevation, azimuth, lookat, tracking) and env.options.look "
                "(textured, shadows, reflections, skybox, antialiasing)",
                FutureWarning,
                stacklevel=2,
            )
            camera = dict(data.get("camera") or PAPER_CAMERA.model_dump())
            look = dict(data.get("look") or HumanoidLook().model_dump())
            for key in flat:
                if key in _FLAT_CAMERA:
                    camera[_FLAT_CAMERA[key]] = data.pop(key)
                else:
                    look[_FLAT_LOOK[key]] = data.pop(key)
            data["camera"], data["look"] = camera, look
        return data

    @field_validator("task")
    @classmethod
    def _known_task(cls, task: str | None) -> str | None:
        if task is not None and task not in TASKS:
            raise ValueError(f"unknown humanoid task {task!r};{closest(task, list(TASKS))} tasks: {', '.join(TASKS)}")
        return task


def humanoid_prompts(options: HumanoidOptions) -> Prompts:
    """The paper's sentence for the task (kneeling when none is set) and the baseline "a humanoid robot"."""
    return Prompts((TASK_PROMPTS[options.task or DEFAULT_TASK],), (BASELINE_PROMPT,))


def interpolate_qpos(start: np.ndarray, goal: np.ndarray, t: float) -> np.ndarray:
    """A straight line in joint space; the root quaternion (``qpos[3:7]``) is re-normalised."""
    qpos = (1.0 - t) * np.asarray(start, dtype=np.float64) + t * np.asarray(goal, dtype=np.float64)
    if qpos.size >= 7:
        norm = float(np.linalg.norm(qpos[3:7]))
        if norm > 0:
            qpos[3:7] = qpos[3:7] / norm
    return qpos


def humanoid_sweep(options: HumanoidOptions, points: int) -> StateSweep:
    """Joint positions from the reset pose (t=0) straight to the task's success pose (t=1), at rest."""
    ensure_gl_backend()  # the poses are built with MuJoCo's kinematics, imported on first use
    task = options.task or DEFAULT_TASK
    start, goal = humanoid_pose(task, "start"), humanoid_pose(task, "success")
    values = np.linspace(0.0, 1.0, points)
    states = [{"qpos": interpolate_qpos(start, goal, float(t))} for t in values]
    return StateSweep(f"pose interpolation, start → {task}", values, 1.0, states)


def _warp_draws(options: HumanoidOptions, device: str) -> bool:
    """The batched Humanoid draws on the GPU with Warp only (with OpenGL, frames come through the host, and
    subprocess envs draw faster)."""
    if options.renderer == "mujoco":
        return False
    import torch

    from vlmrm.envs.humanoid.warp_support import warp_problem  # imports Warp, if installed: only when asked

    return warp_problem(torch.device(device)) is None


HUMANOID_SPEC = EnvSpec(
    name="humanoid",
    description="MuJoCo Humanoid-v5 without termination, realistic scene, the paper's camera; option task=...",
    entry_point="vlmrm.envs.humanoid.env:make_humanoid",
    options=HumanoidOptions,
    default_episode_length=100,
    action_kind="continuous",
    prompts=humanoid_prompts,
    sweep=humanoid_sweep,
    episode_success=half_of_steps_succeed,
    uses_mujoco=True,
    vector_entry_point="vlmrm.envs.humanoid.vector:make_humanoid_vector",
    vector_draws_on_device=_warp_draws,
    tasks=TASK_PROMPTS,
)


__all__ = [
    "GYMNASIUM_CAMERA",
    "PAPER_CAMERA",
    "HumanoidCamera",
    "HumanoidLook",
    "HumanoidOptions",
]
