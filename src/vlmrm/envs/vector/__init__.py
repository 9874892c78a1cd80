"""What every batched environment shares: one call steps all envs, one call draws all their frames on a device.

:mod:`vlmrm.envs.vector.vec_env` (the stable-baselines3 vector env and the simulation protocol),
:mod:`vlmrm.envs.vector.render` (the renderer protocol and backend rule) and
:mod:`vlmrm.envs.vector.raster` (drawing primitives on the device, CUDA-graph capture). Each env's own
batched version lives in its package: :mod:`vlmrm.envs.cartpole.vector`, :mod:`vlmrm.envs.mountaincar.vector`,
:mod:`vlmrm.envs.humanoid.vector`.
"""
