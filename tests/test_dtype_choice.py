"""``dtype="auto"`` and ``dtype="int8"`` on a CPU: the choice by timing, its cache, and int8's accuracy.

Timings are stubbed (``measure=`` or ``time_candidates`` patched): the tests check the choice
logic, not this machine's speed (that is ``vlmrm bench``'s job). ``conftest`` points the cache
at a temporary folder; tests that count measurements use their own.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from vlmrm.errors import ConfigError
from vlmrm.reward import VLMReward
from vlmrm.reward import dtype_choice as dc
from vlmrm.reward.devices import resolve_dtype
from vlmrm.reward.dtype_choice import DtypeChoice, cache_dir, settle_cpu_dtype
from vlmrm.reward.encoders import ImageTextEncoder, load_encoder
from vlmrm.testing import ColorEmbedder, color_reward_reference

pytestmark = pytest.mark.filterwarnings("ignore:vlmrm. model:UserWarning")

CPU = torch.device("cpu")


class StubTimings:
    """A ``measure`` that returns fixed seconds per image and records which candidates it was given."""

    def __init__(self, **seconds: float):
        self.seconds = seconds
        self.calls: list[list[str]] = []

    def __call__(self, candidates: Mapping[str, ImageTextEncoder]) -> dict[str, float]:
        self.calls.append(list(candidates))
        return {name: self.seconds[name] for name in candidates}


@pytest.fixture
def tiny() -> ImageTextEncoder:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return load_encoder("tiny-random", CPU, torch.float32)


@pytest.fixture(autouse=True)
def bf16_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every CPU here "has" bf16 kernels: the choice then rests on the (stubbed) timings alone."""
    monkeypatch.setattr(dc, "cpu_supports_bf16", lambda: True)


@pytest.mark.parametrize(
    ("bf16_seconds", "expected"),
    [(0.3, "bf16"), (0.89, "bf16"), (0.95, "fp32"), (1.6, "fp32")],
    ids=["bf16-3x-faster", "bf16-just-fast-enough", "bf16-5pct-faster", "bf16-slower"],
)
def test_auto_picks_bf16_only_where_it_is_timed_clearly_faster(
    tiny: ImageTextEncoder, tmp_path: Path, bf16_seconds: float, expected: str
) -> None:
    measure = StubTimings(fp32=1.0, bf16=bf16_seconds)
    encoder, choice = settle_cpu_dtype(tiny, "auto", measure=measure, cache=tmp_path)
    assert measure.calls == [["fp32", "bf16"]]
    assert choice.dtype == expected and not choice.cached
    assert choice.seconds == {"fp32": 1.0, "bf16": bf16_seconds}
    assert encoder.dtype == resolve_dtype(expected, CPU)
    assert next(encoder.model.parameters()).dtype == encoder.dtype  # type: ignore[attr-defined]
    # fp32 keeps the model as loaded; bf16 is a converted copy, the loaded model is left alone.
    assert (encoder is tiny) == (expected == "fp32")
    assert next(tiny.model.parameters()).dtype == torch.float32  # type: ignore[attr-defined]


