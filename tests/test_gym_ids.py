"""vlmrm's envs under Gymnasium ids: ``gym.make("vlmrm/CartPole-v0")``, options as keyword arguments."""

from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

import vlmrm.envs.registry  # noqa: F401  # importing the registry registers the ids
from vlmrm.envs.gym_ids import GYMNASIUM_IDS
from vlmrm.envs.humanoid.tasks import TASKS
from vlmrm.errors import ConfigError


def test_every_env_and_humanoid_task_has_an_id() -> None:
    assert {"vlmrm/CartPole-v0", "vlmrm/MountainCarContinuous-v0", "vlmrm/Humanoid-v0"} <= set(gym.registry)
    assert {f"vlmrm/Humanoid-{task}-v0" for task in TASKS} <= set(gym.registry)
    assert set(GYMNASIUM_IDS) <= set(gym.registry)


def test_the_module_id_form_registers_in_a_fresh_process() -> None:
    code = (
        "import gymnasium as gym\n"
        "env = gym.make('vlmrm.envs.gym_ids:vlmrm/CartPole-v0', render_size=24)\n"
        "env.reset(seed=0)\n"
        "assert env.render().shape == (24, 24, 3) and env.spec.id == 'vlmrm/CartPole-v0'\n"
        "assert 'vlmrm/Humanoid-kneeling-v0' in gym.registry\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.filterwarnings("ignore:.*render_mode='depth_array' that is not in the possible render_modes")
def test_options_are_keyword_arguments() -> None:
    env = gym.make("vlmrm/CartPole-v0", render_size=32, episode_length=5, terminate_on_fall=True)
    assert env.unwrapped.options.terminate_on_fall and env.render_mode == "rgb_array"
    env.reset(seed=0)
    for _ in range(5):
        *_, truncated, info = env.step(env.action_space.sample())
    assert truncated or not info["is_success"]
    textured = gym.make("vlmrm/MountainCarContinuous-v0", render_size=32, textured=True, render_mode="rgb_array")
    flat = gym.make("vlmrm/MountainCarContinuous-v0", render_size=32)
    textured.reset(seed=0), flat.reset(seed=0)
    assert not np.array_equal(textured.render(), flat.render())
    with pytest.raises(ConfigError, match="Did you mean 'terminate_on_fall'"):
        gym.make("vlmrm/CartPole-v0", terminate_on_falls=True)
    with pytest.raises(ValueError, match="render rgb_array frames"):
        gym.make("vlmrm/CartPole-v0", render_mode="depth_array")


def test_a_humanoid_task_id_reports_success() -> None:
    env = gym.make("vlmrm/Humanoid-kneeling-v0", render_size=32, episode_length=2, camera="gymnasium")
    assert env.unwrapped.options.task == "kneeling"
    env.reset(seed=0)
    *_, info = env.step(env.action_space.sample())
    assert isinstance(info["is_success"], bool) and env.render().shape == (32, 32, 3)
    env.close()


def test_stable_baselines3_makes_them_by_id() -> None:
    from stable_baselines3.common.env_util import make_vec_env

    venv = make_vec_env("vlmrm/CartPole-v0", n_envs=2, seed=0, env_kwargs={"render_size": 16})
    assert venv.reset().shape == (2, 4)
    venv.close()
