"""Score frames on a pool of Ray actors: many GPUs, many machines (``reward.backend: ray``).

Each actor holds the reward model once, built from the ``reward`` config by
:meth:`vlmrm.reward.VLMReward.from_config`. :class:`RayRewardPool` implements the reward contract
(:class:`~vlmrm.reward.contract.RewardFunction`) like a local :class:`~vlmrm.reward.VLMReward`:
``pool(frames) -> float32 rewards``, any batch size; its ``batch_size`` is one full batch per actor
(``reward.batch_size`` times the number of actors), so a vector env hands it enough frames to keep
every actor busy, and frames are expected on the host (``device`` is the CPU). The training
process loads no model of its own. A batch is cut into one contiguous
shard per actor (sizes differ by at most one frame; no divisibility rules), each shard is put into
Ray's object store once (shared memory on one machine: the actor reads it without a copy), and the
rewards are put back together in frame order.

Faults: an actor that dies is restarted by Ray (``max_restarts``) and the task it was running is
resubmitted (``max_task_retries``); an actor that stays dead is dropped and its shard scored by
another actor. Every reward therefore comes from the frame it belongs to, or the call raises.

Lifetime: :meth:`RayRewardPool.close` (also called by ``with``, and at interpreter exit) kills the
actors; when the pool started the Ray cluster itself (no ``reward.ray_address``, no
``RAY_ADDRESS``), the cluster's processes are stopped too.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from vlmrm.config import RewardConfig
from vlmrm.errors import ConfigError
from vlmrm.reward.devices import dtype_name
from vlmrm.reward.preprocessing import frames_to_array
from vlmrm.reward.video import VideoReward, clip_indices
from vlmrm.reward.vlm_reward import VLMReward

logger = logging.getLogger(__name__)

DEFAULT_MAX_RESTARTS = 3


def import_ray() -> Any:
    """``import ray``, or a :class:`ConfigError` that says how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "reward.backend: ray needs Ray, which is not installed: pip install 'vlmrm[ray]' (or pip install ray)."
        ) from None
    return ray


# -- planning: how many actors, with which resources ----------------------------------------------


@dataclass(frozen=True)
class WorkerPlan:
    """The actors a pool starts: ``num_workers`` of them, each asking Ray for ``num_cpus`` and ``num_gpus``."""

    num_workers: int
    device: str  # the torch device inside each actor: Ray sets CUDA_VISIBLE_DEVICES, so "cuda" is its own GPU
    num_cpus: int
    num_gpus: float