def test_auto_times_the_real_model_once_and_the_second_load_reads_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Through ``VLMReward.from_pretrained``: the first load times, the second only reads the cache."""
    monkeypatch.setenv("VLMRM_CACHE_DIR", str(tmp_path))
    measure = StubTimings(fp32=1.0, bf16=0.4)
    monkeypatch.setattr(dc, "time_candidates", measure)
    with caplog.at_level(logging.INFO, logger="vlmrm.reward.dtype_choice"), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        first = VLMReward.from_pretrained("tiny-random", ["a red pole"], dtype="auto", device="cpu")
        second = VLMReward.from_pretrained("tiny-random", ["a red pole"], dtype="auto", device="cpu")
    assert first.dtype == second.dtype == torch.bfloat16
    assert len(measure.calls) == 1
    assert [record.getMessage() for record in caplog.records] == [
        "vlmrm: reward model dtype bf16: 2.50x as fast as fp32 on this CPU (timed now)",
        "vlmrm: reward model dtype bf16: 2.50x as fast as fp32 on this CPU (from the cache)",
    ]
    entries = json.loads((tmp_path / "cpu_dtypes.json").read_text())["entries"]
    (key,) = entries
    assert key.startswith("auto | ") and f"torch {torch.__version__}" in key and "CLIPModel" in key
    assert entries[key]["seconds"] == {"fp32": 1.0, "bf16": 0.4}


def test_the_cache_is_per_torch_version_and_per_architecture(
    tiny: ImageTextEncoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    measure = StubTimings(fp32=1.0, bf16=0.4)
    settle_cpu_dtype(tiny, "auto", measure=measure, cache=tmp_path)
    _, choice = settle_cpu_dtype(tiny, "auto", measure=measure, cache=tmp_path)
    assert choice.cached and len(measure.calls) == 1
    bigger = load_encoder("random:openai/clip-vit-base-patch32", CPU, torch.float32)
    _, choice = settle_cpu_dtype(bigger, "auto", measure=measure, cache=tmp_path)
    assert not choice.cached and len(measure.calls) == 2
    monkeypatch.setattr(torch, "__version__", "9.9.9")
    _, choice = settle_cpu_dtype(tiny, "auto", measure=measure, cache=tmp_path)
    assert not choice.cached and len(measure.calls) == 3


def test_a_broken_cache_file_is_measured_again_and_rewritten(
    tiny: ImageTextEncoder, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "cpu_dtypes.json").write_text("{not json")
    measure = StubTimings(fp32=1.0, bf16=2.0)
    with caplog.at_level(logging.WARNING, logger="vlmrm.reward.dtype_choice"):
        _, choice = settle_cpu_dtype(tiny, "auto", measure=measure, cache=tmp_path)
    assert choice.dtype == "fp32" and len(measure.calls) == 1
    assert "ignoring the unreadable dtype cache" in caplog.text
    assert json.loads((tmp_path / "cpu_dtypes.json").read_text())["version"] == 1


def test_a_cache_folder_that_cannot_be_written_costs_a_warning_not_the_run(
    tiny: ImageTextEncoder, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    with caplog.at_level(logging.WARNING, logger="vlmrm.reward.dtype_choice"):
        _, choice = settle_cpu_dtype(tiny, "auto", measure=StubTimings(fp32=1.0, bf16=0.5), cache=blocked / "vlmrm")
    assert choice.dtype == "bf16"
    assert "could not save the dtype timing" in caplog.text


def test_cache_dir_follows_vlmrm_cache_dir_then_xdg_cache_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLMRM_CACHE_DIR", "/somewhere/vlmrm-cache")
    monkeypatch.setenv("XDG_CACHE_HOME", "/xdg")
    assert cache_dir() == Path("/somewhere/vlmrm-cache")
    monkeypatch.delenv("VLMRM_CACHE_DIR")
    assert cache_dir() == Path("/xdg/vlmrm")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == Path.home() / ".cache" / "vlmrm"


def test_explicit_dtypes_and_encoders_without_a_model_are_left_as_they_are(tmp_path: Path) -> None:
    measure = StubTimings()
    embedder = ColorEmbedder()
    encoder, choice = settle_cpu_dtype(embedder, "fp32", measure=measure, cache=tmp_path)
    assert encoder is embedder and choice == DtypeChoice("fp32", "as requested")
    encoder, choice = settle_cpu_dtype(embedder, "auto", measure=measure, cache=tmp_path)
    assert encoder is embedder and choice.dtype == "fp32" and "no torch model" in choice.reason
    assert measure.calls == [] and not (tmp_path / "cpu_dtypes.json").exists()


def test_time_candidates_times_every_candidate_per_image() -> None:
    encoders = {"a": ColorEmbedder(), "b": ColorEmbedder()}
    seconds = dc.time_candidates(encoders, budget_s=0.0)
    assert set(seconds) == {"a", "b"} and min(seconds.values()) > 0
    # One untimed call each, then MIN_ROUNDS timed rounds (the budget is spent at once).
    assert [encoder.image_calls for encoder in encoders.values()] == [1 + dc.MIN_ROUNDS] * 2


# -- int8 -------------------------------------------------------------------------------------------


def _identity_through(width: int, hidden: int, generator: torch.Generator) -> torch.nn.Sequential:
    """Two linear layers whose product is the identity (seeded weights, the second the pseudo-inverse of the first)."""
    expand, project = torch.nn.Linear(width, hidden), torch.nn.Linear(hidden, width)
    with torch.no_grad():
        expand.weight.copy_(torch.randn(hidden, width, generator=generator))
        project.weight.copy_(torch.linalg.pinv(expand.weight))
        expand.bias.zero_()
        project.bias.zero_()
    return torch.nn.Sequential(expand, project)


class LinearColorEmbedder(ColorEmbedder):
    """:class:`ColorEmbedder`'s embeddings computed through linear layers in both towers.

    In fp32 the rewards are those :func:`color_reward_reference` predicts (they follow the frame's
    colour); int8 quantisation has real weights and activations to round.
    """

    def __init__(self) -> None:
        super().__init__(size=16)
        generator = torch.Generator().manual_seed(0)
        self.model = torch.nn.ModuleDict(
            {"vision": _identity_through(3, 64, generator), "text": _identity_through(4, 64, generator)}
        )

    @torch.inference_mode()
    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        mean_rgb = pixel_values.mean(dim=(2, 3))
        rgb = self.model["vision"](mean_rgb).float()
        return torch.cat([rgb, torch.full_like(rgb[:, :1], 0.25)], dim=1)

    @torch.inference_mode()
    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        return self.model["text"](super().encode_text(prompts).to(self.dtype)).float()


def linear_layers(encoder: ImageTextEncoder) -> tuple[int, int]:
    """``(float, int8)``: how many of the encoder's linear layers are float ``nn.Linear``, how many int8."""
    layers = list(encoder.model.modules())  # type: ignore[attr-defined]
    dynamic = sum(type(layer).__module__.startswith("torch.ao.nn.quantized.dynamic") for layer in layers)
    return sum(isinstance(layer, torch.nn.Linear) for layer in layers), dynamic


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(spearmanr(a, b).statistic)


