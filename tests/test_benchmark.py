"""``vlmrm bench`` and the fast reward path: same rewards as the reference way, bounded memory, the CLI."""

from __future__ import annotations

import contextlib
import io
import json
import re
import threading
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest

from markers import requires_pygame, skip_without_pygame
from vlmrm.benchmark import (
    BOUNDED_BY_ONE,
    EMBED_ONLY,
    END_TO_END,
    OVER_EMBED,
    BenchSettings,
    ModelCalls,
    RandomActions,
    Ratio,
    load_rewards,
    make_reference_vec_env,
    ratio_note,
    time_calls,
    time_rewarded_steps,
)
from vlmrm.cli.bench import check_writable
from vlmrm.cli.main import main
from vlmrm.errors import ConfigError
from vlmrm.reward import VLMReward
from vlmrm.reward.devices import cpu_supports_bf16
from vlmrm.rl import VecVLMReward
from vlmrm.rl.vec_env_factory import make_vec_env

pytestmark = pytest.mark.filterwarnings("ignore:vlmrm. model:UserWarning")

PROMPT = "pole vertically upright on top of the cart"


@pytest.fixture(scope="module")
def rewards() -> tuple[VLMReward, VLMReward]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        fast, reference, choice = load_rewards("tiny-random", PROMPT, "bf16", "cpu", batch=8)
    assert choice.dtype == "bf16" and choice.reason == "as requested"
    return fast, reference


