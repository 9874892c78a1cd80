"""The GPU path's rules: CUDA-graph captures never race another thread, and training with frames on the device
finishes with the rewards of the uncaptured path.

Every test runs on each device this machine has (``DEVICES``: the CPU, and CUDA where present); the ones that
are about CUDA itself skip on a machine without it. On a CPU they pin down what a CPU can: which capture
mode is used, and that a batched env prepares its drawing when it is made, before any scorer thread exists.
"""

from __future__ import annotations

import contextlib
import csv
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import vlmrm
from vlmrm.config import config_from_dict
from vlmrm.envs.cartpole.vector import CartPoleFrames
from vlmrm.envs.mountaincar.vector import MountainCarFrames
from vlmrm.envs.vector import raster
from vlmrm.envs.vector.raster import CudaGraphDraw
from vlmrm.reward import VLMReward
from vlmrm.rl.vec_env_factory import make_vec_env
from vlmrm.testing import ColorEmbedder

DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_captures_are_thread_local(monkeypatch: pytest.MonkeyPatch) -> None:
    """The capture asks for thread-local mode: in the default global mode, a scorer thread's synchronisation
    during a capture fails there and breaks the capture (the crash of training on CUDA)."""
    modes: list[Any] = []

    class Graph:
        def replay(self) -> None: ...

    @contextlib.contextmanager
    def graph(cuda_graph: Any, **kwargs: Any) -> Any:
        modes.append(kwargs.get("capture_error_mode"))
        yield

    class Stream:
        def __init__(self, *args: Any) -> None: ...

        def wait_stream(self, other: Any) -> None: ...

    monkeypatch.setattr(torch.cuda, "CUDAGraph", Graph)
    monkeypatch.setattr(torch.cuda, "graph", graph)
    monkeypatch.setattr(torch.cuda, "Stream", Stream)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: Stream())
    monkeypatch.setattr(torch.cuda, "stream", lambda stream: contextlib.nullcontext())
    CudaGraphDraw(lambda params: params + 1)._capture(torch.zeros(2, 3))
    assert modes == ["thread_local"] == [raster.CAPTURE_ERROR_MODE]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    ("name", "options"), [("cartpole", {}), ("mountaincar", {}), ("mountaincar", {"textured": True})]
)
def test_a_batched_env_prepares_its_drawing_when_it_is_made(
    name: str, options: dict[str, Any], device: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Graphs are captured for the env's batch size when the env is made (so never on training's hot path),
    and a step replays them: no capture after construction."""
    prepared: list[Any] = []
    for renderer in (CartPoleFrames, MountainCarFrames):
        original = renderer.prepare
        monkeypatch.setattr(renderer, "prepare", lambda self, n, f=original: (prepared.append((self, n)), f(self, n)))
    venv = make_vec_env(name, 3, 16, options={**options, "renderer": "torch"}, vectorized=True, device=device)
    try:
        if options.get("textured"):  # drawn without a graph
            assert prepared == []
            return
        ((drawer, n),) = prepared
        assert n == 3
        shapes = drawer._graphed.captured_shapes
        assert len(shapes) == (1 if device == "cuda" else 0) and all(shape[0] == 3 for shape in shapes)
        venv.reset()
        venv.step(np.array([venv.action_space.sample() for _ in range(3)]))
        assert drawer._graphed.captured_shapes == shapes  # no capture after construction
    finally:
        venv.close()


@needs_cuda
def test_a_capture_beside_a_thread_that_synchronises_breaks_neither() -> None:
    """A capture while another thread copies results to the host (as the overlapped scorer does): the other
    thread sees no error, the graph is captured, and its frames are the uncaptured ones. With the default
    global capture mode this fails: the thread raises "operation not permitted when stream is capturing"
    and the capture is invalidated."""
    renderer = CartPoleFrames(64, "cuda", backend="torch")
    rng = np.random.default_rng(0)
    states = np.stack([rng.uniform(-2, 2, 8), np.zeros(8), rng.uniform(-1, 1, 8), np.zeros(8)], 1)
    errors: list[BaseException] = []
    stop = threading.Event()
    started = threading.Event()

    def synchronise() -> None:
        x = torch.ones(1024, device="cuda")
        try:
            while not stop.is_set():
                (x * 2).sum().cpu()  # a device-to-host copy: synchronises its stream
                started.set()
        except BaseException as exc:
            errors.append(exc)
            started.set()

    thread = threading.Thread(target=synchronise, daemon=True)
    thread.start()
    started.wait(10)
    try:
        for n in (8, 5, 3):  # three captures (a first draw of each batch size), each with the other thread busy
            renderer(states[:n])
    finally:
        stop.set()
        thread.join(10)
    assert not errors, f"the other thread failed during a capture: {errors[0]!r}"
    assert renderer._graphed.enabled and sorted(s[0] for s in renderer._graphed.captured_shapes) == [3, 5, 8]
    captured = renderer(states)
    renderer._graphed.enabled = False
    torch.testing.assert_close(captured, renderer(states), rtol=0, atol=0)


def _vlm_returns(run_dir: Path) -> list[float]:
    with open(run_dir / "logs" / "progress.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    return [float(row["rollout/vlm_return"]) for row in rows if row.get("rollout/vlm_return")]


@pytest.mark.slow
@pytest.mark.parametrize("device", DEVICES)
def test_training_on_device_frames_with_overlap_and_evaluation_matches_the_uncaptured_path(
    device: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The configuration that crashed on CUDA: the batched env drawing on the model's device, the overlapped
    scorer thread, and an evaluation env (a second batch size, so a second capture). It finishes, and its
    rewards equal those of the same run with graphs turned off."""
    config = config_from_dict(
        {
            "env": {"name": "cartpole", "episode_length": 10, "render_size": 32, "vectorized": True},
            "reward": {"overlap_scoring": True, "device": device},
            "rl": {
                "algorithm": "dqn",
                "total_steps": 120,
                "n_envs": 4,
                "hyperparameters": {"learning_starts": 1000},  # no gradient step: the same actions in both runs
            },
            "logging": {"eval_freq": 40, "eval_episodes": 1, "video_freq": 0, "progress_bar": False},
        }
    )

    def run(name: str) -> dict[str, Any]:
        reward = VLMReward(ColorEmbedder(32, device), ["red"], batch_size=16)
        return vlmrm.train(config, run_dir=tmp_path / name, reward_fn=reward).summary

    captured = run("captured")
    original_init = CudaGraphDraw.__init__

    def without_graphs(self: CudaGraphDraw, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.enabled = False

    monkeypatch.setattr(CudaGraphDraw, "__init__", without_graphs)
    uncaptured = run("uncaptured")
    assert captured["total_steps"] >= 120 and uncaptured["total_steps"] == captured["total_steps"]
    assert captured["overlap_scoring"] is True

    def scores(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in entry.items() if k != "video"} for entry in history]

    assert len(captured["eval_history"]) == 3 and scores(captured["eval_history"]) == scores(uncaptured["eval_history"])
    for key in ("eval_vlm_return", "eval_env_return"):
        assert captured[key] == pytest.approx(uncaptured[key], abs=1e-5)
    assert _vlm_returns(tmp_path / "captured") == pytest.approx(_vlm_returns(tmp_path / "uncaptured"), abs=1e-5)
    assert len(_vlm_returns(tmp_path / "captured")) > 0


