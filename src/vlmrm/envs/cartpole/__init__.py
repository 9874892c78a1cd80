"""CartPole with a square renderer, as one sub-package (the Humanoid's and MountainCar's layout).

- :mod:`~vlmrm.envs.cartpole.spec`: the env's options and its spec (what the registry reads).
- :mod:`~vlmrm.envs.cartpole.env`: the single env (Gymnasium's ``CartPoleEnv`` with vlmrm's rules).
- :mod:`~vlmrm.envs.cartpole.draw`: where the shapes lie, and the Pillow renderer.
- :mod:`~vlmrm.envs.cartpole.vector`: all envs in arrays, their frames drawn on a torch device.
"""
