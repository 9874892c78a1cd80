"""A stable-baselines3 vector env whose envs step in one call and whose frames are drawn in one call.

:class:`BatchedVecEnv` wraps a :class:`BatchedSimulation` (all envs' physics and one batched
renderer) and behaves as ``DummyVecEnv`` of ``RenderFrameInInfo(Monitor(TimeLimit(env)))`` does,
which is what :func:`vlmrm.rl.vec_env_factory.make_vec_env` builds otherwise:

- episodes end by the time limit as truncation (``info["TimeLimit.truncated"]``) or by the env's
  own termination; a finished env is reset at once and its last observation is in
  ``info["terminal_observation"]``;
- a finished episode's ``info["episode"]`` holds stable-baselines3's Monitor statistics
  (``r``, ``l``, ``t``), so ``ep_info_buffer`` and its logging work unchanged;
- the frames of the states each step reached (before any reset) are one ``(N, H, W, 3)`` uint8
  tensor on the renderer's device, from :meth:`BatchedVecEnv.step_frames` (see
  :class:`FrameBatchSource`); they are not copied into the infos.

Seeding follows ``DummyVecEnv``: ``seed(s)`` makes env ``i``'s next reset use seed ``s + i``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn


@runtime_checkable
class FrameBatchSource(Protocol):
    """A vector env that draws all its envs' frames in one call, where the reward model wants them.

    :class:`~vlmrm.rl.vec_env.VecVLMReward` takes a step's frames from :meth:`step_frames` instead of
    ``info["frame"]`` when the vector env it wraps is one.
    """

    @property
    def frame_device(self) -> torch.device:
        """Where the frames are (the reward model's device)."""
        ...

    def step_frames(self) -> torch.Tensor:
        """``(N, H, W, 3)`` uint8: the frames of the states the latest step reached, before any reset."""
        ...


class BatchedSimulation(Protocol):
    """The physics of ``num_envs`` envs and a renderer that draws all of them in one call."""

    num_envs: int
    observation_space: gym.spaces.Space
    """One env's observation space."""
    action_space: gym.spaces.Space
    """One env's action space."""
    device: torch.device
    """Where :meth:`render` puts the frames."""

    def reset_env(self, index: int, seed: int | None, options: dict[str, Any] | None) -> tuple[np.ndarray, dict]:
        """Reset env ``index`` (``seed``: a new random stream, as ``gym.Env.reset``); its observation and info."""
        ...

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """Step all envs: observations ``(N, ...)``, rewards ``(N,)``, terminated ``(N,)`` and infos."""
        ...

    def render(self) -> torch.Tensor:
        """The frames of all envs' current states, ``(N, H, W, 3)`` uint8 on :attr:`device`."""
        ...

    def close(self) -> None:
        """Release what the simulation holds (renderers, GL or GPU contexts)."""
        ...


class EnvListSimulation:
    """``n`` single envs stepped one after another, their frames drawn in one call by ``draw``.

    For envs whose physics is cheap next to drawing (MountainCar) or lives in a simulator per env
    (the Humanoid's MuJoCo): the step is each env's own, so its results are the single env's.

    Args:
        envs: the envs, without a time limit (:class:`BatchedVecEnv` keeps it).
        draw: ``draw(envs)`` -> ``(N, H, W, 3)`` uint8 frames of their current states on ``device``.
        device: where ``draw`` puts the frames.
        renderer_name: what draws them (for the benchmark's table).
        close_renderer: called on :meth:`close`, after the envs are closed.
    """

    def __init__(
        self,
        envs: Sequence[gym.Env],
        draw: Callable[[Sequence[gym.Env]], torch.Tensor],
        device: str | torch.device,
        renderer_name: str,
        close_renderer: Callable[[], None] | None = None,
    ):
        if not envs:
            raise ValueError("at least one env is needed")
        self.envs = list(envs)
        self.num_envs = len(self.envs)
        self.observation_space = self.envs[0].observation_space
        self.action_space = self.envs[0].action_space
        self.draw = draw
        self.device = torch.device(device)
        self.renderer_name = renderer_name
        self._close_renderer = close_renderer

    def reset_env(self, index: int, seed: int | None, options: dict[str, Any] | None) -> tuple[np.ndarray, dict]:
        obs, info = self.envs[index].reset(seed=seed, options=options)
        return np.asarray(obs), info

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        results = [env.step(action) for env, action in zip(self.envs, actions, strict=True)]
        obs = np.stack([np.asarray(result[0]) for result in results])
        rewards = np.array([float(result[1]) for result in results], dtype=np.float64)
        terminated = np.array([bool(result[2]) for result in results], dtype=bool)
        return obs, rewards, terminated, [result[4] for result in results]

    def render(self) -> torch.Tensor:
        return self.draw(self.envs)

    def close(self) -> None:
        for env in self.envs:
            env.close()
        if self._close_renderer is not None:
            self._close_renderer()


class BatchedVecEnv(VecEnv):
    """``num_envs`` envs stepped and drawn in one call each (see the module docstring).

    Args:
        sim: the physics and renderer of all envs.
        episode_length: the time limit, in steps.
    """

    def __init__(self, sim: BatchedSimulation, episode_length: int):
        if episode_length <= 0:
            raise ValueError(f"episode_length must be positive, got {episode_length}")
        self.sim = sim
        self.episode_length = int(episode_length)
        self.render_mode = "rgb_array"
        super().__init__(sim.num_envs, sim.observation_space, sim.action_space)
        n = self.num_envs
        self._actions: np.ndarray | None = None
        self._returns = np.zeros(n, dtype=np.float64)
        self._lengths = np.zeros(n, dtype=np.int64)
        self._obs: np.ndarray | None = None
        self._frames: torch.Tensor | None = None
        self._t_start = time.time()

    # -- the VecEnv interface ------------------------------------------------------------------------

    @property
    def frame_device(self) -> torch.device:
        return self.sim.device

    def reset(self) -> VecEnvObs:
        observations = []
        for i in range(self.num_envs):
            obs, self.reset_infos[i] = self.sim.reset_env(i, self._seeds[i], self._options[i] or None)
            observations.append(obs)
        self._reset_seeds()
        self._reset_options()
        self._returns[:] = 0.0
        self._lengths[:] = 0
        self._frames = None
        self._obs = np.stack(observations)
        return self._obs.copy()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise RuntimeError("step_wait() without step_async()")
        actions, self._actions = self._actions, None
        obs, rewards, terminated, infos = self.sim.step(actions)
        rewards = np.asarray(rewards, dtype=np.float64)
        terminated = np.asarray(terminated, dtype=bool)
        self._returns += rewards
        self._lengths += 1
        truncated = self._lengths >= self.episode_length
        self._frames = self.sim.render()  # the states this step reached, before any reset
        dones = terminated | truncated
        obs = np.array(obs, copy=True)
        for i, info in enumerate(infos):
            info["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        for i in np.flatnonzero(dones).tolist():
            infos[i]["episode"] = {
                "r": round(float(self._returns[i]), 6),
                "l": int(self._lengths[i]),
                "t": round(time.time() - self._t_start, 6),
            }
            infos[i]["terminal_observation"] = obs[i].copy()
            obs[i], self.reset_infos[i] = self.sim.reset_env(i, self._seeds[i], self._options[i] or None)
            self._returns[i] = 0.0
            self._lengths[i] = 0
        self._obs = obs
        return obs.copy(), rewards.astype(np.float32), dones, infos

    def step_frames(self) -> torch.Tensor:
        if self._frames is None:
            raise RuntimeError("no step taken since the last reset: step_frames() has nothing to return")
        return self._frames

    def close(self) -> None:
        self.sim.close()

    def get_images(self) -> Sequence[np.ndarray | None]:
        frames = self.sim.render().cpu().numpy()
        return list(frames)

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        if attr_name == "render_mode":
            value: Any = "rgb_array"
        elif hasattr(self.sim, attr_name):
            value = getattr(self.sim, attr_name)
        else:
            raise AttributeError(f"{type(self.sim).__name__} has no attribute {attr_name!r}")
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        setattr(self.sim, attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **kwargs: Any) -> list:
        if method_name == "render":
            frames = self.get_images()
            return [frames[i] for i in self._get_indices(indices)]
        raise AttributeError(f"a batched vector env steps its envs together; it has no per-env method {method_name!r}")

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        # The episode statistics a Monitor would add are in the infos: callers that check for a
        # Monitor (evaluate_policy) get what they look for.
        return [issubclass(Monitor, wrapper_class) for _ in self._get_indices(indices)]


__all__ = [
    "BatchedSimulation",
    "BatchedVecEnv",
    "EnvListSimulation",
    "FrameBatchSource",
]
