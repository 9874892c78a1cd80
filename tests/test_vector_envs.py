"""Batched classic control (``env.vectorized``): Gymnasium's dynamics step for step, Pillow's pictures pixel for
pixel, stable-baselines3's bookkeeping, and episode rewards on their own transitions."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from gymnasium.envs.classic_control.continuous_mountain_car import Continuous_MountainCarEnv
from gymnasium.wrappers import TimeLimit
from stable_baselines3 import DQN, SAC
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from test_reward_alignment import assert_rewards_match_their_frames
from vlmrm.config import config_from_dict
from vlmrm.envs import make_env, make_vector_env, vectorized_envs
from vlmrm.envs.cartpole.draw import cartpole_shapes, render_cartpole
from vlmrm.envs.cartpole.vector import CartPoleFrames
from vlmrm.envs.mountaincar.draw import render_mountaincar
from vlmrm.envs.mountaincar.spec import MOUNTAIN_MAX_X, MOUNTAIN_MIN_X
from vlmrm.envs.mountaincar.textured import render_mountaincar_textured
from vlmrm.envs.mountaincar.vector import MountainCarFrames, TexturedMountainCarFrames
from vlmrm.envs.registry import ENV_REGISTRY, register_env
from vlmrm.envs.spec import EnvSpec
from vlmrm.envs.vector.raster import CudaGraphDraw, c_int, polygon_mask
from vlmrm.envs.vector.vec_env import BatchedVecEnv, FrameBatchSource
from vlmrm.errors import ConfigError
from vlmrm.reward import VLMReward
from vlmrm.rl import RelabelingReplayBuffer, VecVLMReward
from vlmrm.rl.vec_env_factory import make_vec_env
from vlmrm.rl.wrappers import FRAME_KEY
from vlmrm.testing import ColorEmbedder, StepColorEnv


def random_actions(name: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if name == "cartpole":
        return rng.integers(0, 2, n)
    return rng.uniform(-1.5, 1.5, (n, 1)).astype(np.float32)  # beyond the bounds too: Gymnasium clips the force


def assert_same_steps(
    reference: VecEnv, batched: VecEnv, name: str, steps: int, frames: bool, only_batched: tuple[str, ...] = ()
) -> int:
    """Step both with the same actions; every observation, reward, done and info (but the keys ``only_batched``)
    must be equal. Returns the number of episodes that ended."""
    np.testing.assert_array_equal(reference.reset(), batched.reset())
    rng = np.random.default_rng(0)
    ended = 0
    for _ in range(steps):
        actions = random_actions(name, reference.num_envs, rng)
        obs_a, rew_a, done_a, infos_a = reference.step(actions)
        obs_b, rew_b, done_b, infos_b = batched.step(actions)
        np.testing.assert_array_equal(obs_a, obs_b)
        np.testing.assert_array_equal(rew_a, rew_b)
        np.testing.assert_array_equal(done_a, done_b)
        if frames:
            host = np.stack([info.pop(FRAME_KEY) for info in infos_a])
            np.testing.assert_array_equal(host, batched.step_frames().numpy())  # type: ignore[attr-defined]
        for info_a, info_b in zip(infos_a, infos_b, strict=True):
            for key in only_batched:
                info_b.pop(key)
            episode_a, episode_b = info_a.pop("episode", None), info_b.pop("episode", None)
            assert (episode_a is None) == (episode_b is None)
            if episode_a is not None:
                assert (episode_a["r"], episode_a["l"]) == (episode_b["r"], episode_b["l"])
                ended += 1
            assert info_a.keys() == info_b.keys()
            for key in info_a:
                np.testing.assert_array_equal(info_a[key], info_b[key])
    return ended


@pytest.mark.parametrize(
    ("name", "gym_env", "options"),
    [
        ("cartpole", CartPoleEnv, {"terminate_on_fall": True}),
        ("mountaincar", Continuous_MountainCarEnv, {"terminate_at_goal": True, "clip_at_goal": False}),
    ],
)
def test_dynamics_equal_gymnasium_step_for_step(name: str, gym_env: type[gym.Env], options: dict[str, Any]) -> None:
    """With Gymnasium's rules, the batched env is Gymnasium's env (DummyVecEnv of Monitor(TimeLimit)), seeded alike."""
    n, length = 4, 60

    def gymnasium_env() -> gym.Env:
        return Monitor(TimeLimit(gym_env(), max_episode_steps=length))

    reference = DummyVecEnv([gymnasium_env] * n)
    reference.seed(7)
    batched = make_vector_env(name, n, render_size=16, episode_length=length, **options)
    batched.seed(7)
    # The batched env adds info["is_success"]; Gymnasium's has none.
    ended = assert_same_steps(reference, batched, name, steps=400, frames=False, only_batched=("is_success",))
    assert ended > n  # terminations and time limits were crossed


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("cartpole", {}),  # vlmrm's default: no termination, angle wrapped, cart clipped, is_success
        ("cartpole", {"terminate_on_fall": True}),
        ("mountaincar", {}),  # clipped at the flag once reached
        ("mountaincar", {"textured": True}),
    ],
)
def test_batched_env_equals_vlmrm_single_envs_step_for_step(name: str, options: dict[str, Any]) -> None:
    """Observations, rewards, dones, infos (is_success, truncation, terminal observation, Monitor stats) and frames
    of the batched env are those of make_vec_env's DummyVecEnv of single envs, seeded alike."""
    reference = make_vec_env(name, 3, 24, episode_length=50, options=options, seed=5)
    batched = make_vec_env(name, 3, 24, episode_length=50, options=options, seed=5, vectorized=True)
    assert isinstance(batched, FrameBatchSource)
    assert assert_same_steps(reference, batched, name, steps=180, frames=True) >= 9


