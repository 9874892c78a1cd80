"""The Humanoid with ``physics: warp``: speed, and how close MuJoCo Warp's dynamics stay to CPU MuJoCo's.

Speed: ``--worlds`` Humanoids stepped in MuJoCo Warp and drawn by its ray tracer from the same device data
(:class:`~vlmrm.envs.humanoid.warp_physics.WarpHumanoidSimulation`), random actions, frames per second of
physics alone and of physics plus frames (all worlds' frames per second of wall time).

Closeness: from the same initial states (Gymnasium's resets with seeds 0..worlds-1) and the same random actions,
the largest joint-position difference between MuJoCo Warp (Newton, float32) and CPU MuJoCo (PGS, float64), and,
for scale, between CPU MuJoCo with PGS and with Newton (the solver change alone). Run::

    python benchmarks/warp_physics_humanoid.py [--device cpu|cuda] [--worlds 4] [--steps 100] [--size 64]

It needs ``pip install 'vlmrm[warp]'``; on Warp's CPU device it is slow (it shows that it runs; speed targets
are for a GPU). The first run compiles Warp's kernels (a minute or two on a CPU; cached in ~/.cache/warp).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

REPORT_AT = (1, 10, 25, 50, 75, 100, 200)


def speed(device: str, worlds: int, size: int, steps: int) -> tuple[float, float]:
    """``(physics frames/s, physics+render frames/s)`` over ``steps`` steps of all worlds."""
    from vlmrm.envs.humanoid.options import HumanoidOptions
    from vlmrm.envs.humanoid.warp_physics import WarpHumanoidSimulation

    sim = WarpHumanoidSimulation(HumanoidOptions(renderer="warp", physics="warp"), size, worlds, device)
    rng = np.random.default_rng(0)
    for i in range(worlds):
        sim.reset_env(i, i, None)
    sim.step(rng.uniform(-0.4, 0.4, (worlds, 17)))  # warm-up: compiles, captures the graph on CUDA
    sim.render()
    times = {"physics": 0.0, "render": 0.0}
    for _ in range(steps):
        start = time.perf_counter()
        sim.step(rng.uniform(-0.4, 0.4, (worlds, 17)))  # ends with the observations on the host: synchronised
        middle = time.perf_counter()
        sim.render().cpu()  # synchronised: the frames exist (a benchmark's copy; training keeps them on the device)
        times["physics"] += middle - start
        times["render"] += time.perf_counter() - middle
    sim.close()
    frames = worlds * steps
    return frames / times["physics"], frames / (times["physics"] + times["render"])


def closeness(device: str, worlds: int, steps: int) -> dict[str, np.ndarray]:
    """Largest ``|qpos|`` difference over all worlds after each step, per pair of simulators."""
    import mujoco

    from vlmrm.envs.humanoid.env import VLMHumanoidEnv
    from vlmrm.envs.humanoid.options import HumanoidOptions
    from vlmrm.envs.humanoid.warp_physics import WarpHumanoidSimulation

    actions = np.random.default_rng(0).uniform(-0.4, 0.4, (steps, worlds, 17)).astype(np.float32)
    sim = WarpHumanoidSimulation(HumanoidOptions(renderer="warp", physics="warp"), 32, worlds, device)
    trajectories: dict[str, np.ndarray] = {}
    for solver in ("PGS", "NEWTON"):
        envs = [VLMHumanoidEnv(32) for _ in range(worlds)]
        out = np.zeros((steps, worlds, envs[0].model.nq))
        for i, env in enumerate(envs):
            env.model.opt.solver = getattr(mujoco.mjtSolver, f"mjSOL_{solver}")
            env.reset(seed=i)
            for t in range(steps):
                env.step(actions[t, i])
                out[t, i] = env.data.qpos
            env.close()
        trajectories[solver] = out
    warp = np.zeros_like(trajectories["PGS"])
    for i in range(worlds):
        sim.reset_env(i, i, None)
    for t in range(steps):
        sim.step(actions[t])
        warp[t] = sim.qpos.cpu().numpy()
    sim.close()
    pgs, newton = trajectories["PGS"], trajectories["NEWTON"]
    return {
        "MuJoCo Warp (Newton) vs CPU MuJoCo (PGS)": np.abs(warp - pgs).max(axis=(1, 2)),
        "MuJoCo Warp (Newton) vs CPU MuJoCo (Newton)": np.abs(warp - newton).max(axis=(1, 2)),
        "CPU MuJoCo: Newton vs PGS (the solver alone)": np.abs(newton - pgs).max(axis=(1, 2)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu (Warp's CPU device) or cuda (default: cpu)")
    parser.add_argument("--worlds", type=int, default=4, help="worlds (envs) stepped together (default: 4)")
    parser.add_argument("--size", type=int, default=64, help="frame size in pixels for the speed test (default: 64)")
    parser.add_argument("--speed-steps", type=int, default=20, help="timed steps (default: 20)")
    parser.add_argument("--steps", type=int, default=100, help="steps compared with CPU MuJoCo (default: 100)")
    args = parser.parse_args()

    physics, total = speed(args.device, args.worlds, args.size, args.speed_steps)
    print(
        f"{args.worlds} worlds on {args.device}, {args.size} px: physics {physics:.1f} frames/s, "
        f"physics+render {total:.1f} frames/s"
    )
    print(f"largest joint-position difference after n steps ({args.worlds} worlds, same states and actions):")
    at = [n for n in REPORT_AT if n <= args.steps]
    print("  " + " " * 46 + "".join(f"{n:>10}" for n in at))
    for name, worst in closeness(args.device, args.worlds, args.steps).items():
        print(f"  {name:<46}" + "".join(f"{worst[n - 1]:>10.2e}" for n in at))


if __name__ == "__main__":
    main()
