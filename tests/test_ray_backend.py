"""``reward.backend: ray``: a pool of reward-model actors on a local Ray cluster.

One local cluster is shared by the module (Ray takes seconds to start); the run that starts its
own cluster and must leave no process behind runs in a subprocess.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from vlmrm.config import RayConfig, RewardConfig, config_from_dict
from vlmrm.errors import ConfigError
from vlmrm.reward import RewardFunction, VLMReward
from vlmrm.reward.backend import build_reward_function
from vlmrm.reward.contract import wants_episodes
from vlmrm.reward.ray_pool import RayRewardPool, RayVideoRewardPool, plan_workers, shard_bounds
from vlmrm.training.trainer import train

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.filterwarnings("ignore:vlmrm. model:UserWarning")

REWARD = {
    "model": "tiny-random",
    "target_prompts": ["pole vertically upright on top of the cart"],
    "baseline_prompts": ["pole and cart"],
    "alpha": 0.5,
    "dtype": "fp32",
    "device": "cpu",
}
REWARD_BATCH = 64  # RewardConfig's default batch_size


def ray_config(num_workers: int | None = 2, cpus_per_worker: int | None = 1, **extra) -> RewardConfig:
    # One CPU (torch thread) per actor: the module's cluster has 4 logical CPUs on a 2-core machine.
    ray = RayConfig(num_workers=num_workers, cpus_per_worker=cpus_per_worker)
    return RewardConfig(**{**REWARD, "backend": "ray", "ray": ray, **extra})


def random_frames(n: int, seed: int = 0, size: int = 224) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def descendants(pid: int) -> dict[int, str]:
    """Live (non-zombie) descendant processes of ``pid``: ``{pid: command name}``, from ``ps``."""
    ps = subprocess.Popen(["ps", "-eo", "pid=,ppid=,stat=,comm="], stdout=subprocess.PIPE, text=True)
    out, _ = ps.communicate(timeout=30)
    children: dict[int, list[tuple[int, str, str]]] = {}
    for line in out.splitlines():
        parts = line.split(None, 3)
        if len(parts) == 4:
            children.setdefault(int(parts[1]), []).append((int(parts[0]), parts[2], parts[3]))
    found, stack = {}, [pid]
    while stack:
        for child, stat, name in children.get(stack.pop(), []):
            if child != ps.pid and not stat.startswith("Z"):
                found[child] = name
            stack.append(child)
    return found


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and has not exited (a zombie has)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return not Path("/proc/self").exists()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of ``pid`` (Linux); 0 where /proc is missing."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    # Logical CPUs: the module's pool (2 actors) and the training run's pool (2 actors) coexist.
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def local_reward():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return VLMReward.from_config(RewardConfig(**REWARD))


@pytest.fixture(scope="module")
def pool(ray_cluster) -> Iterator[RayRewardPool]:
    reward_fn = build_reward_function(ray_config())
    assert isinstance(reward_fn, RayRewardPool)
    yield reward_fn
    reward_fn.close()


def worker_pids(pool: RayRewardPool) -> list[int]:
    return [info["pid"] for info in ray.get([actor.describe.remote() for actor in pool.actors])]


# -- planning and splitting, without Ray --------------------------------------------------------------


def test_shards_are_contiguous_and_nearly_equal() -> None:
    assert shard_bounds(7, 2) == [(0, 4), (4, 7)]
    assert shard_bounds(8, 2) == [(0, 4), (4, 8)]
    assert shard_bounds(1, 4) == [(0, 1)]
    assert shard_bounds(10, 4) == [(0, 3), (3, 6), (6, 8), (8, 10)]


def test_worker_plan_defaults() -> None:
    auto = RewardConfig(**{**REWARD, "device": "auto", "backend": "ray"})
    gpu = plan_workers(auto, cluster_cpus=64, cluster_gpus=8, node_cpus=32)
    assert (gpu.num_workers, gpu.device, gpu.num_gpus, gpu.num_cpus) == (8, "cuda", 1.0, 1)
    shared = plan_workers(auto.model_copy(update={"ray": RayConfig(num_workers=6)}), 64, 4, 32)
    assert shared.num_gpus == 0.5  # two actors share a GPU
    cpu = plan_workers(auto, cluster_cpus=8, cluster_gpus=0, node_cpus=8)
    assert (cpu.num_workers, cpu.device, cpu.num_gpus, cpu.num_cpus) == (1, "cpu", 0.0, 8)
    assert plan_workers(ray_config(cpus_per_worker=None), 8, 0, 8).num_cpus == 4
    with pytest.raises(ConfigError, match=r"Lower reward\.ray\.num_workers"):
        plan_workers(ray_config(num_workers=3, cpus_per_worker=2), 4, 0, 4)
    with pytest.raises(ConfigError, match="no GPUs"):
        plan_workers(ray_config(device="cuda"), 8, 0, 8)


def ray_train_config(reward: dict) -> dict:
    return {"env": {"name": "cartpole"}, "reward": reward, "rl": {"algorithm": "dqn", "total_steps": 100}}


def test_ray_settings_are_checked_with_the_config() -> None:
    with pytest.raises(ConfigError, match=r"reward\.ray\.num_workers: only applies to reward\.backend: ray"):
        config_from_dict(ray_train_config({**REWARD, "ray": {"num_workers": 2}}))
    with pytest.raises(ConfigError, match="device: cuda"):
        config_from_dict(ray_train_config({**REWARD, "backend": "ray", "device": "cuda:1"}))


def test_flat_ray_fields_of_vlmrm_0_1_move_into_the_ray_section() -> None:
    with pytest.warns(FutureWarning, match=r"reward\.ray_address -> reward\.ray\.address"):
        config = config_from_dict(ray_train_config({**REWARD, "backend": "ray", "ray_address": "auto"}))
    assert config.reward.ray == RayConfig(address="auto")


@pytest.mark.slow
def test_the_ray_backend_loads_no_model_in_the_training_process(pool: RayRewardPool) -> None:
    import gc

    def models_here() -> int:
        return sum(isinstance(obj, VLMReward) for obj in gc.get_objects())

    assert isinstance(pool, RewardFunction) and pool.name == "tiny-random"
    assert pool.batch_size == 2 * REWARD_BATCH  # one full batch per actor
    assert str(pool.device) == "cpu"  # frames travel from host memory
    before = models_here()
    another = build_reward_function(ray_config(num_workers=1))
    try:
        assert models_here() == before, "building the Ray backend loaded a model in this process"
    finally:
        another.close()


# -- the pool -------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("n", [8, 7, 1, 0])
def test_ray_rewards_equal_local_rewards(pool: RayRewardPool, local_reward, n: int) -> None:
    frames = random_frames(n, seed=n)
    rewards = pool(frames)
    assert rewards.dtype == np.float32 and rewards.shape == (n,)
    np.testing.assert_allclose(rewards, local_reward(frames), rtol=0, atol=1e-5)


def test_ray_workers_score_a_generative_vlm_as_locally(ray_cluster) -> None:
    config = ray_config(num_workers=1, model="vqa:tiny-random")
    frames = random_frames(5, size=32)
    pool = build_reward_function(config)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            expected = VLMReward.from_config(config.model_copy(update={"backend": "local"}))(frames)
        np.testing.assert_allclose(pool(frames), expected, rtol=0, atol=1e-5)
    finally:
        pool.close()


@pytest.mark.slow
def test_ray_workers_score_video_windows_as_locally(ray_cluster) -> None:
    # Episodes longer and shorter than a shard: parts of an episode carry the frames their clips reach back to;
    # in the RoboCLIP form only each episode's clip travels and its reward lands on the last step (of a finished one).
    rng = np.random.default_rng(3)
    episodes = [rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8) for n in (11, 2, 0, 6)]
    for video in ({"stride": 2}, {"form": "episode"}):
        config = ray_config(model="video:tiny-random", video=video)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            local = VLMReward.from_config(config.model_copy(update={"backend": "local"}))
        pool = build_reward_function(config)
        try:
            assert isinstance(pool, RayVideoRewardPool) and wants_episodes(pool)
            expected = local.score_episodes(episodes)  # type: ignore[attr-defined]
            for got, want in zip(pool.score_episodes(episodes), expected, strict=True):
                assert got.dtype == np.float32
                np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
            # The latest steps of episodes, finished or not (PPO's rollouts).
            first, finished = [4, 1, 0, 6], [False, True, True, False]
            expected = local.score_episode_steps(episodes, first, finished)  # type: ignore[attr-defined]
            for got, want in zip(pool.score_episode_steps(episodes, first, finished), expected, strict=True):
                np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
            np.testing.assert_allclose(pool(episodes[0][:3]), local(episodes[0][:3]), rtol=0, atol=1e-5)  # stills
        finally:
            pool.close()


@pytest.mark.slow
def test_pool_workers_hold_one_model_each(pool: RayRewardPool) -> None:
    assert pool.num_workers == 2 and pool.image_size == 64 and pool.name == "tiny-random"
    assert all(info["device"] == "cpu" and info["threads"] == 1 for info in pool.workers)
    assert len(set(worker_pids(pool))) == 2


def score_while(pool: RayRewardPool, frames: np.ndarray, busy_pid: int, during) -> np.ndarray:
    """Score ``frames`` in a thread; call ``during()`` once worker ``busy_pid`` is busy scoring them."""
    result: dict[str, object] = {}

    def run() -> None:
        try:
            result["rewards"] = pool(frames)
        except BaseException as exc:
            result["error"] = exc

    start = cpu_seconds(busy_pid)
    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 30
    if Path("/proc/self").exists():
        while cpu_seconds(busy_pid) < start + 0.3 and time.monotonic() < deadline:
            time.sleep(0.02)
    else:
        time.sleep(0.8)
    assert thread.is_alive(), "scoring finished before the fault: use more frames"
    during()
    thread.join(timeout=120)
    assert not thread.is_alive()
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result["rewards"]  # type: ignore[return-value]


def tiled(local_reward, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` frames cycling through 8 distinct ones, and their expected rewards (cheap to compute locally)."""
    distinct = random_frames(8, seed=42)
    index = np.arange(n) % 8
    return distinct[index], local_reward(distinct)[index]


