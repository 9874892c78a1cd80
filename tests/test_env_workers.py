"""What a subprocess env worker loads: the env, never the reward model's stack."""

from __future__ import annotations

import subprocess
import sys

import cloudpickle
import pytest

from vlmrm.config import load_config
from vlmrm.rl.vec_env_factory import env_builder

# What SubprocVecEnv's worker process does: import SB3's worker loop, unpickle its env thunk, call it.
WORKER = """
import sys
import cloudpickle
import stable_baselines3.common.vec_env.subproc_vec_env
env = cloudpickle.loads(sys.stdin.buffer.read())()
env.reset(seed=0)
frame = env.step(env.action_space.sample())[4]["frame"]
print(frame.shape, *sorted(m for m in ("transformers", "vlmrm.reward", "vlmrm.rl.vec_env") if m in sys.modules))
"""


@pytest.mark.slow
def test_an_env_worker_loads_nothing_of_the_reward_model() -> None:
    options = load_config("configs/humanoid-kneeling.yaml").env.options
    thunk = cloudpickle.dumps(env_builder("humanoid", 32, 20, options, seed=0, in_worker=True))
    result = subprocess.run([sys.executable, "-c", WORKER], input=thunk, capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert result.stdout.decode().split("\n")[0] == "(32, 32, 3)"  # it renders, and loaded none of those
