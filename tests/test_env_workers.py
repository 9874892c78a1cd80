"""What a subprocess env worker loads, and the episode statistics of the envs it steps."""

from __future__ import annotations

import subprocess
import sys

import cloudpickle
import numpy as np

from vlmrm.rl.env_worker import env_builder
from vlmrm.rl.vec_env_factory import make_vec_env

# What SubprocVecEnv's worker does with its env thunk: unpickle it in a fresh interpreter and call it.
WORKER = """
import sys
import cloudpickle
env = cloudpickle.loads(sys.stdin.buffer.read())()
env.reset(seed=0)
frame = env.step(env.action_space.sample())[4]["frame"]
print(frame.shape, *sorted(m for m in ("torch", "stable_baselines3", "transformers") if m in sys.modules))
"""


def test_an_env_worker_imports_neither_torch_nor_stable_baselines3() -> None:
    thunk = cloudpickle.dumps(env_builder("cartpole", 32, 20, {}, seed=0, in_worker=True))
    result = subprocess.run([sys.executable, "-c", WORKER], input=thunk, capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert result.stdout.decode().split("\n")[0] == "(32, 32, 3)"  # it renders, and loaded none of them


def test_subprocess_envs_report_their_episodes() -> None:
    venv = make_vec_env("cartpole", 2, 32, episode_length=5, seed=0, kind="subproc")
    try:
        venv.reset()
        episodes = []
        for _ in range(5):
            _, rewards, dones, infos = venv.step(np.array([venv.action_space.sample() for _ in range(2)]))
            episodes += [info["episode"] for info in infos if "episode" in info]
        assert dones.all() and len(episodes) == 2
        assert all(episode["l"] == 5 and episode["r"] == 5.0 for episode in episodes)  # 1 per step while up
    finally:
        venv.close()
