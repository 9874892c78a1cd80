"""What vlmrm knows about an environment, as data: :class:`EnvSpec`.

A spec says how to build the environment (an ``entry_point`` imported on first use, the Gymnasium
convention, so that looking up the Humanoid's spec does not load MuJoCo), which options it takes
(a pydantic model: unknown or mistyped options are errors that name the closest valid one), its
default episode length, what kind of actions it has, its default prompts, its landscape sweep and
how per-step success flags make an episode's success. Everything else in vlmrm (the config, the
landscapes, the benchmark, dataset collection) reads env knowledge from here.

An environment whose state can be read and set implements :class:`StatefulEnv`; landscapes and
datasets use it instead of reaching into simulator attributes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict

ActionKind = Literal["discrete", "continuous"]
SimState = dict[str, np.ndarray]
"""A simulator state: named arrays (``{"state": ...}`` for classic control, ``{"qpos", "qvel"}`` for MuJoCo)."""


class EnvOptions(BaseModel):
    """Base of every env's options: strict (``"yes"`` is not a bool, ``1`` is not ``True``), no unknown keys."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


@runtime_checkable
class StatefulEnv(Protocol):
    """An environment whose simulator state can be read and set (for landscapes and datasets)."""

    def get_sim_state(self) -> SimState:
        """The state that reproduces the current frame."""
        ...

    def set_sim_state(self, state: Mapping[str, Any]) -> None:
        """Put the simulator in ``state`` (as :meth:`get_sim_state` returns it; missing velocities are zero)."""
        ...


@dataclass(frozen=True)
class Prompts:
    """Default sentences for an environment's goal and for its scene in general."""

    target: tuple[str, ...]
    baseline: tuple[str, ...] = ()


@dataclass(frozen=True)
class StateSweep:
    """States that move towards the goal along one variable, for a reward landscape.

    Attributes:
        variable: the swept variable, for axis labels (e.g. ``"pole angle (rad)"``).
        values: the variable's value in each state, ``(N,)``.
        goal: the variable's value at the goal state (marked in plots).
        states: the simulator state of each point, for :meth:`StatefulEnv.set_sim_state`.
        looks: option overrides for each look the sweep can be drawn in (``{"flat": {}}`` when there is one).
    """

    variable: str
    values: np.ndarray
    goal: float
    states: Sequence[Mapping[str, Any]]
    looks: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: {"flat": {}})


def any_step_succeeds(step_success: Sequence[bool]) -> bool:
    """An episode succeeds if the success flag was set at any step (e.g. reaching a goal)."""
    return any(step_success)


def all_steps_succeed(step_success: Sequence[bool]) -> bool:
    """An episode succeeds if the flag is set at every step (CartPole: the pole never fell)."""
    return len(step_success) > 0 and all(step_success)


def half_of_steps_succeed(step_success: Sequence[bool]) -> bool:
    """An episode succeeds if the flag is set for at least half of its steps.

    vlmrm's rule for holding a pose (the paper's raters judged whole episodes by eye; this
    automatic rule is ours).
    """
    return len(step_success) > 0 and 2 * sum(bool(s) for s in step_success) >= len(step_success)


@dataclass(frozen=True)
class EnvSpec:
    """How to build one environment and what vlmrm knows about it.

    Attributes:
        name: the name used in configs and on the command line.
        description: one line for ``--help`` and error messages.
        entry_point: ``"module:function"``; ``function(render_size, episode_length, options)`` builds the env.
        options: the pydantic model of the env's options (``env.options`` in a config).
        default_episode_length: episode length when the config gives none.
        action_kind: ``"discrete"`` or ``"continuous"`` (which algorithms apply).
        prompts: default target and baseline prompts for given options.
        sweep: the landscape sweep for given options and number of points; ``None`` when there is none.
        episode_success: turns the per-step ``info["is_success"]`` flags of one episode into the
            episode's success; ``None`` when the env reports no success flag.
        uses_mujoco: whether an OpenGL backend must be chosen before the env is built.
        vector_entry_point: ``"module:function"``; ``function(n_envs, render_size, episode_length, options,
            device)`` builds ``n_envs`` copies as one batched stable-baselines3 vector env that draws all
            frames in one call on ``device`` (:mod:`vlmrm.envs.vector`); ``None`` when there is none.
        tasks: named goals and their sentences, picked with the env's ``task`` option (the Humanoid's
            poses); empty for an env with one goal (:meth:`task_sentences` then names it after the env).
        gym_id: the Gymnasium env this one reproduces, whose own renderer is the benchmark's reference
            render (``CartPole-v1``); ``None`` when vlmrm's render is the reference (the Humanoid's scene).
        vector_draws_on_device: ``function(options, device)``: whether the batched version, with these
            options, draws its frames on ``device`` itself (no frames through the host), which is what
            ``env.vectorized: auto`` asks before it picks the batched env on a GPU; ``None``: it does
            wherever there is a batched version.
    """

    name: str
    description: str
    entry_point: str
    options: type[EnvOptions]
    default_episode_length: int
    action_kind: ActionKind
    prompts: Callable[[Any], Prompts]
    sweep: Callable[[Any, int], StateSweep] | None = None
    episode_success: Callable[[Sequence[bool]], bool] | None = None
    uses_mujoco: bool = False
    vector_entry_point: str | None = None
    tasks: Mapping[str, str] = field(default_factory=dict)
    gym_id: str | None = None
    vector_draws_on_device: Callable[[Any, str], bool] | None = None

    def batched_on_device(self, options: Mapping[str, Any] | None, device: str) -> bool:
        """Whether ``env.vectorized: auto`` picks the batched env for frames wanted on ``device``: only on a GPU,
        and only where the batched version draws there (a CPU draws single frames as fast, with Pillow)."""
        if self.vector_entry_point is None or not device.startswith("cuda"):
            return False
        if self.vector_draws_on_device is None:
            return True
        return self.vector_draws_on_device(self.options.model_validate(dict(options or {})), device)

    def task_sentences(self) -> dict[str, str]:
        """Task names and their sentences: :attr:`tasks`, or the env's name for its default goal."""
        return dict(self.tasks) or {self.name: self.default_prompts().target[0]}

    def option_names(self) -> list[str]:
        """The names of the env's options."""
        return list(self.options.model_fields)

    def default_prompts(self, options: Mapping[str, Any] | None = None) -> Prompts:
        """The default prompts for ``options`` (validated)."""
        return self.prompts(self.options.model_validate(dict(options or {})))


__all__ = [
    "EnvOptions",
    "EnvSpec",
    "Prompts",
    "SimState",
    "StateSweep",
    "StatefulEnv",
    "all_steps_succeed",
    "any_step_succeeds",
    "half_of_steps_succeed",
]
