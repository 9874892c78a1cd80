"""Batched environments: one call steps all envs, one call draws all their frames on a torch device.

See :mod:`vlmrm.envs.vector.vec_env` (the stable-baselines3 vector env),
:mod:`vlmrm.envs.vector.classic_control` (CartPole and MountainCar),
:mod:`vlmrm.envs.vector.render` and :mod:`vlmrm.envs.vector.textured` (the renderers).
"""