def fast_path_rewards(reward: VLMReward, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-step rewards of the fast path (episode batches scored in the background) and the frames scored."""
    venv = VecVLMReward(
        make_vec_env("cartpole", 2, reward.image_size, episode_length=12), reward, mode="episode", overlap=True
    )
    venv.reset()
    actions = RandomActions(venv, seed=0)
    frames, episodes = [], {0: [], 1: []}
    for _ in range(steps):
        _, _, dones, infos = venv.step(actions())
        frames.append(venv.last_frames)
        for i in np.flatnonzero(dones):
            episodes[int(i)].append(infos[i]["vlm_episode_rewards"])
    venv.drain()
    per_env = []
    for i in range(2):
        scored = [pending.result() for pending in episodes[i]]
        running = venv.running_episode_frames()[i]
        per_env.append(np.concatenate([*scored, reward(np.stack(running)) if running else np.zeros(0)]))
    venv.close()
    return np.stack(per_env, axis=1), np.stack(frames)


def test_fast_path_gives_the_reference_rewards_on_the_same_frames(rewards: tuple[VLMReward, VLMReward]) -> None:
    fast, reference = rewards
    assert fast.dtype != reference.dtype and fast.encoder.model is not reference.encoder.model
    # Pipeline mechanics (episode batches, chunks of 8, background thread) change nothing: fp32 vs fp32.
    fp32_fast, frames = fast_path_rewards(reference, steps=30)
    per_step = np.stack([reference(step_frames) for step_frames in frames])  # the reference way: per step
    np.testing.assert_allclose(fp32_fast, per_step, atol=1e-5)
    # The fast dtype differs from fp32 by rounding only.
    bf16_fast, bf16_frames = fast_path_rewards(fast, steps=30)
    np.testing.assert_array_equal(bf16_frames, frames)  # same seeds, same frames
    np.testing.assert_allclose(bf16_fast, per_step, atol=0.01)
    flat = frames.reshape(-1, *frames.shape[2:])
    cosine = (fast.embed_images(flat) * reference.embed_images(flat)).sum(dim=1)
    assert float(cosine.min()) > 0.99


@requires_pygame
def test_reference_env_renders_gymnasium_native_frames() -> None:
    venv = make_reference_vec_env("cartpole", 2, episode_length=10, seed=0)
    venv.reset()
    _, _, _, infos = venv.step(np.zeros(2, dtype=int))
    assert infos[0]["frame"].shape == (400, 600, 3)
    venv.close()


@pytest.mark.parametrize("mode, overlap", [("step", False), ("episode", False), ("episode", True)])
def test_peak_memory_does_not_grow_with_steps(rewards: tuple[VLMReward, VLMReward], mode: str, overlap: bool) -> None:
    """Python-heap peak (tracemalloc, which sees numpy frames) of 3N steps stays that of N steps."""
    fast, _ = rewards

    def peak(steps: int) -> int:
        venv = VecVLMReward(make_vec_env("cartpole", 2, 224, episode_length=5), fast, mode=mode, overlap=overlap)
        tracemalloc.start()
        try:
            time_rewarded_steps(venv, steps, seed=0)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            venv.close()

    peak(3)  # first-call allocations (caches, kernels) out of the way
    short, long = peak(15), peak(45)
    assert long <= 1.25 * short + 256 * 1024, (short, long)


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, list[str], dict]:
    """One small ``vlmrm bench`` run: its exit code, stdout lines and JSON. Episodes end at step 3 of 4."""
    skip_without_pygame()  # the reference row renders with Gymnasium's own renderer
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    args = ["cartpole", "--model", "tiny-random", "--steps", "4", "--repeats", "2", "--n-envs", "2", "--batch", "4"]
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["bench", *args, "--episode-length", "3", "--json", str(out)])
    return code, stdout.getvalue().strip().splitlines(), json.loads(out.read_text())


@pytest.mark.slow
def test_bench_cli_prints_the_two_ratios_and_writes_json(bench_run: tuple[int, list[str], dict]) -> None:
    code, lines, data = bench_run
    assert code == 0
    assert re.fullmatch(r"end_to_end_speedup_vs_reference_style: \d+\.\d\d", lines[-2])
    assert re.fullmatch(r"end_to_end_over_embed_only: \d+\.\d\d", lines[-1])
    assert list(data["phases"]) == [
        "render_only",
        "e2e_step",
        "embed_only_step",
        "e2e_episode",
        "embed_only_episode",
        "e2e_episode_overlap",
        "embed_only_episode_overlap",
        "reference",
    ]
    assert data["reference_frame_shape"] == [400, 600, 3] and data["model"]["image_size"] == 64
    assert data["model"]["compile"] == "none" and data["model"]["attention"] == "sdpa"
    assert "compile: none; attention: sdpa" in lines
    # Which dtype auto chose, and why (timed here, or read from the test session's cache).
    model = data["model"]
    assert f"dtype (auto): {model['dtype']}: {model['dtype_reason']}" in lines
    assert model["dtype"] in ("fp32", "bf16")
    if cpu_supports_bf16():
        assert model["dtype_reason"].endswith(("(timed now)", "(from the cache)"))
        assert set(model["dtype_seconds_per_image"]) == {"fp32", "bf16"}
    assert data["best_end_to_end"] in END_TO_END
    for phase in data["phases"].values():
        assert len(phase["rates"]) == 2 and min(phase["rates"]) > 0 and min(phase["peak_rss_mib"]) > 0
    printed = float(lines[-1].split(": ")[1])
    assert printed == pytest.approx(data["end_to_end_over_embed_only"], abs=0.006)
    # The ratio compares the best end-to-end row with its own embed-only row, repeat by repeat.
    ratio = data["ratios"]["end_to_end_over_embed_only"]
    assert ratio["compares"] == f"{data['best_end_to_end']} / {EMBED_ONLY[data['best_end_to_end']]}"
    best, embed = (data["phases"][name]["rates"] for name in ratio["compares"].split(" / "))
    assert ratio["per_repeat"] == pytest.approx([b / e for b, e in zip(best, embed, strict=True)])


@pytest.mark.slow
def test_bench_embed_only_rows_make_the_model_calls_of_their_end_to_end_rows(
    bench_run: tuple[int, list[str], dict],
) -> None:
    """Per repeat, each embed-only row sends the model the frames per call its end-to-end row sent."""
    phases = bench_run[2]["phases"]
    assert phases["render_only"]["frames_per_call"] is None
    # Per-step mode: one call of n_envs frames per vector step.
    assert phases["e2e_step"]["frames_per_call"] == [[[2, 4]], [[2, 4]]]
    # Episode mode: both episodes end at step 3 (6 frames, at most --batch 4 per call), then the 2 running frames.
    assert phases["e2e_episode"]["frames_per_call"] == [[[4, 1], [2, 2]], [[4, 1], [2, 2]]]
    for name in END_TO_END:
        calls = phases[name]["frames_per_call"]
        assert phases[EMBED_ONLY[name]]["frames_per_call"] == calls
        for repeat in calls:
            assert sum(frames * count for frames, count in repeat) == 2 * 4
            assert max(frames for frames, _ in repeat) <= 4
        # ... from the same kind of thread: the overlapped row's scorer thread scores the 6 frames of ended episodes.
        threads = phases[name]["calls_off_caller_thread"]
        assert phases[EMBED_ONLY[name]]["calls_off_caller_thread"] == threads
        assert threads == ([2, 2] if name == "e2e_episode_overlap" else [0, 0])


def test_time_calls_replays_recorded_calls_with_their_sizes_and_threads() -> None:
    threads: list[int] = []

    def reward_fn(frames: np.ndarray) -> np.ndarray:
        threads.append(threading.get_ident())
        return np.zeros(len(frames), dtype=np.float32)

    recorded = [(2, False), (3, True), (1, True), (4, False), (2, True)]
    replay = ModelCalls(reward_fn)
    assert time_calls(replay, np.zeros((5, 8, 8, 3), dtype=np.uint8), recorded) >= 0
    assert replay.calls == recorded and replay.sizes == [2, 3, 1, 4, 2] and replay.off_home_thread == 3
    main = threading.get_ident()
    assert threads[0] == threads[3] == main and threads[1] == threads[2] == threads[4] != main


def test_ratio_note_explains_a_ratio_above_one_beyond_the_spread_of_the_repeats() -> None:
    why = BOUNDED_BY_ONE[OVER_EMBED]
    above = Ratio.of("e2e_episode", "embed_only_episode", [130.0, 135.0, 132.0], [100.0, 100.0, 100.0])
    assert above.median == pytest.approx(1.32) and above.spread == pytest.approx(0.05)
    note = ratio_note(OVER_EMBED, above, why, [0.5, 0.4, 0.3], [3.25, 1.0, 0.5])
    assert note is not None and "\n" not in note
    assert note.startswith("note: end_to_end_over_embed_only is 1.32, above 1 by more than the spread")
    assert "(0.05)" in note and why in note and "load average 0.50 at start, 3.25 at end" in note
    # Within the spread of the repeats, or at most 1: no note.
    noisy = Ratio.of("e2e_episode", "embed_only_episode", [105.0, 150.0], [100.0, 100.0])
    assert noisy.median == pytest.approx(1.275) and ratio_note(OVER_EMBED, noisy, why, None, None) is None
    assert ratio_note(OVER_EMBED, Ratio.of("a", "b", [90.0], [100.0]), why, None, None) is None
    # One repeat: no spread, so any excess gets a note; no load average on this platform reads "-".
    single = ratio_note(OVER_EMBED, Ratio.of("a", "b", [101.0], [100.0]), why, None, None)
    assert single is not None and "load average - at start, - at end" in single


def test_bench_checks_the_json_path_before_measuring(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    unwritable = [blocker / "bench.json", tmp_path]  # a folder that cannot be created; a folder, not a file
    if Path("/proc/self").is_dir():
        unwritable.append(Path("/proc/x.json"))  # a folder no file can be created in, even by root
    for path in unwritable:
        args = ["cartpole", "--model", "tiny-random", "--steps", "1", "--repeats", "1", "--json", str(path)]
        assert main(["bench", *args]) == 2
        captured = capsys.readouterr()
        assert captured.out == ""  # nothing measured, no table
        assert re.fullmatch(rf"error: --json {re.escape(str(path))}[^\n]*\n", captured.err), captured.err
    # A writable path: missing folders are made, and no probe file is left.
    target = tmp_path / "new" / "folder" / "bench.json"
    check_writable(target)
    assert target.parent.is_dir() and list(target.parent.iterdir()) == []


@pytest.mark.parametrize("name", ["n_envs", "batch", "steps", "repeats", "episode_length"])
@pytest.mark.parametrize("value", [0, -3])
def test_bench_settings_refuse_non_positive_numbers(name: str, value: int) -> None:
    flag = "--" + name.replace("_", "-")
    with pytest.raises(ConfigError, match=rf"^{name} \({flag}\) must be 1 or more, got {value}\.$"):
        BenchSettings(env="cartpole", model="tiny-random", **{name: value})


def test_bench_cli_refuses_episode_length_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "cartpole", "--model", "tiny-random", "--episode-length", "0"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "error: episode_length (--episode-length) must be 1 or more, got 0.\n"


def test_several_env_counts_end_with_a_scale_table_and_a_png(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--n-envs 1,3``: each count measured in turn, then one row per count and the curve as a PNG."""
    plot = tmp_path / "scale.png"
    args = ["cartpole", "--model", "tiny-random", "--n-envs", "1,3", "--steps", "3", "--repeats", "1", "--no-reference"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        assert main(["bench", *args, "--plot", str(plot), "--json", str(tmp_path / "b.json")]) == 0
    out = capsys.readouterr().out
    assert "1 envs" in out and "3 envs" in out and "scale: vlmrm bench cartpole" in out
    rows = [line for line in out.splitlines() if re.match(r"^│\s+[13] │", line)]
    assert len(rows) == 2, out
    assert plot.read_bytes().startswith(b"\x89PNG")
    runs = json.loads((tmp_path / "b.json").read_text())["runs"]
    assert [run["settings"]["n_envs"] for run in runs] == [1, 3]


@pytest.mark.parametrize("counts", ["4,x", "0", "4,-1"])
def test_bad_env_counts_are_one_line(counts: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["bench", "cartpole", "--model", "tiny-random", "--n-envs", counts])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--n-envs" in err and "Traceback" not in err


def test_the_bench_counts_the_image_towers_flops_and_knows_dense_peaks(
    rewards: tuple[VLMReward, VLMReward],
) -> None:
    from vlmrm.benchmark import dense_peak_tflops, image_flops

    fast, _ = rewards
    flops = image_flops(fast)
    encoder = fast.encoder
    # At least the patch embedding: a conv of 3 x p x p per output channel at each of (size / p)^2 positions.
    vision = encoder.model.config.vision_config  # type: ignore[attr-defined]
    patches = (vision.image_size // vision.patch_size) ** 2
    assert flops is not None and flops >= 2 * patches * vision.hidden_size * 3 * vision.patch_size**2
    assert dense_peak_tflops("NVIDIA H200", "bf16") == dense_peak_tflops("NVIDIA H100 80GB HBM3", "fp16") == 989.0
    assert dense_peak_tflops("NVIDIA H200", "fp32") is None and dense_peak_tflops("x86_64", "bf16") is None


def test_bench_env_options_are_checked_as_a_configs_before_the_model_loads(capsys: pytest.CaptureFixture[str]) -> None:
    settings = BenchSettings(env="mountaincar", model="tiny-random", options={"textured": True}, renderer="pil")
    assert settings.env_options() == {"textured": True, "renderer": "pil"}
    assert main(["bench", "cartpole", "--model", "no/such-model", "--option", "physics=warp"]) == 2
    err = capsys.readouterr().err
    assert "Invalid options for environment 'cartpole'" in err and "physics" in err and "Traceback" not in err
    assert main(["bench", "cartpole", "--model", "no/such-model", "--option", "renderer=torch"]) == 2
    assert "give the renderer as --renderer" in capsys.readouterr().err
    assert main(["bench", "cartpole", "--model", "no/such-model", "--option", "terminate_on_fall"]) == 2
    assert "--option must look like KEY=VALUE" in capsys.readouterr().err