def test_mountaincar_physics_reach_and_clip_at_the_flag() -> None:
    """Full throttle in rhythm with the velocity reaches the flag, where the clip holds the car at 0.45."""
    venv = make_vector_env("mountaincar", 2, render_size=16, episode_length=400)
    venv.seed(0)
    obs = venv.reset()
    reached = np.zeros(2, dtype=bool)
    for _ in range(399):
        obs, _, _, infos = venv.step(np.sign(obs[:, 1:2] + 1e-9).astype(np.float32))
        reached |= [info["is_success"] for info in infos]
    assert reached.all() and (obs[:, 0] <= np.float32(0.45)).all()


# -- frames: the batched renderers draw Pillow's pictures ---------------------------------------------------


def edge_cartpole_states() -> np.ndarray:
    """Random states plus edge cases: the cart at and past the track ends, the pole level, upright, wrapped."""
    rng = np.random.default_rng(3)
    random = np.stack([rng.uniform(-2.6, 2.6, 40), np.zeros(40), rng.uniform(-math.pi, math.pi, 40), np.zeros(40)], 1)
    edges = [[x, 0.0, theta, 0.0] for x in (-2.4, -2.39, 0.0, 2.4, 2.6) for theta in (0.0, math.pi / 2, -math.pi, 0.3)]
    return np.concatenate([random, np.array(edges)])


@pytest.mark.parametrize("size", [16, 33, 64])
def test_torch_cartpole_frames_equal_pillow_frames(size: int) -> None:
    states = edge_cartpole_states()
    frames = CartPoleFrames(size, "cpu", backend="torch")(states)
    assert frames.dtype == torch.uint8 and tuple(frames.shape) == (len(states), size, size, 3)
    expected = np.stack([render_cartpole(state, size) for state in states])
    np.testing.assert_array_equal(frames.numpy(), expected)  # bound: 0 grey levels, every pixel


@pytest.mark.parametrize("size", [16, 33, 64])
def test_torch_mountaincar_frames_equal_pillow_frames(size: int) -> None:
    positions = np.concatenate([np.linspace(MOUNTAIN_MIN_X, MOUNTAIN_MAX_X, 37), [-math.pi / 6, 0.45, 0.5]])
    states = np.stack([positions, np.zeros_like(positions)], 1)
    frames = MountainCarFrames(size, "cpu", backend="torch")(states)
    expected = np.stack([render_mountaincar(p, size) for p in positions])
    np.testing.assert_array_equal(frames.numpy(), expected)


