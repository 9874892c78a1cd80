"""Classic control from device state: CartPole's physics over a float64 tensor, the shapes of both envs placed
on the device, and what comes of them equal to the host's (states to a stated bound, shape integers and frames
exactly, episodes step for step).

Parametrised over the devices this machine has: the CPU device of torch always, CUDA where there is one.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from vlmrm.envs.cartpole.draw import render_cartpole
from vlmrm.envs.cartpole.spec import CartPoleOptions
from vlmrm.envs.cartpole.vector import CartPoleFrames, CartPoleSimulation
from vlmrm.envs.mountaincar.draw import render_mountaincar
from vlmrm.envs.mountaincar.spec import MOUNTAIN_MAX_X, MOUNTAIN_MIN_X
from vlmrm.envs.mountaincar.vector import MountainCarFrames
from vlmrm.envs.vector.raster import EllipseStamps
from vlmrm.envs.vector.vec_env import BatchedVecEnv
from vlmrm.rl.vec_env_factory import make_vec_env
from vlmrm.rl.wrappers import FRAME_KEY

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

STATE_TOLERANCE = 1e-9
"""How far device states may drift from the host's over :func:`test_device_physics_follows_the_host_physics`'s
300 steps. torch's float64 ``sin``/``cos`` differ from libm's by one unit in the last place for about 0.2 % of
arguments (measured on the CPU; CUDA's are within 2 units), so states are not bit-identical; the drift measured
on the CPU is 2e-13, far from anything a float32 observation, a threshold or a pixel can see."""

OBS_TOLERANCE = 1e-6
"""Float32 observations of states within :data:`STATE_TOLERANCE` (measured on the CPU: equal)."""


def random_states(n: int, seed: int) -> np.ndarray:
    """Random CartPole states over the whole picture: the cart on and past the track, the pole all round."""
    rng = np.random.default_rng(seed)
    return np.stack(
        [rng.uniform(-2.6, 2.6, n), rng.uniform(-2, 2, n), rng.uniform(-math.pi, math.pi, n), rng.uniform(-3, 3, n)],
        1,
    )


def edge_states() -> np.ndarray:
    """The cart at, next to and past the track ends; the pole level, upright, upside down and past +-pi
    (wrapped or not); the angles where the pole's edges lie on one pixel row (horizontal edges)."""
    xs = (-2.6, -2.4, -2.39, 0.0, 1.0, 2.4, 2.6)
    thetas = (0.0, -0.0, math.pi / 2, -math.pi / 2, math.pi, -math.pi, 3.2, -3.2, 0.3, 1e-9)
    return np.array([[x, 0.0, theta, 0.0] for x in xs for theta in thetas])


def host_and_device(device: str, n: int, terminate_on_fall: bool) -> tuple[CartPoleSimulation, CartPoleSimulation]:
    options = CartPoleOptions(terminate_on_fall=terminate_on_fall)
    host = CartPoleSimulation(n, 16, options, "cpu", "torch", device_state=False)
    on_device = CartPoleSimulation(n, 16, options, device, "torch", device_state=True)
    return host, on_device


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("terminate_on_fall", [False, True])
def test_device_physics_follows_the_host_physics(device: str, terminate_on_fall: bool) -> None:
    """300 random steps from random states: states within the bound, the same observations, rewards and falls,
    and the device's frames are Pillow's frames of the host's states."""
    n = 64
    host, on_device = host_and_device(device, n, terminate_on_fall)
    start = random_states(n, 0)
    start[:, 0] = np.clip(start[:, 0], -2.4, 2.4)
    host.set_states(start)
    on_device.set_states(start)
    assert on_device.state.dtype == torch.float64 and on_device.state.device.type == device
    rng = np.random.default_rng(1)
    for step in range(300):
        actions = rng.integers(0, 2, n)
        obs_h, rewards_h, terminated_h, infos_h = host.step(actions)
        obs_d, rewards_d, terminated_d, infos_d = on_device.step(actions)
        np.testing.assert_allclose(on_device.host_states(), host.host_states(), rtol=0, atol=STATE_TOLERANCE)
        np.testing.assert_allclose(obs_d, obs_h, rtol=0, atol=OBS_TOLERANCE)
        np.testing.assert_array_equal(rewards_d, rewards_h)
        np.testing.assert_array_equal(terminated_d, terminated_h)
        assert infos_d == infos_h
        if step % 60 == 0 and not terminate_on_fall:  # falling on for ever, the states leave the picture
            expected = np.stack([render_cartpole(state, 16) for state in host.state])
            np.testing.assert_array_equal(on_device.render().cpu().numpy(), expected)
    if not terminate_on_fall:
        assert (np.abs(host.state[:, 2]) > 3).any() and (np.abs(host.state[:, 0]) == 2.4).any()  # wrapped, clipped


@pytest.mark.parametrize("device", DEVICES)
def test_device_cartpole_geometry_equals_host_geometry(device: str) -> None:
    """The integers the device's geometry gives are the host's, state for state, at several frame sizes."""
    states = np.concatenate([random_states(2000, 2), edge_states()])
    for size in (16, 33, 64, 224):
        frames = CartPoleFrames(size, device, backend="torch", device_geometry=True)
        on_device = frames.device_params(torch.from_numpy(states).to(device)).cpu().numpy()
        np.testing.assert_array_equal(on_device, frames.host_params(states))


@pytest.mark.parametrize("device", DEVICES)
def test_device_mountaincar_geometry_equals_host_geometry(device: str) -> None:
    rng = np.random.default_rng(4)
    ends = [MOUNTAIN_MIN_X, MOUNTAIN_MAX_X, -math.pi / 6, 0.45, 0.5, 0.0]
    positions = np.concatenate([rng.uniform(MOUNTAIN_MIN_X, MOUNTAIN_MAX_X, 2000), ends])
    for size in (16, 33, 64, 224):
        frames = MountainCarFrames(size, device, backend="torch", device_geometry=True)
        on_device = frames.device_params(torch.from_numpy(positions).to(device)).cpu().numpy()
        np.testing.assert_array_equal(on_device, frames.host_params(positions))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("size", [16, 33, 64])
def test_frames_from_device_geometry_equal_pillow_frames(device: str, size: int) -> None:
    states = np.concatenate([random_states(30, 5), edge_states()])
    frames = CartPoleFrames(size, device, backend="torch", device_geometry=True)
    drawn = frames.draw_states(torch.from_numpy(states).to(device))
    assert drawn.device.type == device
    expected = np.stack([render_cartpole(state, size) for state in states])
    np.testing.assert_array_equal(drawn.cpu().numpy(), expected)
    np.testing.assert_array_equal(frames(states).cpu().numpy(), expected)  # host states, copied over
    positions = np.concatenate([np.linspace(MOUNTAIN_MIN_X, MOUNTAIN_MAX_X, 29), [-math.pi / 6, 0.45, 0.5]])
    cars = MountainCarFrames(size, device, backend="torch", device_geometry=True)
    expected = np.stack([render_mountaincar(p, size) for p in positions])
    np.testing.assert_array_equal(cars.draw_positions(torch.from_numpy(positions).to(device)).cpu().numpy(), expected)


def test_ellipse_stamps_are_found_on_the_device_as_on_the_host() -> None:
    stamps = EllipseStamps([3, 4, 6], [2, 5], torch.device("cpu"))
    boxes = np.array([[x, y, x + w, y + h] for w in (3, 4, 6) for h in (2, 5) for x, y in ((0, 0), (-7, 9))])
    np.testing.assert_array_equal(stamps.index_tensor(torch.from_numpy(boxes)).numpy(), stamps.indices(boxes))
    odd = torch.tensor([[0, 0, 5, 9], [0, 0, -3, 4], [0, 0, 100, 0]])  # not prepared: the nearest size
    assert stamps.index_tensor(odd).tolist() == [[1, 1], [0, 1], [2, 0]]


def device_state_vec_env(device: str, n: int, size: int, length: int, options: dict[str, Any], seed: int) -> Any:
    """The batched CartPole with its states on ``device``, seeded as ``make_vec_env`` seeds a batched env."""
    sim = CartPoleSimulation(n, size, CartPoleOptions(**options), device, "torch", device_state=True)
    venv = BatchedVecEnv(sim, length)
    venv.action_space.seed(seed)
    venv.seed(seed)
    return venv


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("options", [{}, {"terminate_on_fall": True}])
def test_device_state_env_equals_single_envs_step_for_step(device: str, options: dict[str, Any]) -> None:
    """With resets (by the time limit, and by falls), the batched env with device states goes through the
    states of make_vec_env's DummyVecEnv of single envs: observations within the bound, rewards, dones, infos,
    episode statistics and frames equal."""
    n, size, length = 3, 24, 50
    reference = make_vec_env("cartpole", n, size, episode_length=length, options=options, seed=5)
    batched = device_state_vec_env(device, n, size, length, options, seed=5)
    assert batched.sim.device_state and batched.sim.renderer_name == "torch (state on device)"
    np.testing.assert_array_equal(reference.reset(), batched.reset())
    rng = np.random.default_rng(0)
    ended = 0
    for _ in range(180):
        actions = rng.integers(0, 2, n)
        obs_a, rewards_a, dones_a, infos_a = reference.step(actions)
        obs_b, rewards_b, dones_b, infos_b = batched.step(actions)
        np.testing.assert_allclose(obs_b, obs_a, rtol=0, atol=OBS_TOLERANCE)
        np.testing.assert_array_equal(rewards_a, rewards_b)
        np.testing.assert_array_equal(dones_a, dones_b)
        host_frames = np.stack([info.pop(FRAME_KEY) for info in infos_a])
        np.testing.assert_array_equal(batched.step_frames().cpu().numpy(), host_frames)
        for info_a, info_b in zip(infos_a, infos_b, strict=True):
            episode_a, episode_b = info_a.pop("episode", None), info_b.pop("episode", None)
            assert (episode_a is None) == (episode_b is None)
            if episode_a is not None:
                assert (episode_a["r"], episode_a["l"]) == (episode_b["r"], episode_b["l"])
                ended += 1
            terminal_a, terminal_b = info_a.pop("terminal_observation", None), info_b.pop("terminal_observation", None)
            assert (terminal_a is None) == (terminal_b is None)
            if terminal_a is not None:
                np.testing.assert_allclose(terminal_b, terminal_a, rtol=0, atol=OBS_TOLERANCE)
            assert info_a == info_b
    assert ended >= 9  # every env reset several times


def test_device_state_is_the_default_only_where_torch_draws_off_the_cpu() -> None:
    options = CartPoleOptions()
    assert not CartPoleSimulation(2, 16, options, "cpu", "auto").device_state  # Pillow on the CPU
    assert not CartPoleSimulation(2, 16, options, "cpu", "torch").device_state  # numpy is faster there
    assert not CartPoleFrames(16, "cpu", backend="torch").device_geometry
    assert CartPoleFrames(16, "meta").device_geometry and MountainCarFrames(16, "meta").device_geometry
    with pytest.raises(ValueError, match="torch backend"):
        CartPoleSimulation(2, 16, options, "cpu", "pil", device_state=True)
    for frames in (CartPoleFrames, MountainCarFrames):
        with pytest.raises(ValueError, match="device_geometry needs the torch backend"):
            frames(16, "cpu", backend="pil", device_geometry=True)
    with pytest.raises(ValueError, match="without device_geometry"):
        CartPoleFrames(16, "cpu", backend="torch").draw_states(torch.zeros((1, 4), dtype=torch.float64))
