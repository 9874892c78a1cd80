"""Reward scoring speed: the local backend against a pool of Ray actors (``reward.backend: ray``).

For each model and batch size, times ``reward_fn(frames)`` (frames of the model's input size, so
no resize) and prints frames per second for both backends and the Ray/local ratio. Run::

    python benchmarks/ray_backend.py [--models tiny-random random:openai/clip-vit-base-patch32]
                                     [--batch-sizes 1 8 64 256] [--workers 2] [--dtype fp32]

On a CPU machine the local backend uses every core in one process (torch threads) and the Ray
pool runs ``--workers`` actors with an even share of the cores each; on a GPU machine the pool
defaults to one actor per GPU (pass ``--workers 0`` for that default). The Ray cluster is local
unless ``RAY_ADDRESS`` is set.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
import torch

from vlmrm.config import RewardConfig
from vlmrm.reward import VLMReward
from vlmrm.reward.ray_pool import RayRewardPool


def frames_per_second(reward_fn, frames: np.ndarray, min_seconds: float, min_repeats: int = 3) -> float:
    reward_fn(frames)  # warm-up
    repeats, start = 0, time.perf_counter()
    while repeats < min_repeats or time.perf_counter() - start < min_seconds:
        reward_fn(frames)
        repeats += 1
    return repeats * len(frames) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny-random", "random:openai/clip-vit-base-patch32"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8, 64, 256])
    parser.add_argument("--workers", type=int, default=2, help="Ray actors; 0: the default (one per GPU, else one)")
    parser.add_argument("--dtype", default="fp32", choices=["auto", "fp32", "bf16", "fp16"])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seconds", type=float, default=3.0, help="least time measured per cell")
    args = parser.parse_args()
    warnings.simplefilter("ignore", UserWarning)  # random weights

    print(f"{os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} torch threads locally")
    print("load average before: " + ", ".join(f"{load:.2f}" for load in os.getloadavg()))
    header = f"| {'model':<38} | {'batch':>5} | {'local fps':>9} | {'ray fps':>9} | {'ray/local':>9} |"
    rows = [header, "|" + "|".join("-" * len(cell) for cell in header.split("|")[1:-1]) + "|"]
    for model in args.models:
        config = RewardConfig(
            model=model, target_prompts=["a humanoid robot kneeling"], dtype=args.dtype, device=args.device
        )
        local = VLMReward.from_config(config)
        ray_config = config.model_copy(update={"backend": "ray", "num_workers": args.workers or None})
        with RayRewardPool(ray_config) as pool:
            info = pool.workers[0]
            print(
                f"{model}: local {local.dtype} on {local.device}; ray {pool.num_workers} actors, "
                f"{info['dtype']} on {info['device']}, {info['threads']} thread(s) each"
            )
            for batch in args.batch_sizes:
                frames = np.random.default_rng(batch).integers(
                    0, 256, (batch, local.image_size, local.image_size, 3), dtype=np.uint8
                )
                np.testing.assert_allclose(pool(frames), local(frames), rtol=0, atol=1e-2)
                local_fps = frames_per_second(local, frames, args.seconds)
                ray_fps = frames_per_second(pool, frames, args.seconds)
                rows.append(
                    f"| {model:<38} | {batch:>5} | {local_fps:>9.1f} | {ray_fps:>9.1f} | {ray_fps / local_fps:>9.2f} |"
                )
                print(rows[-1], flush=True)
        del local
    print("load average after: " + ", ".join(f"{load:.2f}" for load in os.getloadavg()))
    print("\n" + "\n".join(rows))


if __name__ == "__main__":
    main()