@pytest.mark.slow
def test_a_crashed_worker_is_restarted_and_its_frames_rescored(pool: RayRewardPool, local_reward) -> None:
    frames, expected = tiled(local_reward, 1200)
    before = worker_pids(pool)
    rewards = score_while(pool, frames, before[0], lambda: os.kill(before[0], signal.SIGKILL))
    np.testing.assert_allclose(rewards, expected, rtol=0, atol=1e-5)
    after = worker_pids(pool)
    assert pool.num_workers == 2 and after[0] != before[0] and after[1] == before[1]


@pytest.mark.slow
def test_a_worker_killed_for_good_is_replaced_by_the_others(pool: RayRewardPool, local_reward) -> None:
    frames, expected = tiled(local_reward, 1200)
    victim = pool.actors[1]
    rewards = score_while(pool, frames, worker_pids(pool)[1], lambda: ray.kill(victim, no_restart=True))
    np.testing.assert_allclose(rewards, expected, rtol=0, atol=1e-5)
    assert pool.num_workers == 1
    np.testing.assert_allclose(pool(frames[:5]), expected[:5], rtol=0, atol=1e-5)


# -- a whole run ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_train_with_the_ray_backend_writes_every_artefact(ray_cluster, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    cfg = {
        "env": {"name": "cartpole", "episode_length": 50},
        "reward": {**REWARD, "backend": "ray", "ray": {"num_workers": 2, "cpus_per_worker": 1}},
        "rl": {"algorithm": "dqn", "total_steps": 200, "seed": 0, "n_envs": 2},
        "logging": {"run_dir": str(run_dir), "checkpoint_freq": 100, "video_freq": 0, "eval_freq": 0},
    }
    cfg["rl"]["hyperparameters"] = {"learning_starts": 100, "train_freq": 4}
    cfg["logging"] |= {"eval_episodes": 2, "progress_bar": False}
    config = config_from_dict(cfg)
    pool = RayRewardPool(config.reward)
    pids = [info["pid"] for info in pool.workers]
    try:
        summary = train(config, reward_fn=pool).summary
        assert pool.closed, "the trainer closes its reward function"
    finally:
        pool.close()
    assert len(pids) == 2 and not any(alive(pid) for pid in pids)
    assert summary["total_steps"] == 200 and summary["eval_episodes"] == 2
    assert json.loads((run_dir / "summary.json").read_text())["total_steps"] == 200
    assert (run_dir / summary["final_checkpoint"]).is_file()
    assert len(list((run_dir / "checkpoints").glob("step_*.zip"))) == 2  # at 100 and 200
    written = (run_dir / "config.yaml").read_text()
    assert "backend: ray" in written and "overlap_scoring: true" in written  # resolved: Ray workers overlap
    assert list((run_dir / "videos").glob("*.mp4")) and list(run_dir.glob("events.out.tfevents.*"))