@pytest.mark.parametrize("size", [24, 48])
def test_torch_textured_mountaincar_frames_match_pillow_frames(size: int) -> None:
    positions = np.concatenate([np.linspace(MOUNTAIN_MIN_X, MOUNTAIN_MAX_X, 13), [-0.3, 0.45]])
    states = np.stack([positions, np.zeros_like(positions)], 1)
    frames = TexturedMountainCarFrames(size, "cpu", backend="torch")(states).numpy().astype(int)
    expected = np.stack([render_mountaincar_textured(p, size) for p in positions]).astype(int)
    # Pillow's arithmetic throughout; float32 sums of the 4x4 average may round apart: at most 1 grey level.
    assert np.abs(frames - expected).max() <= 1


def test_the_branch_free_polygon_fill_a_cuda_graph_captures_draws_the_same() -> None:
    """On a GPU the frames come from a captured graph, which always runs the horizontal-edge pass."""
    canvas = 40
    states = edge_cartpole_states()
    corners = cartpole_shapes(states[:, 0], states[:, 2], canvas).pole
    poles = torch.from_numpy(c_int(np.stack([np.stack(corner, axis=1) for corner in corners], axis=1)))
    assert torch.equal(polygon_mask(poles, canvas, horizontal_edges=True), polygon_mask(poles, canvas))
    draw = CudaGraphDraw(lambda p: polygon_mask(p, canvas))
    assert torch.equal(draw(poles), polygon_mask(poles, canvas))  # off CUDA: drawn as it is


def test_the_pil_backend_draws_on_the_host_only() -> None:
    with pytest.raises(ValueError, match="host"):
        CartPoleFrames(16, "meta", backend="pil")
    assert CartPoleFrames(16, "cpu").backend == "pil"  # auto: Pillow on the CPU
    assert CartPoleFrames(16, "meta").backend == "torch"  # auto: torch on any other device


# -- the vector env for stable-baselines3 ------------------------------------------------------------------


def test_sb3_logs_episodes_from_the_batched_env() -> None:
    venv = make_vec_env("cartpole", 2, 16, episode_length=10, seed=0, vectorized=True)
    model = DQN("MlpPolicy", venv, learning_starts=1000, seed=0)
    model.learn(total_timesteps=60)
    assert len(model.ep_info_buffer) == 6  # Monitor-equivalent stats: 2 envs x 3 episodes of 10 steps
    assert all(info["l"] == 10 for info in model.ep_info_buffer)
    assert venv.env_is_wrapped(Monitor) == [True, True]
    assert len(venv.get_images()) == 2 and venv.get_attr("render_mode") == ["rgb_array"] * 2


def test_step_frames_before_a_step_is_an_error() -> None:
    venv = make_vector_env("cartpole", 1, render_size=16)
    venv.reset()
    with pytest.raises(RuntimeError, match="no step"):
        venv.step_frames()


def test_registry_and_config_say_which_envs_are_batched() -> None:
    assert vectorized_envs() == ["cartpole", "humanoid", "mountaincar"]
    spec = ENV_REGISTRY["cartpole"]
    plain = EnvSpec("plain", "no batched version", spec.entry_point, spec.options, 10, "discrete", spec.prompts)
    register_env(plain)
    try:
        with pytest.raises(ConfigError, match="no batched"):
            make_vector_env("plain", 2, render_size=16)
        with pytest.raises(ConfigError, match=r"env\.vectorized: plain has no batched version"):
            config_from_dict(
                {"env": {"name": "plain", "vectorized": True}, "rl": {"algorithm": "dqn", "total_steps": 9}}
            )
    finally:
        del ENV_REGISTRY["plain"]
    base = {"rl": {"algorithm": "dqn", "total_steps": 9, "vec_env": "subproc"}}
    with pytest.raises(ConfigError, match="subproc does not apply"):
        config_from_dict({"env": {"name": "cartpole", "vectorized": True}, **base})
    with pytest.raises(ConfigError, match=r"renderer: torch .* needs env\.vectorized"):
        config_from_dict(
            {"env": {"name": "cartpole", "vectorized": False, "options": {"renderer": "torch"}}, "rl": base["rl"]}
        )
    with pytest.raises(ConfigError, match="subproc does not apply"):  # auto would pick the batched env
        config_from_dict({"env": {"name": "cartpole", "options": {"renderer": "torch"}}, **base})
    with pytest.raises(ConfigError, match="vectorized env"):
        make_env("cartpole", render_size=16, renderer="torch")


