"""All Humanoids stepped in MuJoCo Warp, drawn by its ray tracer from the same device data (``physics: warp``).

With ``env.options.physics: warp`` the vectorized Humanoid keeps one MuJoCo Warp model with one world per env
on the reward model's GPU (:class:`WarpHumanoidSimulation`). Each step:

1. uploads the actions (``nworld x 17`` float32 into ``ctrl``: the only host-to-device copy of a step),
2. runs ``frame_skip`` (5) MuJoCo Warp ``step`` calls and ``rne_postconstraint`` (for ``cfrc_ext``) for all
   worlds; on CUDA they are captured once as a CUDA graph and replayed,
3. builds the observations and rewards of all worlds on the device (torch views of Warp's arrays, no copies),
   and copies one ``nworld x 382`` float32 tensor to the host for stable-baselines3 (observations, joint
   positions for the pose detectors, the reward terms for ``info``),
4. draws the frames from the same device data (:meth:`WarpHumanoidRenderer.draw`): joint positions never go
   through the host.

What changes against CPU MuJoCo (``physics: mujoco``), see docs/gpu.md:

- MuJoCo Warp has no PGS solver: the model switches to Newton (MuJoCo's default solver; Humanoid-v5 asks for
  PGS with 50 iterations). Newton and PGS converge to nearby but different contact forces, so trajectories
  from the same state and actions drift apart, by a few millimetres within a step's worth of contact and
  more as the body falls (chaotic dynamics): statistics of runs, not single trajectories, compare.
- MuJoCo Warp computes in float32 (MuJoCo: float64); the observations are float32 values widened to float64.
- Contacts and constraint rows are allocated per world up front (``nconmax`` 64, ``njmax`` 256; MuJoCo grows
  them as needed).
- The pose detectors (``task``) judge the joint positions the step reached, by MuJoCo kinematics on the host
  (CPU MuJoCo's env judges the body positions of its last substep's start, 1/5 of a step earlier).
- A reset writes the world's new state and runs ``forward`` for all worlds, which refreshes the others'
  derived positions (not their state).

The initial states follow Gymnasium's ``reset_model`` with each world's own random stream, seeded as
``DummyVecEnv`` seeds its envs, so the same seeds give the same initial states as ``physics: mujoco``.
"""

from __future__ import annotations

from typing import Any

import mujoco
import numpy as np
import torch
from gymnasium.utils import seeding

from vlmrm.envs.humanoid.env import VLMHumanoidEnv
from vlmrm.envs.humanoid.options import HumanoidOptions
from vlmrm.envs.humanoid.success import check_task
from vlmrm.envs.humanoid.warp_renderer import WarpHumanoidRenderer
from vlmrm.envs.humanoid.warp_support import init_warp

NCONMAX = 64
"""Contacts allocated per world (MuJoCo Warp's default for the Humanoid is 48)."""
NJMAX = 256
"""Constraint rows allocated per world (MuJoCo Warp's default for the Humanoid is 64: too few once it lies down)."""
SOLVER = mujoco.mjtSolver.mjSOL_NEWTON
"""The constraint solver in MuJoCo Warp (it has CG and Newton, not the PGS that Humanoid-v5 asks for)."""

__all__ = ["NCONMAX", "NJMAX", "SOLVER", "WarpHumanoidSimulation"]


