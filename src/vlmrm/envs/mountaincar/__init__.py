"""MountainCarContinuous with a square renderer in two looks, as one sub-package.

- :mod:`~vlmrm.envs.mountaincar.spec`: the env's options and its spec (what the registry reads).
- :mod:`~vlmrm.envs.mountaincar.env`: the single env (Gymnasium's dynamics, clipped at the flag).
- :mod:`~vlmrm.envs.mountaincar.draw`: the flat look (Gymnasium's): the track, the car's geometry, Pillow.
- :mod:`~vlmrm.envs.mountaincar.textured`: the realistic look (sky, hills, a red car), in the same geometry.
- :mod:`~vlmrm.envs.mountaincar.vector`: all envs in one batch, their frames drawn on a torch device.
"""