# -- episode rewards land on their own transitions (tests/test_reward_alignment.py, batched) -------------------


class StepColorSimulation:
    """:class:`vlmrm.testing.StepColorEnv` for ``len(lengths)`` envs in one batched simulation: the frame after
    step ``t`` of env ``i`` has the colour of ``(t, i)``, drawn for all envs as one tensor."""

    def __init__(self, lengths: list[int], continuous: bool):
        self.lengths = np.array(lengths)
        self.num_envs = len(lengths)
        template = StepColorEnv(continuous=continuous)
        self.observation_space, self.action_space = template.observation_space, template.action_space
        self.device = torch.device("cpu")
        self.t = np.zeros(self.num_envs, dtype=int)

    def reset_env(self, index: int, seed: int | None, options: dict | None) -> tuple[np.ndarray, dict]:
        self.t[index] = 0
        return np.array([0, index], dtype=np.float32), {}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        self.t += 1
        obs = np.stack([self.t, np.arange(self.num_envs)], 1).astype(np.float32)
        return obs, self.t.astype(float), self.t >= self.lengths, [{} for _ in range(self.num_envs)]

    def render(self) -> torch.Tensor:
        return torch.from_numpy(np.stack([StepColorEnv.frame_for(t, i) for i, t in enumerate(self.t)]))

    def close(self) -> None:
        pass


@pytest.mark.parametrize("overlap", [False, True])
@pytest.mark.parametrize("algorithm", ["sac", "dqn"])
def test_relabelled_rewards_land_on_their_own_transitions_with_a_batched_env(algorithm: str, overlap: bool) -> None:
    lengths = [3, 4, 6]
    batched = BatchedVecEnv(StepColorSimulation(lengths, continuous=algorithm == "sac"), episode_length=100)
    reward = VLMReward(ColorEmbedder(), ["red"], batch_size=4)
    venv = VecVLMReward(batched, reward, mode="episode", overlap=overlap)
    cls = SAC if algorithm == "sac" else DQN
    model = cls("MlpPolicy", venv, replay_buffer_class=RelabelingReplayBuffer, learning_starts=10_000, buffer_size=1000)
    model.learn(total_timesteps=3 * 40)
    buffer = model.replay_buffer
    assert isinstance(buffer, RelabelingReplayBuffer)
    buffer.receive_rewards(wait=True)
    assert_rewards_match_their_frames(buffer, lengths, 40)  # the single envs' check, unchanged
    venv.close()


def test_training_with_the_batched_env_matches_training_with_single_envs(tmp_path: Any) -> None:
    """Same seeds, same pictures, same dynamics: a run logs the same returns either way."""
    import vlmrm

    def redness(frames: np.ndarray) -> np.ndarray:
        return frames[..., 0].mean(axis=(1, 2)) / 255.0 - frames[..., 2].mean(axis=(1, 2)) / 255.0

    summaries = []
    for vectorized in (False, True):
        config = config_from_dict(
            {
                "env": {"name": "cartpole", "episode_length": 10, "render_size": 32, "vectorized": vectorized},
                "rl": {"algorithm": "dqn", "total_steps": 60, "n_envs": 2},
                "logging": {"eval_episodes": 1, "video_freq": 0, "progress_bar": False, "checkpoint_freq": 0},
            }
        )
        result = vlmrm.train(config, run_dir=tmp_path / str(vectorized), reward_fn=redness)
        summaries.append(result.summary)
    for key in ("eval_env_return", "eval_vlm_return", "eval_success_rate"):
        assert summaries[0][key] == summaries[1][key]
