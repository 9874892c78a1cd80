"""MountainCar's options and spec: what the registry knows of the env (the modules that build it load on use).

>>> MOUNTAINCAR_SPEC.gym_id, MOUNTAINCAR_SPEC.action_kind
('MountainCarContinuous-v0', 'continuous')
"""

from __future__ import annotations

import numpy as np

from vlmrm.envs.classic import ClassicOptions
from vlmrm.envs.spec import EnvSpec, Prompts, StateSweep, any_step_succeeds

MOUNTAIN_MIN_X, MOUNTAIN_MAX_X = -1.2, 0.6
"""The track's ends (Gymnasium's ``min_position`` and ``max_position``); both looks span the frame with it."""


class MountainCarOptions(ClassicOptions):
    """Options of ``mountaincar``."""

    terminate_at_goal: bool = False
    """End the episode at the flag. Off: a dense reward that peaks at the goal should be collected there."""
    clip_at_goal: bool = True
    """Once the car has reached the flag, keep it from driving past (position at most 0.45), as the paper's
    authors did; the episode goes on."""
    textured: bool = False
    """Draw the realistic look (sky, grassy hill, red car) instead of Gymnasium's flat one."""


def mountaincar_sweep(options: MountainCarOptions, points: int) -> StateSweep:
    """The car position over the whole track, at rest, in both looks; goal: the flag at 0.45."""
    values = np.linspace(MOUNTAIN_MIN_X, MOUNTAIN_MAX_X, points)
    looks = {"flat": {"textured": False}, "textured": {"textured": True}}
    return StateSweep("car position", values, 0.45, [{"state": [x, 0.0]} for x in values], looks)


MOUNTAINCAR_SPEC = EnvSpec(
    name="mountaincar",
    description="MountainCarContinuous-v0, square renderer",
    entry_point="vlmrm.envs.mountaincar.env:make_mountaincar",
    options=MountainCarOptions,
    default_episode_length=200,
    action_kind="continuous",
    prompts=lambda options: Prompts(
        ("a car at the peak of the mountain, next to the yellow flag",), ("a car in the mountain",)
    ),
    sweep=mountaincar_sweep,
    episode_success=any_step_succeeds,
    vector_entry_point="vlmrm.envs.mountaincar.vector:make_mountaincar_vector",
    gym_id="MountainCarContinuous-v0",
)