def colour_frames(count: int, size: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.broadcast_to(rng.integers(0, 256, (count, 1, 1, 3), dtype=np.uint8), (count, size, size, 3)).copy()


@pytest.mark.parametrize("engine", ["x86", "onednn"])
def test_int8_rewards_rank_like_fp32_on_a_model_whose_rewards_follow_the_frame(engine: str) -> None:
    if engine not in torch.backends.quantized.supported_engines:
        pytest.skip(f"this torch has no {engine} quantisation engine")
    embedder = LinearColorEmbedder()
    frames = colour_frames(200, 16)
    fp32 = VLMReward(embedder, "a red pole")
    np.testing.assert_allclose(fp32(frames), color_reward_reference(frames, (1.0, 0.0, 0.0)), atol=1e-4)
    int8 = VLMReward(dc.quantize_int8(embedder, engine), "a red pole")
    assert linear_layers(int8.encoder) == (0, 4)
    assert sum(isinstance(layer, torch.nn.Linear) for layer in embedder.model.modules()) == 4  # a copy
    rewards, reference = int8(frames), fp32(frames)
    assert not np.array_equal(rewards, reference)  # rounded, so not the same numbers ...
    assert rank_correlation(rewards, reference) >= 0.99  # ... but the same order
    assert np.abs(rewards - reference).max() < 0.05


def test_int8_through_the_transformers_route_keeps_the_order_of_rewards(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``dtype="int8"`` from ``VLMReward.from_pretrained``: a seeded CLIP, both towers quantised, rewards in order."""
    monkeypatch.setenv("VLMRM_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(dc, "time_candidates", StubTimings(fp32=1.0, x86=0.5, onednn=0.6, qnnpack=0.5))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        fp32 = VLMReward.from_pretrained("tiny-random", "a red pole", "a pole", dtype="fp32", device="cpu")
        int8 = VLMReward.from_pretrained("tiny-random", "a red pole", "a pole", dtype="int8", device="cpu")
    float_layers, int8_layers = linear_layers(int8.encoder)
    assert float_layers == 0 and int8_layers == sum(linear_layers(fp32.encoder))
    frames = colour_frames(200, fp32.image_size)
    cosine = (int8.embed_images(frames) * fp32.embed_images(frames)).sum(dim=1)
    assert float(cosine.min()) > 0.998
    # 0.994 here: a 32-wide random model is int8's worst case (the ViT-B-32 figures are in docs/benchmark.md).
    assert rank_correlation(int8(frames), fp32(frames)) >= 0.98


def test_int8_is_refused_where_it_is_not_faster(tiny: ImageTextEncoder, tmp_path: Path) -> None:
    measure = StubTimings(fp32=1.0, x86=0.95, onednn=1.3, qnnpack=0.95)
    with pytest.raises(ConfigError, match=r"dtype int8 is not faster than fp32 on this CPU: 1\.05x fp32 .*use fp32"):
        settle_cpu_dtype(tiny, "int8", measure=measure, cache=tmp_path)
    # The verdict is cached too: the second attempt fails at once, without timing.
    with pytest.raises(ConfigError, match="from the cache"):
        settle_cpu_dtype(tiny, "int8", measure=measure, cache=tmp_path)
    assert len(measure.calls) == 1


def test_int8_is_accepted_where_faster_with_the_fastest_engine(tiny: ImageTextEncoder, tmp_path: Path) -> None:
    engines = [e for e in dc.INT8_ENGINES if e in torch.backends.quantized.supported_engines] or ["qnnpack"]
    seconds = {"fp32": 1.0, **{engine: 0.8 - 0.1 * i for i, engine in enumerate(engines)}}
    encoder, choice = settle_cpu_dtype(tiny, "int8", measure=StubTimings(**seconds), cache=tmp_path)
    assert choice.dtype == "int8" and choice.engine == engines[-1]
    assert encoder.dtype == torch.float32 and encoder is not tiny  # fp32 activations, quantised copy


def test_int8_runs_on_cpus_only() -> None:
    with pytest.raises(ConfigError, match="dtype int8 runs on CPUs only"):
        resolve_dtype("int8", torch.device("cuda"))