class WarpHumanoidSimulation:
    """``n_envs`` Humanoids stepped and drawn in MuJoCo Warp on ``device`` (a :class:`BatchedSimulation`).

    Args:
        options: the env's options (``task``, camera, look, reset noise).
        render_size: square frame size in pixels.
        n_envs: the number of worlds.
        device: a CUDA device (the reward model's), or ``cpu`` for Warp's CPU device (slow; tests).
    """

    renderer_name = "warp"

    def __init__(self, options: HumanoidOptions, render_size: int, n_envs: int, device: str | torch.device):
        if n_envs <= 0:
            raise ValueError("at least one env is needed")
        self.num_envs = int(n_envs)
        self.options = options
        # One CPU env as the reference for spaces, initial state, frame skip and reward weights (never stepped).
        reference = VLMHumanoidEnv(render_size, options.model_copy(update={"renderer": "mujoco", "physics": "mujoco"}))
        self.observation_space = reference.observation_space
        self.action_space = reference.action_space
        self.frame_skip = int(reference.frame_skip)
        self.dt = float(reference.dt)
        self._init_qpos = np.array(reference.init_qpos, dtype=np.float64)
        self._init_qvel = np.array(reference.init_qvel, dtype=np.float64)
        self._noise = float(options.reset_noise_scale)
        self._weights = {
            "forward": float(reference._forward_reward_weight),
            "healthy": float(reference._healthy_reward),
            "ctrl": float(reference._ctrl_cost_weight),
            "contact": float(reference._contact_cost_weight),
        }
        self._healthy_z = tuple(float(z) for z in reference._healthy_z_range)
        self._contact_cost_max = float(reference._contact_cost_range[1])
        reference.close()

        self.renderer = WarpHumanoidRenderer(
            options, render_size, self.num_envs, device, solver=SOLVER, nconmax=NCONMAX, njmax=NJMAX
        )
        self.device = self.renderer.device
        import mujoco_warp

        self._wp, self._mjw = init_warp(), mujoco_warp
        self.host_model = model = self.renderer.host_model
        self._host_data = mujoco.MjData(model)  # the pose detectors' kinematics
        self.nq, self.nv, self.nu = model.nq, model.nv, model.nu
        data, to_torch = self.renderer.warp_data, self._wp.to_torch
        # Views of Warp's arrays (no copies).
        self._qpos, self._qvel, self._ctrl = to_torch(data.qpos), to_torch(data.qvel), to_torch(data.ctrl)
        self._cinert, self._cvel = to_torch(data.cinert), to_torch(data.cvel)
        self._qfrc_actuator, self._cfrc_ext = to_torch(data.qfrc_actuator), to_torch(data.cfrc_ext)
        self._xipos = to_torch(data.xipos)
        self._ten_length, self._ten_velocity = to_torch(data.ten_length), to_torch(data.ten_velocity)
        mass = torch.as_tensor(model.body_mass, dtype=torch.float32, device=self.device)
        self._mass = (mass / mass.sum())[None, :, None]
        self._rngs: list[np.random.Generator | None] = [None] * self.num_envs
        self._graph: Any = None

    # -- BatchedSimulation ----------------------------------------------------------------------------

    def reset_env(self, index: int, seed: int | None, options: dict[str, Any] | None) -> tuple[np.ndarray, dict]:
        """Gymnasium's Humanoid reset of world ``index``: the initial state plus uniform noise from its stream."""
        rng = self._rngs[index]
        if seed is not None or rng is None:
            rng, _ = seeding.np_random(seed)
            self._rngs[index] = rng
        qpos = self._init_qpos + rng.uniform(-self._noise, self._noise, size=self.nq)
        qvel = self._init_qvel + rng.uniform(-self._noise, self._noise, size=self.nv)
        self.set_states(np.array([index]), qpos[None], qvel[None])
        packed = self._pack(torch.zeros(self.num_envs, 2, device=self.device))[index : index + 1].cpu()
        obs, info, _, _ = self._unpack(packed.double().numpy())
        reset_info = {key: info[0][key] for key in _RESET_INFO}
        return obs[0], reset_info

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """Step all worlds by one env step (``frame_skip`` physics steps) with ``(N, 17)`` actions."""
        actions_t = torch.as_tensor(np.asarray(actions, dtype=np.float32).reshape(self.num_envs, self.nu))
        before = self._mass_center()
        self._ctrl.copy_(actions_t.to(self.device), non_blocking=True)  # the step's only upload
        self._advance()
        velocity = (self._mass_center() - before) / self.dt
        packed = self._pack(velocity).cpu()  # the step's one device-to-host copy
        obs, infos, rewards, qpos = self._unpack(packed.double().numpy())
        if self.options.task is not None:
            for i, info in enumerate(infos):
                check = self.check_pose(qpos[i])
                info["is_success"], info["success_margin"] = check.success, check.margin
        return obs, rewards, np.zeros(self.num_envs, dtype=bool), infos  # no termination (the paper's)

    def render(self) -> torch.Tensor:
        """``(N, H, W, 3)`` uint8 frames of the worlds' current states, drawn from the device data."""
        return self.renderer.draw()

    def close(self) -> None:
        """Drop the graph and the device arrays."""
        self._graph = None
        self.renderer.close()

    # -- state ----------------------------------------------------------------------------------------

    def set_states(self, indices: np.ndarray, qpos: np.ndarray, qvel: np.ndarray) -> None:
        """Put worlds ``indices`` in states ``qpos`` ``(k, nq)`` and ``qvel`` ``(k, nv)``, as ``mj_resetData`` and
        ``set_state`` would (an upload: resets only)."""
        wp, mjw = self._wp, self._mjw
        index = torch.as_tensor(np.asarray(indices, dtype=np.int64), device=self.device)
        mask = np.zeros(self.num_envs, dtype=bool)
        mask[np.asarray(indices)] = True
        with self.renderer.on_device():
            mjw.reset_data(self.renderer.warp_model, self.renderer.warp_data, reset=wp.array(mask, dtype=bool))
            self._qpos[index] = torch.as_tensor(qpos, dtype=torch.float32).to(self.device)
            self._qvel[index] = torch.as_tensor(qvel, dtype=torch.float32).to(self.device)
            mjw.forward(self.renderer.warp_model, self.renderer.warp_data)
            mjw.rne_postconstraint(self.renderer.warp_model, self.renderer.warp_data)

    @property
    def qpos(self) -> torch.Tensor:
        """``(N, nq)`` joint positions of all worlds on the device (a view of Warp's array)."""
        return self._qpos

    @property
    def qvel(self) -> torch.Tensor:
        """``(N, nv)`` joint velocities of all worlds on the device (a view of Warp's array)."""
        return self._qvel

    def check_pose(self, qpos: np.ndarray, task: str | None = None) -> Any:
        """The task's detector (default: the options' task) on joint positions ``qpos``, by MuJoCo kinematics."""
        self._host_data.qpos[:] = qpos
        mujoco.mj_kinematics(self.host_model, self._host_data)
        return check_task(task or self.options.task or "", self.host_model, self._host_data)

    # -- internals ------------------------------------------------------------------------------------

    def _substeps(self) -> None:
        model, data = self.renderer.warp_model, self.renderer.warp_data
        for _ in range(self.frame_skip):
            self._mjw.step(model, data)
        self._mjw.rne_postconstraint(model, data)  # cfrc_ext, as Gymnasium's MujocoEnv does after its steps

    def _advance(self) -> None:
        """One env step of all worlds: replayed as a CUDA graph on a GPU, launched kernel by kernel on a CPU."""
        wp = self._wp
        if self.device.type != "cuda":
            with self.renderer.on_device():
                self._substeps()
            return
        if self._graph is None:
            # Captured on Warp's own stream of the device (CUDA cannot capture torch's legacy default stream),
            # replayed on torch's current stream below, so it stays ordered with the ctrl upload and the reads.
            # Capturing runs nothing: this step is the graph's first replay.
            with wp.ScopedDevice(self.renderer.warp_device), wp.ScopedCapture() as capture:
                self._substeps()
            self._graph = capture.graph
        with self.renderer.on_device():
            wp.capture_launch(self._graph)

    def _mass_center(self) -> torch.Tensor:
        """``(N, 2)`` the floor position of each world's centre of mass (Humanoid-v5's ``mass_center``)."""
        return (self._mass * self._xipos).sum(dim=1)[:, :2]

    def _pack(self, velocity: torch.Tensor) -> torch.Tensor:
        """Observations, joint positions, tendons, velocities and reward terms of all worlds: ``(N, 382)``."""
        n, w = self.num_envs, self._weights
        qpos = self._qpos
        obs = torch.cat(
            [
                qpos[:, 2:],
                self._qvel,
                self._cinert[:, 1:].reshape(n, -1),
                self._cvel[:, 1:].reshape(n, -1),
                self._qfrc_actuator[:, 6:],
                self._cfrc_ext[:, 1:].reshape(n, -1),
            ],
            dim=1,
        )
        healthy = ((qpos[:, 2] > self._healthy_z[0]) & (qpos[:, 2] < self._healthy_z[1])).float() * w["healthy"]
        forward = w["forward"] * velocity[:, 0]
        ctrl_cost = w["ctrl"] * self._ctrl.square().sum(dim=1)
        contact_cost = (w["contact"] * self._cfrc_ext[:, 1:].square().sum(dim=(1, 2))).clamp(max=self._contact_cost_max)
        terms = torch.stack([healthy, forward, -ctrl_cost, -contact_cost], dim=1)
        return torch.cat([obs, qpos, self._ten_length, self._ten_velocity, velocity, terms], dim=1)

    def _unpack(self, packed: np.ndarray) -> tuple[np.ndarray, list[dict[str, Any]], np.ndarray, np.ndarray]:
        """Observations, infos (Humanoid-v5's keys), rewards and joint positions from :meth:`_pack`'s rows."""
        n_obs = int(np.prod(self.observation_space.shape or (0,)))
        nt = self._ten_length.shape[1]
        obs, rest = packed[:, :n_obs], packed[:, n_obs:]
        qpos, rest = rest[:, : self.nq], rest[:, self.nq :]
        ten_length, ten_velocity, rest = rest[:, :nt], rest[:, nt : 2 * nt], rest[:, 2 * nt :]
        velocity, terms = rest[:, :2], rest[:, 2:6]
        infos = [
            {
                "x_position": float(qpos[i, 0]),
                "y_position": float(qpos[i, 1]),
                "tendon_length": ten_length[i].copy(),
                "tendon_velocity": ten_velocity[i].copy(),
                "distance_from_origin": float(np.linalg.norm(qpos[i, :2])),
                "x_velocity": float(velocity[i, 0]),
                "y_velocity": float(velocity[i, 1]),
                "reward_survive": float(terms[i, 0]),
                "reward_forward": float(terms[i, 1]),
                "reward_ctrl": float(terms[i, 2]),
                "reward_contact": float(terms[i, 3]),
            }
            for i in range(len(packed))
        ]
        return np.ascontiguousarray(obs), infos, terms.sum(axis=1), qpos


_RESET_INFO = ("x_position", "y_position", "tendon_length", "tendon_velocity", "distance_from_origin")