def plan_workers(config: RewardConfig, cluster_cpus: float, cluster_gpus: float, node_cpus: float) -> WorkerPlan:
    """Decide the pool's actors from the config and the cluster's resources.

    ``node_cpus`` is the CPU count of the largest node (an actor runs on one node). Defaults: one
    actor per GPU of the cluster (``device`` auto or cuda), otherwise one CPU actor with all the
    CPUs of the largest node. ``num_workers`` above the GPU count shares GPUs evenly.
    """
    device = config.device
    gpus = int(cluster_gpus)
    if device == "cuda" and gpus == 0:
        raise ConfigError(
            "reward.device=cuda, but the Ray cluster has no GPUs; use device: cpu (or auto), or a cluster with GPUs."
        )
    use_gpu = gpus > 0 and device in ("auto", "cuda")
    num_workers = config.ray.num_workers or (gpus if use_gpu else 1)
    if use_gpu:
        num_gpus = 1.0 / math.ceil(num_workers / gpus)  # a whole GPU each, or an even share of one
        num_cpus = config.ray.cpus_per_worker or 1
    else:
        num_gpus = 0.0
        num_cpus = config.ray.cpus_per_worker or max(1, min(int(cluster_cpus) // num_workers, int(node_cpus)))
    if num_cpus > node_cpus:
        raise ConfigError(
            f"reward.ray.cpus_per_worker={num_cpus}, but the largest node of the Ray cluster has {node_cpus:g} CPUs."
        )
    if num_workers * num_cpus > cluster_cpus:
        raise ConfigError(
            f"{num_workers} reward workers with {num_cpus} CPU(s) each need {num_workers * num_cpus} CPUs; the Ray "
            f"cluster has {cluster_cpus:g}. Lower reward.ray.num_workers or reward.ray.cpus_per_worker."
        )
    return WorkerPlan(num_workers, "cuda" if use_gpu else ("cpu" if device == "auto" else device), num_cpus, num_gpus)


def shard_bounds(n: int, parts: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of ``min(n, parts)`` contiguous shards of ``n`` items whose sizes differ by at most one."""
    parts = max(1, min(n, parts))
    size, extra = divmod(n, parts)
    bounds, start = [], 0
    for i in range(parts):
        stop = start + size + (1 if i < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


# -- the actor --------------------------------------------------------------------------------------


class RewardWorker:
    """What runs inside each Ray actor: one reward model, built once, scoring shards of frames."""

    def __init__(self, config: dict[str, Any], device: str, num_threads: int):
        torch.set_num_threads(max(1, num_threads))
        self.reward = VLMReward.from_config(RewardConfig.model_validate(config), device=device)

    def describe(self) -> dict[str, Any]:
        import ray  # inside the actor's process, where Ray is running

        return {
            "pid": os.getpid(),
            "node_id": ray.get_runtime_context().get_node_id(),
            "device": str(self.reward.device),
            "dtype": dtype_name(self.reward.dtype),
            "threads": torch.get_num_threads(),
            "model": self.reward.encoder.name,
            "image_size": self.reward.image_size,
            "video": (
                {"window": self.reward.window, "stride": self.reward.stride, "form": self.reward.form}
                if isinstance(self.reward, VideoReward)
                else None
            ),
        }

    def score(self, frames: np.ndarray) -> np.ndarray:
        # Frames from the object store are a read-only view of shared memory; the model only reads them.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            return self.reward(frames)

    def score_steps(self, pieces: list[tuple[np.ndarray, int]]) -> list[np.ndarray]:
        """Video models: the rewards of steps ``first, ...`` of each ``(frames, first)`` part of an episode
        (:meth:`vlmrm.reward.video.VideoReward.score_steps`)."""
        if not isinstance(self.reward, VideoReward):
            raise TypeError(f"{self.reward.encoder.name!r} is not a video model; it scores frames one by one")
        return [self.reward.score_steps(frames, first) for frames, first in pieces]


# -- the pool ---------------------------------------------------------------------------------------

_cluster_lock = threading.Lock()
_owned_cluster_users = 0  # pools using the cluster a pool of this process started; it stops with the last


class RayRewardPool:
    """A pool of reward-model actors on a Ray cluster; ``pool(frames)`` returns one float32 reward per frame.

    Example::

        config = RewardConfig(model="openai/clip-vit-base-patch32", target_prompts=["..."], backend="ray")
        with RayRewardPool(config) as pool:
            rewards = pool(frames)  # (N, H, W, 3) uint8 -> (N,) float32, for any N

    Connects to ``config.ray_address``, else ``$RAY_ADDRESS``, else starts a local cluster (a Ray
    already initialised in this process is used as it is).
    """

    def __init__(self, config: RewardConfig, max_restarts: int = DEFAULT_MAX_RESTARTS):
        global _owned_cluster_users
        ray = import_ray()
        self._ray = ray
        self.config = config
        self._closed = False
        self._owns_cluster = False
        self._actors: list[Any] = []
        self._max_restarts = max_restarts
        self.plan: WorkerPlan | None = None
        self.workers: list[dict[str, Any]] = []  # describe() of each actor as it started
        self._next = 0
        self._lock = threading.Lock()
        with _cluster_lock:
            if not ray.is_initialized():
                address = config.ray.address or os.environ.get("RAY_ADDRESS") or None
                if address:
                    logger.info("vlmrm: joining the Ray cluster at %s", address)
                    ray.init(address=address)
                else:
                    logger.info("vlmrm: starting a local Ray cluster for the reward workers")
                    # "local": a new cluster of this process, never one left running by someone else.
                    ray.init(address="local", include_dashboard=False)
                    self._owns_cluster = True
                    _owned_cluster_users = 0
            elif _owned_cluster_users > 0:
                self._owns_cluster = True  # another pool of this process started it: share it
            elif config.ray.address:
                logger.warning("vlmrm: Ray is already initialised in this process; reward.ray.address is not used")
            if self._owns_cluster:
                _owned_cluster_users += 1
        atexit.register(self.close)
        try:
            self.plan = self._plan()
            self._start(self.plan)
        except BaseException:
            self.close()
            raise

    def _plan(self) -> WorkerPlan:
        resources = self._ray.cluster_resources()
        node_cpus = max(
            (node["Resources"].get("CPU", 0.0) for node in self._ray.nodes() if node.get("Alive", True)), default=0.0
        )
        return plan_workers(self.config, resources.get("CPU", 0.0), resources.get("GPU", 0.0), node_cpus)

    def _start(self, plan: WorkerPlan) -> None:
        ray = self._ray
        remote = ray.remote(RewardWorker).options(
            num_cpus=plan.num_cpus,
            num_gpus=plan.num_gpus,
            max_restarts=self._max_restarts,
            # A task running when its actor dies is resubmitted to the restarted actor.
            max_task_retries=-1,
        )
        config = self.config.model_dump(mode="json")
        self._actors = [remote.remote(config, plan.device, plan.num_cpus) for _ in range(plan.num_workers)]
        started = time.monotonic()
        pending = {actor.describe.remote(): i for i, actor in enumerate(self._actors)}
        self.workers = [{} for _ in self._actors]
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=60)
            for ref in ready:
                try:
                    self.workers[pending.pop(ref)] = ray.get(ref)
                except ray.exceptions.RayError as error:
                    raise RuntimeError(f"a reward worker failed to start:\n{error}") from None
            if pending:
                logger.warning(
                    "vlmrm: %d of %d reward workers not ready after %.0f s (each asks for %d CPU(s), %g GPU(s); "
                    "the cluster has %s free); still waiting",
                    len(pending),
                    len(self._actors),
                    time.monotonic() - started,
                    plan.num_cpus,
                    plan.num_gpus,
                    ray.available_resources(),
                )
        first = self.workers[0]
        logger.info(
            "vlmrm: %d reward workers ready (%s, %s on %s, %d thread(s) each) in %.1f s",
            len(self._actors),
            first["model"],
            first["dtype"],
            first["device"],
            first["threads"],
            time.monotonic() - started,
        )

    # -- what the trainer needs to know -------------------------------------------------------------

    @property
    def num_workers(self) -> int:
        """Actors in the pool (an actor that died for good is no longer counted)."""
        return len(self._actors)

    @property
    def image_size(self) -> int:
        return int(self.workers[0]["image_size"])

    @property
    def name(self) -> str:
        """The model's spec, as the workers loaded it."""
        return str(self.workers[0]["model"])

    @property
    def batch_size(self) -> int:
        """One full ``reward.batch_size`` batch per actor: what a call should carry to keep them all busy."""
        return self.config.batch_size * max(1, self.num_workers)

    @property
    def device(self) -> torch.device:
        """Frames go to the actors through Ray's object store, from host memory."""
        return torch.device("cpu")

    @property
    def worker_device(self) -> str:
        """Where the actors run the model (``cuda`` or ``cpu``)."""
        return self.plan.device if self.plan else "cpu"

    @property
    def worker_dtype(self) -> str:
        """The model's dtype in the actors (``fp32``, ``bf16``, ``fp16``)."""
        return str(self.workers[0]["dtype"])

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def actors(self) -> list[Any]:
        """The Ray actor handles (for monitoring and tests)."""
        return list(self._actors)

    # -- scoring ------------------------------------------------------------------------------------

    def __call__(self, frames: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """One float32 reward per frame, in frame order."""
        if self._closed:
            raise RuntimeError("this RayRewardPool is closed")
        array = frames_to_array(frames)
        if len(array) == 0:
            return np.zeros(0, dtype=np.float32)
        actors, first = self._take_actors(len(array))
        bounds = shard_bounds(len(array), len(actors))
        # Each frame enters the object store once; a resubmitted shard reuses its reference.
        results = self._dispatch("score", [array[start:stop] for start, stop in bounds], actors, first)
        rewards = np.concatenate(results).astype(np.float32, copy=False)
        if rewards.shape != (len(array),):
            raise RuntimeError(f"reward workers returned {rewards.shape} rewards for {len(array)} frames")
        return rewards

    def _take_actors(self, items: int) -> tuple[list[Any], int]:
        """The live actors and the index of the one that takes the first shard of ``items`` items
        (one shard per actor at most; the next call starts where this one stopped)."""
        with self._lock:
            actors = list(self._actors)
            first = self._next
            self._next = (first + max(1, min(items, len(actors)))) % len(actors)
        return actors, first

    def _dispatch(self, method: str, payloads: list[Any], actors: list[Any], first: int) -> list[Any]:
        """``actor.<method>(payload)`` for each payload, one actor each from ``actors[first]`` on, results in order.

        Each payload enters the object store once; a task whose actor died is resubmitted (to the restarted
        actor, or another one) with the same reference; an exception of the model is raised here.
        """
        ray = self._ray
        shards = [ray.put(payload) for payload in payloads]
        results: list[Any] = [None] * len(shards)
        pending = {}
        for i, shard in enumerate(shards):
            actor = actors[(first + i) % len(actors)]
            pending[getattr(actor, method).remote(shard)] = (i, actor, 0)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for task in ready:
                i, actor, attempt = pending.pop(task)
                try:
                    results[i] = ray.get(task)
                except ray.exceptions.RayActorError as error:
                    replacement = self._replacement(actor, error, attempt)
                    pending[getattr(replacement, method).remote(shards[i])] = (i, replacement, attempt + 1)
                except ray.exceptions.RayTaskError as error:
                    # The model raised (bad frames, out of memory): the caller gets that exception.
                    raise error.as_instanceof_cause() from None
        return results

    def _replacement(self, actor: Any, error: Exception, attempt: int) -> Any:
        """The actor to resubmit a failed shard to, after ``actor`` failed with ``error``."""
        ray = self._ray
        if attempt >= 2 * self._max_restarts + len(self.workers):
            raise RuntimeError(f"a shard of frames failed {attempt + 1} times; last error:\n{error}")
        if isinstance(error, getattr(ray.exceptions, "ActorUnavailableError", ())):
            # Unreachable for now (restarting, network): try it again shortly.
            time.sleep(0.2 * (attempt + 1))
            return actor
        with self._lock:
            if actor in self._actors:
                # Ray gave up restarting it (or it was killed for good): score without it.
                self._actors.remove(actor)
                logger.warning(
                    "vlmrm: a reward worker died for good (%s); %d left", type(error).__name__, len(self._actors)
                )
                ray.kill(actor, no_restart=True)
            if not self._actors:
                raise RuntimeError(f"every reward worker died; last error:\n{error}")
            replacement = self._actors[self._next % len(self._actors)]
            self._next = (self._next + 1) % len(self._actors)
        return replacement

    # -- shutdown -----------------------------------------------------------------------------------

    def close(self, timeout: float = 10.0) -> None:
        """Kill the actors and wait (up to ``timeout`` s) for their processes on this machine to exit;
        stop the Ray cluster too if this pool started it. Safe to call more than once."""
        global _owned_cluster_users
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        ray = self._ray
        actors, self._actors = self._actors, []
        local_pids: list[int] = []
        if ray.is_initialized():
            local_pids = self._local_pids(actors)
            for actor in actors:
                try:
                    ray.kill(actor, no_restart=True)
                except Exception as exc:  # already gone
                    logger.debug("vlmrm: killing a reward worker: %s", exc)
        with _cluster_lock:
            if self._owns_cluster:
                _owned_cluster_users -= 1
                if _owned_cluster_users <= 0 and ray.is_initialized():
                    logger.info("vlmrm: stopping the local Ray cluster")
                    ray.shutdown()
        deadline = time.monotonic() + timeout
        while local_pids and time.monotonic() < deadline:
            local_pids = [pid for pid in local_pids if _pid_alive(pid)]
            if local_pids:
                time.sleep(0.05)

    def _local_pids(self, actors: list[Any]) -> list[int]:
        """Current process ids of ``actors`` on this machine (they change when an actor restarts)."""
        ray = self._ray
        try:
            node = ray.get_runtime_context().get_node_id()
            infos = ray.get([actor.describe.remote() for actor in actors], timeout=5)
        except Exception:
            return []
        return [info["pid"] for info in infos if info["node_id"] == node]

    def __enter__(self) -> RayRewardPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self.num_workers} workers"
        device = self.plan.device if self.plan else None
        return f"RayRewardPool(model={self.config.model!r}, {state}, device={device!r})"


class RayVideoRewardPool(RayRewardPool):
    """A :class:`RayRewardPool` of a ``video:`` model that also scores whole episodes (:meth:`score_episodes`).

    What :func:`vlmrm.reward.backend.build_reward_function` builds for ``reward.backend: ray`` with a
    ``video:`` model. Episode-end batching hands it finished episodes; their steps are cut into one
    contiguous shard per actor, as frames are, and each part of an episode travels with the
    ``(window - 1) * stride`` frames before it, so every step's clip is the one the model in this
    process would score (:meth:`vlmrm.reward.video.VideoReward.score_steps`). In the ``episode`` form
    only the ``window`` frames of each episode's clip travel. ``pool(frames)`` still scores each frame
    as a still clip, as :class:`~vlmrm.reward.video.VideoReward` does.
    """

    def __init__(self, config: RewardConfig, max_restarts: int = DEFAULT_MAX_RESTARTS):
        super().__init__(config, max_restarts)
        video = self.workers[0].get("video")
        if not video:
            self.close()
            raise ConfigError(f"{config.model!r} is not a video: model; use RayRewardPool for it.")
        self.window = int(video["window"])
        self.stride = int(video["stride"])
        self.form: str = str(video["form"])

    def score_episodes(self, episodes: Sequence[np.ndarray] | Sequence[torch.Tensor]) -> list[np.ndarray]:
        """float32 rewards, one per frame, for each episode's uint8 frames ``(T, H, W, 3)``: the rewards of
        :meth:`vlmrm.reward.video.VideoReward.score_episodes`, scored on the actors."""
        return self.score_episode_steps(episodes, [0] * len(episodes), [True] * len(episodes))

    def score_episode_steps(
        self,
        episodes: Sequence[np.ndarray] | Sequence[torch.Tensor],
        first: Sequence[int],
        finished: Sequence[bool],
    ) -> list[np.ndarray]:
        """The float32 rewards of steps ``first[i], ...`` of each episode's frames so far (``finished[i]``: it
        ended at its last frame): :meth:`vlmrm.reward.video.VideoReward.score_episode_steps`, on the actors."""
        if self._closed:
            raise RuntimeError("this RayRewardPool is closed")
        arrays = [frames_to_array(episode) for episode in episodes]
        first = [int(f) for f in first]
        for frames, f in zip(arrays, first, strict=True):
            if not 0 <= f <= len(frames):
                raise ValueError(f"first={f} is not a step of an episode of {len(frames)} frames")
        rewards = [np.zeros(len(frames) - f, dtype=np.float32) for frames, f in zip(arrays, first, strict=True)]
        # One group of parts of episodes per actor; a part is (episode, its first step, its last step + 1,
        # the frames sent, the index of its first step among them).
        groups: list[list[tuple[int, int, int, np.ndarray, int]]] = []
        if self.form == "episode":
            ended = [e for e, frames in enumerate(arrays) if finished[e] and len(frames) > first[e]]
            for start, stop in shard_bounds(len(ended), self.num_workers):
                group = []
                for e in ended[start:stop]:  # only the frames of the episode's one clip travel
                    frames = arrays[e]
                    clip = frames[clip_indices(len(frames), self.window, self.stride, "episode")[0]]
                    group.append((e, len(frames) - 1, len(frames), clip, 0))
                groups.append(group)
        else:
            context = (self.window - 1) * self.stride
            # The steps to score, one after another: episode e's are starts[e], ..., starts[e + 1] - 1.
            starts = np.cumsum([0, *(len(frames) - f for frames, f in zip(arrays, first, strict=True))]).tolist()
            for start, stop in shard_bounds(starts[-1], self.num_workers):
                group = []
                for e, frames in enumerate(arrays):
                    a = max(start, starts[e]) - starts[e] + first[e]
                    b = min(stop, starts[e + 1]) - starts[e] + first[e]
                    if a < b:
                        c = max(0, a - context)  # the frames the clips of steps a.. reach back to
                        group.append((e, a, b, frames[c:b], a - c))
                groups.append(group)
        groups = [group for group in groups if group]
        if not groups:
            return rewards
        actors, start_at = self._take_actors(len(groups))
        payloads = [[(frames, skip) for _, _, _, frames, skip in group] for group in groups]
        for group, scored in zip(groups, self._dispatch("score_steps", payloads, actors, start_at), strict=True):
            for (e, a, b, _, _), values in zip(group, scored, strict=True):
                rewards[e][a - first[e] : b - first[e]] = np.asarray(values, dtype=np.float32)[-(b - a) :]
        return rewards


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if not os.path.isdir("/proc/self"):
        return True
    # A zombie has exited; it only waits for its parent (the raylet) to reap it.
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


__all__ = [
    "RayRewardPool",
    "RayVideoRewardPool",
]
