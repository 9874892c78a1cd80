"""Environments render square frames at the requested size and end episodes by truncation."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from vlmrm.envs import available_envs, make_env
from vlmrm.errors import ConfigError


@pytest.mark.parametrize("name", ["cartpole", "mountaincar"])
@pytest.mark.parametrize("size", [64, 224])
def test_frames_are_square_uint8(name: str, size: int) -> None:
    env = make_env(name, render_size=size, episode_length=5)
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (size, size, 3) and frame.dtype == np.uint8
    assert frame.std() > 0  # something is drawn


def test_episode_length_is_a_truncation() -> None:
    env = make_env("mountaincar", render_size=32, episode_length=7)
    env.reset(seed=0)
    results = [env.step(np.zeros(1, np.float32)) for _ in range(7)]
    assert not any(r[2] for r in results), "no termination before the time limit"
    assert results[-1][3] and not any(r[3] for r in results[:-1])


def test_cartpole_frame_follows_state() -> None:
    env = make_env("cartpole", render_size=96)
    env.reset(seed=0)
    env.unwrapped.set_sim_state({"state": [0.0, 0.0, 0.0, 0.0]})
    upright = env.render()
    env.unwrapped.set_sim_state({"state": [0.0, 0.0, 0.8, 0.0]})
    leaning = env.render()
    assert np.abs(upright.astype(int) - leaning.astype(int)).sum() > 0
    env.unwrapped.set_sim_state({"state": [1.5, 0.0, 0.0, 0.0]})
    moved = env.render()
    # The cart (black) moves right: the right half darkens.
    assert moved[:, 48:].mean() < upright[:, 48:].mean()


def test_mountaincar_reports_success_without_terminating() -> None:
    env = make_env("mountaincar", render_size=32, episode_length=50)
    env.reset(seed=0)
    env.unwrapped.set_sim_state({"state": [0.5, 0.05]})
    _, _, terminated, _, info = env.step(np.ones(1, np.float32))
    assert info["is_success"] and not terminated


def test_unknown_env_and_option() -> None:
    assert {"cartpole", "mountaincar"} <= set(available_envs())
    with pytest.raises(ConfigError, match="Did you mean 'cartpole'"):
        make_env("cartpol")
    with pytest.raises(ConfigError, match="Did you mean 'terminate_at_goal'"):
        make_env("mountaincar", terminate_at_gaol=True)


def test_classic_control_envs_do_not_load_mujoco() -> None:
    """MuJoCo's import probes for a GL backend and logs; a CartPole run must not pay for it."""
    code = (
        "import sys\n"
        "import vlmrm.envs.humanoid.tasks\n"
        "assert 'gymnasium' not in sys.modules, 'the task list pulled in gymnasium'\n"
        "from vlmrm.envs import get_env_spec, make_env\n"
        "make_env('cartpole', render_size=32).close()\n"
        "make_env('mountaincar', render_size=32).close()\n"
        "assert 'mujoco' not in sys.modules, 'a classic-control env loaded mujoco'\n"
        "assert get_env_spec('humanoid').uses_mujoco\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_cartpole_has_the_paper_authors_dynamics() -> None:
    """No early end: a random policy's episode lasts exactly 200 steps; the angle is wrapped into [-pi, pi] and
    the cart held on the track; per-step success is Gymnasium's own "would not have ended" rule, reported only."""
    env = make_env("cartpole", render_size=32)
    env.reset(seed=0)
    env.action_space.seed(0)
    steps, upright, fell = 0, [], False
    while True:
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        steps += 1
        x, _, theta, _ = env.unwrapped.state
        assert -2.4 <= x <= 2.4 and -np.pi <= theta < np.pi and env.observation_space.contains(obs)
        gymnasium_ends = abs(x) >= 2.4 or abs(theta) > 12 * 2 * np.pi / 360
        fell = fell or gymnasium_ends
        assert info["is_success"] is (not gymnasium_ends) and reward == float(info["is_success"])
        upright.append(info["is_success"])
        assert not terminated
        if truncated:
            break
    assert steps == 200 and fell and not all(upright)  # a random policy drops the pole, and goes on
    gym_like = make_env("cartpole", render_size=32, terminate_on_fall=True)
    gym_like.reset(seed=0)
    assert any(gym_like.step(1)[2] for _ in range(200))  # Gymnasium's CartPole-v1 ends when the pole falls


def test_mountaincar_stops_at_the_flag_once_reached_and_goes_on() -> None:
    env = make_env("mountaincar", render_size=32, episode_length=50)
    env.reset(seed=0)
    env.unwrapped.set_sim_state({"state": [0.44, 0.05]})
    _, _, terminated, _, info = env.step(np.array([1.0], dtype=np.float32))
    assert info["is_success"] and not terminated
    assert env.unwrapped.state[0] == pytest.approx(0.45)  # clipped at the flag, not past it
    for _ in range(5):
        _, _, terminated, _, _ = env.step(np.array([1.0], dtype=np.float32))
        assert env.unwrapped.state[0] <= 0.45 and not terminated


def test_the_old_classic_control_modules_answer_from_the_per_env_packages() -> None:
    """vlmrm 0.1's module names (one module for both envs, renderers under envs/vector) keep working, with a
    DeprecationWarning that names the new modules."""
    from vlmrm.envs.cartpole.draw import render_cartpole
    from vlmrm.envs.cartpole.spec import CARTPOLE_SPEC
    from vlmrm.envs.cartpole.vector import CartPoleFrames, make_cartpole_vector
    from vlmrm.envs.mountaincar.env import SquareMountainCarContinuous
    from vlmrm.envs.mountaincar.textured import render_mountaincar_textured
    from vlmrm.envs.mountaincar.vector import MountainCarFrames, TexturedMountainCarFrames

    with pytest.warns(DeprecationWarning, match=r"vlmrm\.envs\.classic_control was split into vlmrm\.envs\.classic"):
        import vlmrm.envs.classic_control as old

    assert old.render_cartpole is render_cartpole and old.CARTPOLE_SPEC is CARTPOLE_SPEC
    assert old.SquareMountainCarContinuous is SquareMountainCarContinuous
    with pytest.raises(AttributeError, match="it was split into"):
        _ = old.no_such_name
    with pytest.warns(DeprecationWarning, match="moved to vlmrm.envs.mountaincar.textured"):
        from vlmrm.envs.mountaincar_textured import render_mountaincar_textured as old_textured
    assert old_textured is render_mountaincar_textured
    with pytest.warns(DeprecationWarning):
        from vlmrm.envs.vector.classic_control import make_cartpole_vector as old_vector
    assert old_vector is make_cartpole_vector
    with pytest.warns(DeprecationWarning, match="moved to vlmrm.envs.mountaincar.vector"):
        from vlmrm.envs.vector.textured import TexturedMountainCarFrames as old_textured_frames
    assert old_textured_frames is TexturedMountainCarFrames
    with pytest.warns(DeprecationWarning, match=r"CartPoleFrames moved to vlmrm\.envs\.cartpole\.vector"):
        from vlmrm.envs.vector.render import CartPoleFrames as old_frames
    assert old_frames is CartPoleFrames
    with pytest.warns(DeprecationWarning):
        from vlmrm.envs.vector.render import MountainCarFrames as old_mc_frames
    assert old_mc_frames is MountainCarFrames
