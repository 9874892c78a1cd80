"""Reward landscapes and the realistic MountainCar look."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import pytest

from vlmrm.cli.main import main
from vlmrm.config import load_config
from vlmrm.envs import get_env_spec, make_env
from vlmrm.envs.humanoid.options import interpolate_qpos
from vlmrm.envs.mountaincar.draw import render_mountaincar
from vlmrm.envs.mountaincar.spec import MOUNTAIN_MAX_X, MOUNTAIN_MIN_X
from vlmrm.envs.mountaincar.textured import _cached_background, render_mountaincar_textured, textured_background
from vlmrm.errors import ConfigError
from vlmrm.evaluation.landscape import (
    CSV_COLUMNS,
    compute_landscape,
    default_prompts,
    make_sweep,
    rescale,
    run_landscape,
)
from vlmrm.reward import VLMReward
from vlmrm.testing import ColorEmbedder, color_reward_reference

REPO = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("env", ["cartpole", "mountaincar"])
def test_configs_and_landscapes_take_the_prompts_of_the_env_spec(env: str) -> None:
    """Prompts live in one place, the env's spec: the shipped configs name none and get the spec's."""
    assert "target_prompts:" not in (REPO / "configs" / f"{env}.yaml").read_text()
    config = load_config(REPO / "configs" / f"{env}.yaml")
    prompts = get_env_spec(env).default_prompts()
    assert (config.reward.target_prompts, config.reward.baseline_prompts) == (
        list(prompts.target),
        list(prompts.baseline),
    )
    assert default_prompts(env) == (list(prompts.target), list(prompts.baseline))


def test_landscape_csv_has_one_row_per_state_model_and_alpha(tmp_path: Path) -> None:
    embedder = ColorEmbedder()
    models = {"color": VLMReward(embedder, ["a red cart"], ["a blue cart"])}
    alphas = [0.0, 0.5, 1.0]
    csv_path, png_path, _ = run_landscape("cartpole", models, alphas, tmp_path, points=9)

    table = read_csv(csv_path)
    assert list(table[0]) == list(CSV_COLUMNS)
    assert len(table) == 9 * len(alphas)
    assert {(r["model"], float(r["alpha"])) for r in table} == {("color", a) for a in alphas}
    angles = sorted({float(r["state_value"]) for r in table})
    np.testing.assert_allclose(angles, np.linspace(-np.pi / 2, np.pi / 2, 9), atol=1e-9)
    assert {r["variable"] for r in table} == {"pole angle (rad)"} and {float(r["goal_value"]) for r in table} == {0.0}
    # Frames were embedded once (one batch), whatever the number of alphas.
    assert embedder.image_calls == 1
    # Raw rewards (not rescaled): at alpha = 0 they are the cosine similarity of the frames.
    sweep = make_sweep("cartpole", 9)
    frames = sweep.frames(16)
    at_zero = [float(r["reward"]) for r in sorted(table, key=lambda r: int(r["state_index"])) if r["alpha"] == "0.0"]
    np.testing.assert_allclose(at_zero, color_reward_reference(frames, (1, 0, 0)), atol=1e-5)
    assert png_path.read_bytes()[:8] == PNG_MAGIC and png_path.stat().st_size > 10_000


def test_sweep_sets_the_simulator_state() -> None:
    sweep = make_sweep("cartpole", 5)
    frames = sweep.frames(32)
    assert frames.shape == (5, 32, 32, 3) and frames.dtype == np.uint8
    # The pole leans left at -pi/2 and right at +pi/2: mirror images of each other.
    np.testing.assert_array_equal(frames[0], frames[-1][:, ::-1])
    assert not np.array_equal(frames[0], frames[2])
    assert sweep.frames(32) is frames  # cached per size


@pytest.mark.filterwarnings("ignore:.*RANDOM weights:UserWarning")
def test_mountaincar_landscape_with_both_looks_from_the_cli(tmp_path: Path) -> None:
    out = tmp_path / "mc"
    code = main(
        [
            *("landscape", "mountaincar", "--model", "tiny-random", "--alpha", "0", "--alpha", "1", "--both-looks"),
            *("--points", "7", "--out", str(out)),
        ]
    )
    assert code == 0
    table = read_csv(out / "landscape.csv")
    assert len(table) == 2 * 2 * 7  # looks x alphas x states
    assert {r["look"] for r in table} == {"flat", "textured"}
    assert {r["model"] for r in table} == {"tiny-random"}
    assert all(np.isfinite(float(r["reward"])) for r in table)
    positions = sorted({float(r["state_value"]) for r in table})
    assert positions[0] == pytest.approx(MOUNTAIN_MIN_X) and positions[-1] == pytest.approx(MOUNTAIN_MAX_X)
    assert {float(r["goal_value"]) for r in table} == {0.45}
    flat = [float(r["reward"]) for r in table if r["look"] == "flat"]
    textured = [float(r["reward"]) for r in table if r["look"] == "textured"]
    assert flat != textured  # different pictures, different rewards
    assert (out / "landscape.png").read_bytes()[:8] == PNG_MAGIC


def test_landscape_errors_are_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["landscape", "cartpole", "--model", "tiny-random", "--textured", "--out", str(tmp_path)]) == 2
    assert "mountaincar only" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="at least 2"):
        make_sweep("cartpole", 1)
    with pytest.raises(ConfigError, match="Unknown environment 'pendulum'"):
        make_sweep("pendulum")
    embedder = ColorEmbedder()
    with pytest.raises(ConfigError, match="baseline"):
        compute_landscape(make_sweep("cartpole", 3), {"c": VLMReward(embedder, ["red"])}, [0.5])


def test_rescale_and_interpolation() -> None:
    np.testing.assert_allclose(rescale(np.array([2.0, 4.0, 3.0])), [0.0, 1.0, 0.5])
    np.testing.assert_allclose(rescale(np.array([0.3, 0.3])), [0.5, 0.5])
    start = np.array([0, 0, 1.3, 1, 0, 0, 0, 0.5])
    goal = np.array([0, 0, 0.5, 0, 0, 0, 1, -0.5])
    mid = interpolate_qpos(start, goal, 0.5)
    assert np.linalg.norm(mid[3:7]) == pytest.approx(1.0)
    np.testing.assert_allclose(mid[[0, 1, 2, 7]], [0, 0, 0.9, 0.0])
    np.testing.assert_allclose(interpolate_qpos(start, goal, 1.0), goal)


def red_centroid_x(frame: np.ndarray) -> float:
    r, g, b = (frame[..., i].astype(int) for i in range(3))
    mask = (r > 150) & (g < 80) & (b < 80)
    assert mask.sum() > 10, "the red car must be visible"
    return float(np.nonzero(mask)[1].mean())


def test_textured_mountaincar_draws_the_car_where_it_is() -> None:
    size = 128
    positions = [-1.0, -0.5, 0.0, 0.4]
    frames = [render_mountaincar_textured(p, size) for p in positions]
    for frame in frames:
        assert frame.shape == (size, size, 3) and frame.dtype == np.uint8
    xs = [red_centroid_x(f) for f in frames]
    expected = [(p - MOUNTAIN_MIN_X) / (MOUNTAIN_MAX_X - MOUNTAIN_MIN_X) * size for p in positions]
    np.testing.assert_allclose(xs, expected, atol=size * 0.04)
    # Deterministic, and only the car differs between frames.
    np.testing.assert_array_equal(render_mountaincar_textured(-0.5, size), frames[1])
    changed = np.any(frames[0] != frames[3], axis=-1)
    assert 0 < changed.mean() < 0.05
    # Sky on top (blue dominant), yellow flag near the goal, earth at the bottom (red > blue).
    top = frames[0][: size // 10].reshape(-1, 3).mean(0)
    assert top[2] > top[0] + 40
    bottom = frames[0][-size // 10 :].reshape(-1, 3).mean(0)
    assert bottom[0] > bottom[2] + 30
    r, g, b = (frames[0][..., i].astype(int) for i in range(3))
    yellow = np.nonzero((r > 200) & (g > 160) & (b < 90))
    assert yellow[0].size > 5
    goal_x = (0.45 - MOUNTAIN_MIN_X) / (MOUNTAIN_MAX_X - MOUNTAIN_MIN_X) * size
    assert goal_x - 2 < yellow[1].mean() < goal_x + 0.1 * size


def test_textured_background_is_cached_and_rendering_is_fast() -> None:
    background = textured_background(96)
    assert not background.flags.writeable
    hits = _cached_background.cache_info().hits
    start = time.perf_counter()
    for p in np.linspace(-1.2, 0.6, 20):
        render_mountaincar_textured(float(p), 96)
    elapsed = time.perf_counter() - start
    assert _cached_background.cache_info().hits >= hits + 20
    assert elapsed < 1.0, f"20 frames took {elapsed:.2f} s; the background should be cached"


def test_mountaincar_env_textured_option() -> None:
    env = make_env("mountaincar", render_size=64, textured=True)
    env.reset(seed=3)
    position = float(env.unwrapped.state[0])
    np.testing.assert_array_equal(env.render(), render_mountaincar_textured(position, 64))
    flat = make_env("mountaincar", render_size=64)
    flat.reset(seed=3)
    np.testing.assert_array_equal(flat.render(), render_mountaincar(position, 64))