def test_the_gpu_check_script_parses_and_says_how_to_use_it() -> None:
    import subprocess

    script = Path(__file__).resolve().parents[1] / "scripts" / "gpu-check"
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    result = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=False)
    assert result.returncode == 2 and "usage: scripts/gpu-check prepare | a | b" in result.stderr


@needs_cuda
def test_the_background_scorer_reads_device_frames_on_its_own_stream() -> None:
    """Overlapped scoring runs the model on the scorer's stream, ordered after the frames by an event: the same
    rewards as inline scoring, and never on the stream that draws the next frames."""
    from vlmrm.rl.vec_env import BackgroundScorer, InlineScorer

    streams: list[torch.cuda.Stream] = []
    reward = VLMReward(ColorEmbedder(16, "cuda"), ["red"], batch_size=8)

    def recording(frames: torch.Tensor) -> np.ndarray:
        streams.append(torch.cuda.current_stream())
        return reward(frames)

    recording.device = torch.device("cuda")  # type: ignore[attr-defined]  # wants frames on the GPU
    renderer = CartPoleFrames(16, "cuda", backend="torch")
    rng = np.random.default_rng(1)
    episodes = []
    for length in (5, 7, 3):
        states = np.stack(
            [rng.uniform(-2, 2, length), np.zeros(length), rng.uniform(-1, 1, length), np.zeros(length)], 1
        )
        step = renderer(states)  # one "step" tensor per episode; frames are views of it, as in training
        episodes.append([step[i] for i in range(length)])
    inline = [p.result() for p in InlineScorer(reward, 8).submit(episodes, limit=100)]
    scorer = BackgroundScorer(recording, 8)
    try:
        background = [p.result(timeout=30) for p in scorer.submit(episodes, limit=100)]
    finally:
        scorer.close()
    for a, b in zip(inline, background, strict=True):
        np.testing.assert_array_equal(a, b)
    assert streams and all(s != torch.cuda.default_stream() for s in streams)
