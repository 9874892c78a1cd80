"""CartPole's options and spec: what the registry knows of the env (the modules that build it load on use).

>>> CARTPOLE_SPEC.gym_id, CARTPOLE_SPEC.action_kind
('CartPole-v1', 'discrete')
"""

from __future__ import annotations

import math

import numpy as np

from vlmrm.envs.classic import ClassicOptions
from vlmrm.envs.spec import EnvSpec, Prompts, StateSweep, all_steps_succeed


class CartPoleOptions(ClassicOptions):
    """Options of ``cartpole``."""

    terminate_on_fall: bool = False
    """End the episode when the pole falls (Gymnasium's CartPole-v1 rule). Off (the paper's authors): the
    episode goes on to its time limit, the pole angle wrapped into [-pi, pi] and the cart held inside the
    track after every step, so an early end cannot act as a survival bonus for a reward above 0."""


def cartpole_sweep(options: CartPoleOptions, points: int, max_angle: float = math.pi / 2) -> StateSweep:
    """The pole angle from ``-max_angle`` (leaning left) to ``+max_angle``, cart centred; goal: upright."""
    values = np.linspace(-max_angle, max_angle, points)
    return StateSweep("pole angle (rad)", values, 0.0, [{"state": [0.0, 0.0, theta, 0.0]} for theta in values])


CARTPOLE_SPEC = EnvSpec(
    name="cartpole",
    description="CartPole-v1 (discrete actions), square renderer",
    entry_point="vlmrm.envs.cartpole.env:make_cartpole",
    options=CartPoleOptions,
    default_episode_length=200,
    action_kind="discrete",
    prompts=lambda options: Prompts(("pole vertically upright on top of the cart",), ("pole and cart",)),
    sweep=cartpole_sweep,
    episode_success=all_steps_succeed,
    vector_entry_point="vlmrm.envs.cartpole.vector:make_cartpole_vector",
    gym_id="CartPole-v1",
)
