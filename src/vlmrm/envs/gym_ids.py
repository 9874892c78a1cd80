"""vlmrm's envs under Gymnasium ids, for ``gym.make`` and the tools built on it (rl-baselines3-zoo).

=================================== ===========================================
id                                  vlmrm env
=================================== ===========================================
``vlmrm/CartPole-v0``               ``cartpole``
``vlmrm/MountainCarContinuous-v0``  ``mountaincar``
``vlmrm/Humanoid-v0``               ``humanoid`` (no task)
``vlmrm/Humanoid-<task>-v0``        ``humanoid`` with ``task=<task>``, e.g. ``vlmrm/Humanoid-kneeling-v0``
=================================== ===========================================

The ids are registered when this module is imported, which importing :mod:`vlmrm.envs.registry`
(anything that makes a vlmrm env) does too; Gymnasium's ``"module:id"`` form imports it for you.
Keyword arguments of ``gym.make`` are ``render_size`` (default 224), ``episode_length`` (default: the
env's) and the env's options (``terminate_on_fall=True``, ``camera="gymnasium"``, ...); the env renders
``rgb_array`` frames (``render_mode="human"`` shows them in a window, Gymnasium's ``HumanRendering``).
The rewards are the envs' own: a VLM reward is added by :class:`vlmrm.VLMRewardWrapper` or by training.

>>> import gymnasium as gym
>>> env = gym.make("vlmrm.envs.gym_ids:vlmrm/CartPole-v0", render_size=32, terminate_on_fall=True)
>>> env.spec.id, env.reset(seed=0)[0].shape, env.render().shape
('vlmrm/CartPole-v0', (4,), (32, 32, 3))
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from vlmrm.envs.humanoid.tasks import TASKS

NAMESPACE = "vlmrm"

GYMNASIUM_IDS: dict[str, tuple[str, dict[str, Any]]] = {
    f"{NAMESPACE}/CartPole-v0": ("cartpole", {}),
    f"{NAMESPACE}/MountainCarContinuous-v0": ("mountaincar", {}),
    f"{NAMESPACE}/Humanoid-v0": ("humanoid", {}),
    **{f"{NAMESPACE}/Humanoid-{task}-v0": ("humanoid", {"task": task}) for task in TASKS},
}
"""Each Gymnasium id: the vlmrm env it makes and the options it fixes."""


def make_registered(
    vlmrm_env: str,
    render_mode: str | None = "rgb_array",
    render_size: int = 224,
    episode_length: int | None = None,
    **options: Any,
) -> gym.Env:
    """The entry point of every id: :func:`vlmrm.envs.make_env` with Gymnasium's keyword arguments."""
    from vlmrm.envs import make_env  # the package's lazy name: the registry imports this module

    if render_mode not in (None, "rgb_array"):
        raise ValueError(f"vlmrm's envs render rgb_array frames, not render_mode={render_mode!r}")
    return make_env(vlmrm_env, render_size=render_size, episode_length=episode_length, **options)


make_registered.metadata = {"render_modes": ["rgb_array"]}  # type: ignore[attr-defined]  # read by gym.make


def register_gymnasium_ids() -> None:
    """Register :data:`GYMNASIUM_IDS` with Gymnasium (ids already registered are left as they are)."""
    for env_id, (name, fixed) in GYMNASIUM_IDS.items():
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=f"{__name__}:make_registered", kwargs={"vlmrm_env": name, **fixed})


register_gymnasium_ids()