# -- a pool that starts its own cluster --------------------------------------------------------------------

OWN_CLUSTER_SCRIPT = """
import json, os, subprocess, sys, warnings
import numpy as np
warnings.simplefilter("ignore")
sys.path.insert(0, {tests!r})
from test_ray_backend import descendants
from vlmrm.config import RewardConfig
from vlmrm.reward.ray_pool import RayRewardPool

config = RewardConfig(**{reward!r}, backend="ray", ray={{"num_workers": 1}})
with RayRewardPool(config) as pool:
    assert pool._owns_cluster
    rewards = pool(np.zeros((3, 224, 224, 3), np.uint8))
    during = descendants(os.getpid())
after = descendants(os.getpid())
try:
    pool(np.zeros((1, 224, 224, 3), np.uint8))
    closed = False
except RuntimeError as error:
    closed = "closed" in str(error)
pool.close()  # a second close is harmless
print(json.dumps({{"rewards": rewards.tolist(), "during": during, "after": after, "closed": closed}}))
"""


@pytest.mark.slow
def test_a_pool_that_started_ray_leaves_no_process_behind(tmp_path: Path) -> None:
    script = OWN_CLUSTER_SCRIPT.format(tests=str(Path(__file__).parent), reward=REWARD)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=180, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(report["rewards"]) == 3 and report["closed"]
    names = " ".join(report["during"].values())
    assert "raylet" in names and "gcs_server" in names, report["during"]
    assert report["after"] == {}, f"left running after close(): {report['after']}"
    assert not any(alive(int(pid)) for pid in report["during"])
