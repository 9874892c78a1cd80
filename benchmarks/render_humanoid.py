"""Humanoid rendering speed: frames per second at 224 and 480 px, with and without shadows.

Steps the ``humanoid`` environment with random actions and renders after every step, timing the
render calls alone (``render fps``) and step plus render (``step+render fps``). Run::

    MUJOCO_GL=egl python benchmarks/render_humanoid.py [--frames 200] [--sizes 224 480]

Other busy processes slow offscreen (CPU) rendering a lot; the load average is printed too.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np

CONFIGS: dict[str, dict[str, Any]] = {
    "textured, all effects": {},
    "textured, no shadows": {"shadows": False},
    "textured, everything off": {"shadows": False, "reflections": False, "skybox": False},
    "textured, all effects, no antialiasing": {"antialiasing": False},
    "textured, no shadows, no antialiasing": {"shadows": False, "antialiasing": False},
    "textured, everything off, no antialiasing": {
        "shadows": False,
        "reflections": False,
        "skybox": False,
        "antialiasing": False,
    },
    "plain (Gymnasium look), all effects": {"textured": False},
    "plain, everything off": {"textured": False, "shadows": False, "reflections": False, "skybox": False},
}


def measure(size: int, frames: int, options: dict[str, Any], seed: int = 0) -> tuple[float, float]:
    """Return ``(render fps, step+render fps)`` over ``frames`` random-action steps."""
    from vlmrm.envs.registry import make_env

    env = make_env("humanoid", render_size=size, episode_length=frames + 10, look=options)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    env.render()  # warm-up: creates the GL context and uploads textures
    render_time = 0.0
    start = time.perf_counter()
    for _ in range(frames):
        env.step(env.action_space.sample())
        t = time.perf_counter()
        frame = env.render()
        render_time += time.perf_counter() - t
        assert frame.shape == (size, size, 3) and frame.dtype == np.uint8
    total = time.perf_counter() - start
    env.close()
    return frames / render_time, frames / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200, help="frames per measurement (default: 200)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 480], help="frame sizes (default: 224 480)")
    args = parser.parse_args()

    from vlmrm.envs.gl import ensure_gl_backend

    backend = ensure_gl_backend()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"MUJOCO_GL={backend}, {os.cpu_count()} CPUs, load average {load:.2f}, {args.frames} frames each")
    print(f"{'size':>5}  {'configuration':<42} {'render fps':>10} {'step+render fps':>16}")
    for size in args.sizes:
        for name, options in CONFIGS.items():
            render_fps, total_fps = measure(size, args.frames, options)
            print(f"{size:>5}  {name:<42} {render_fps:>10.1f} {total_fps:>16.1f}", flush=True)


if __name__ == "__main__":
    main()
