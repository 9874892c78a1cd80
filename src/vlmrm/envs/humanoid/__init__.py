"""The MuJoCo Humanoid of the paper's main experiment, as one sub-package.

- :mod:`~vlmrm.envs.humanoid.tasks`: the eight tasks and their sentences (no simulator import).
- :mod:`~vlmrm.envs.humanoid.options`: the env's options (task, camera, look) and its spec (no simulator import).
- :mod:`~vlmrm.envs.humanoid.env`: the environment (imports MuJoCo after choosing an offscreen GL backend).
- :mod:`~vlmrm.envs.humanoid.scene`: the textured scene, generated in memory.
- :mod:`~vlmrm.envs.humanoid.success`: pose detectors and hand-built poses.
"""
