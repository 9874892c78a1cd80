"""VLMReward: caching, batching, dtypes, loading and the errors a user sees."""

from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from vlmrm.errors import ConfigError, DeviceError, ModelLoadError, PromptError, VLMRMError
from vlmrm.reward import VLMReward
from vlmrm.reward.architectures import build_random_model
from vlmrm.reward.devices import resolve_device
from vlmrm.testing import ColorEmbedder, color_reward_reference


def random_frames(n: int, height: int = 16, width: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, height, width, 3), dtype=np.uint8)


def test_rewards_follow_the_picture(color_embedder: ColorEmbedder) -> None:
    reward = VLMReward(color_embedder, ["a red square"])
    frames = np.stack([np.full((16, 16, 3), c, np.uint8) for c in ([255, 0, 0], [0, 0, 255], [128, 0, 0])])
    r = reward(frames)
    assert r.dtype == np.float32 and r.shape == (3,)
    np.testing.assert_allclose(r, color_reward_reference(frames, (1, 0, 0)), atol=1e-6)
    assert r[0] > r[2] > r[1]


def test_prompt_embeddings_are_computed_once(color_embedder: ColorEmbedder) -> None:
    reward = VLMReward(color_embedder, ["red", "a red car"], ["blue"], alpha=0.5)
    assert color_embedder.text_calls == [["red", "a red car"], ["blue"]]
    target = reward.target_embedding.clone()
    for alpha in (0.0, 1.0, 0.25):
        reward.alpha = alpha
    reward.embed_text(["red", "blue"])
    reward(random_frames(3))
    assert len(color_embedder.text_calls) == 2, "changing alpha or scoring frames must not re-embed prompts"
    torch.testing.assert_close(reward.target_embedding, target)
    assert reward.target_embedding.norm().item() == pytest.approx(1.0)
    assert reward.baseline_embedding is not None and reward.baseline_embedding.norm().item() == pytest.approx(1.0)


def test_alpha_override_matches_setting_alpha(color_embedder: ColorEmbedder) -> None:
    reward = VLMReward(color_embedder, ["red"], ["blue"], alpha=0.0)
    embeddings = reward.embed_images(random_frames(5))
    at_one = reward.reward_from_embeddings(embeddings, alpha=1.0)
    reward.alpha = 1.0
    torch.testing.assert_close(reward.reward_from_embeddings(embeddings), at_one)


@pytest.mark.parametrize("batch_size", [1, 3, 7, 64])
def test_any_batch_size_gives_the_same_rewards(color_embedder: ColorEmbedder, batch_size: int) -> None:
    frames = random_frames(7)
    expected = VLMReward(ColorEmbedder(), ["red"], batch_size=64)(frames)
    reward = VLMReward(color_embedder, ["red"], batch_size=batch_size)
    np.testing.assert_allclose(reward(frames), expected, atol=1e-6)
    assert color_embedder.image_calls == -(-7 // batch_size)  # chunks of at most batch_size frames


def test_empty_and_zero_frame_inputs(color_embedder: ColorEmbedder) -> None:
    reward = VLMReward(color_embedder, ["red"])
    assert reward(np.zeros((0, 16, 16, 3), np.uint8)).shape == (0,)
    assert reward(np.zeros((16, 16, 3), np.uint8)).shape == (1,)  # a single frame is a batch of one
    with pytest.raises(ValueError, match="uint8"):
        reward(np.zeros((1, 16, 16, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        reward(np.zeros((1, 16, 16), np.uint8))


@pytest.mark.parametrize(
    ("targets", "baselines", "alpha", "message"),
    [
        ([""], None, 0.0, "empty"),
        (["   "], None, 0.0, "empty"),
        ([], None, 0.0, "At least one target prompt"),
        (["red"], [""], 0.0, "baseline prompt is empty"),
        (["red"], None, 0.5, "needs baseline prompts"),
    ],
)
def test_prompt_errors(color_embedder: ColorEmbedder, targets, baselines, alpha, message) -> None:
    with pytest.raises(PromptError, match=message):
        VLMReward(color_embedder, targets, baselines, alpha=alpha)


def test_alpha_zero_needs_no_baseline(color_embedder: ColorEmbedder) -> None:
    reward = VLMReward(color_embedder, ["red"])
    assert reward.baseline_embedding is None
    with pytest.raises(PromptError, match="baseline"):
        reward.alpha = 0.3


def test_tiny_random_warns_and_bf16_agrees_with_fp32() -> None:
    frames = random_frames(6, 224, 224)
    with pytest.warns(UserWarning, match="RANDOM weights"):
        fp32 = VLMReward.from_pretrained("tiny-random", ["a red car"], ["a car"], alpha=0.5, dtype="fp32")
    with pytest.warns(UserWarning, match="RANDOM weights"):
        bf16 = VLMReward.from_pretrained("tiny-random", ["a red car"], ["a car"], alpha=0.5, dtype="bf16")
    assert fp32.dtype == torch.float32 and bf16.dtype == torch.bfloat16
    cosine = torch.nn.functional.cosine_similarity(fp32.embed_images(frames), bf16.embed_images(frames))
    assert cosine.min().item() > 0.999
    np.testing.assert_allclose(bf16(frames), fp32(frames), atol=0.02)


def test_long_prompt_is_truncated_with_a_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        reward = VLMReward.from_pretrained("tiny-random", ["short"], dtype="fp32")
    long_prompt = "a humanoid robot kneeling " * 40
    with pytest.warns(UserWarning, match="truncated"):
        embedding = reward.embed_text([long_prompt])
    assert embedding.shape == (1, reward.target_embedding.shape[0])


def test_different_prompts_embed_differently(tiny_reward: VLMReward) -> None:
    e = tiny_reward.embed_text(["a cart", "a pole", "a cart"])
    assert not torch.allclose(e[0], e[1])
    torch.testing.assert_close(e[0], e[2])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty"),
        ("random:openai/clip-vit-base-patch33", "Did you mean 'random:openai/clip-vit-base-patch32'"),
        ("open_clip:ViT-B-32", "open_clip:ARCH/PRETRAINED"),
        ("openclip:ViT-B-32/openai", "Unknown model spec prefix"),
    ],
)
def test_bad_model_specs(spec: str, message: str) -> None:
    with pytest.raises(ModelLoadError, match=message):
        VLMReward.from_pretrained(spec, ["a red car"])


def test_offline_download_error_says_what_to_do() -> None:
    with pytest.raises(ModelLoadError) as info:
        VLMReward.from_pretrained("openai/clip-vit-base-patch32", ["a red car"])
    text = str(info.value)
    assert "HF_HUB_OFFLINE" in text and "local directory" in text and "tiny-random" in text


def test_open_clip_missing_is_explained() -> None:
    try:
        import open_clip  # noqa: F401
    except Exception:
        with pytest.raises(ModelLoadError, match=r"pip install 'vlmrm\[open-clip\]'"):
            VLMReward.from_pretrained("open_clip:ViT-B-32/openai", ["a red car"])
    else:  # pragma: no cover - only where open_clip is installed
        pytest.skip("open_clip is installed here")


def save_checkpoint_dir(path: Path, family: str) -> None:
    """Write a random model the way the hub stores one: config, weights, tokenizer, preprocessor config."""
    name = "tiny-random" if family == "clip" else "google/siglip-base-patch16-224"
    model, tokenizer, spec, _ = build_random_model(name)
    if family == "siglip":  # keep the test small
        model.config.vision_config.num_hidden_layers = 1
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    (path / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "do_center_crop": family == "clip",
                "image_mean": list(spec.mean),
                "image_std": list(spec.std),
                "resample": 3,
                "size": {"shortest_edge": spec.size},
            }
        )
    )


def test_load_from_local_directory(tmp_path: Path) -> None:
    save_checkpoint_dir(tmp_path, "clip")
    reward = VLMReward.from_pretrained(str(tmp_path), ["a red car"], ["a car"], alpha=0.5, dtype="fp32")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        reference = VLMReward.from_pretrained("tiny-random", ["a red car"], ["a car"], alpha=0.5, dtype="fp32")
    frames = random_frames(3, 224, 224)
    # Same weights, tokenizer and preprocessing as the in-memory model it was saved from.
    np.testing.assert_allclose(reward(frames), reference(frames), atol=1e-5)
    assert reward.encoder.image_spec.resize_mode == "shortest_edge"


@pytest.mark.slow
def test_load_siglip_from_local_directory(tmp_path: Path) -> None:
    save_checkpoint_dir(tmp_path, "siglip")
    reward = VLMReward.from_pretrained(str(tmp_path), ["a red car"], dtype="fp32")
    assert reward.encoder.family == "siglip"
    assert reward.encoder.image_spec.resize_mode == "squash"
    assert reward(random_frames(2, 100, 300)).shape == (2,)


def test_unsupported_model_type_in_local_directory(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 8}))
    with pytest.raises(ModelLoadError, match="'bert' model"):
        VLMReward.from_pretrained(str(tmp_path), ["a red car"])


# -- what a user can get wrong: one VLMRMError each, checked before the model loads ------------------------------


@pytest.mark.parametrize("device", ["gpu", "GPU", "cuda0", "cpu:1", "cuda:x", "cuda:-1", ""])
def test_unknown_device_is_named(device: str) -> None:
    with pytest.raises(DeviceError, match=rf"unknown device '{device}'; use auto, cpu, cuda or cuda:N\."):
        VLMReward.from_pretrained("tiny-random", ["a red car"], device=device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:0", torch.device("cuda")])
def test_cuda_without_cuda_is_a_config_error(device: str | torch.device) -> None:
    with pytest.raises(DeviceError, match="CUDA is not available") as info:
        VLMReward.from_pretrained("tiny-random", ["a red car"], device=device)
    assert isinstance(info.value, ConfigError) and isinstance(info.value, ValueError)  # old `except ValueError` holds


def test_cuda_index_beyond_the_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(
        DeviceError, match=r"'cuda:3' was requested but this machine has 2 CUDA devices \(cuda:0 to cuda:1\)"
    ):
        resolve_device("cuda:3")
    assert resolve_device("cuda:1") == torch.device("cuda:1")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"dtype": "int4"}, "unknown dtype 'int4'; use auto, fp32, bf16, fp16 or int8"),
        ({"dtype": torch.int8}, "unsupported dtype torch.int8"),
        ({"batch_size": 0}, "batch_size must be a positive whole number of frames, got 0"),
        ({"batch_size": -3}, "got -3"),
        ({"batch_size": 2.5}, "got 2.5"),
        ({"alpha": 1.5}, r"alpha must lie in \[0, 1\].*got 1.5"),
        ({"alpha": -0.1}, r"alpha must lie in \[0, 1\]"),
        ({"alpha": float("nan")}, r"alpha must lie in \[0, 1\]"),
        ({"alpha": "high"}, r"alpha must be a number"),
    ],
)
def test_bad_settings_are_config_errors_before_the_model_loads(settings: dict, message: str) -> None:
    # openai/clip-vit-base-patch32 cannot load here (offline): the setting must be refused first.
    with pytest.raises(ConfigError, match=message):
        VLMReward.from_pretrained("openai/clip-vit-base-patch32", ["a red car"], ["a car"], **settings)


def test_alpha_out_of_range_on_an_instance(color_embedder: ColorEmbedder) -> None:
    reward = VLMReward(color_embedder, ["red"], ["blue"])
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        reward.alpha = 1.2
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        reward.reward_from_embeddings(reward.embed_images(random_frames(1)), alpha=-1.0)
    with pytest.raises(ConfigError, match="batch_size"):
        VLMReward(color_embedder, ["red"], batch_size=0)
    assert reward.alpha == 0.0


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        ([123], r"A target prompt is not a string \(123, a int\)"),
        (["a red car", None], r"not a string \(None, a NoneType\)"),
        (123, "must be a sentence or a list of sentences, got 123"),
    ],
)
def test_prompts_that_are_not_strings(color_embedder: ColorEmbedder, targets, message: str) -> None:
    with pytest.raises(PromptError, match=message):
        VLMReward(color_embedder, targets)
    with pytest.raises(PromptError, match=message):
        VLMReward.from_pretrained("tiny-random", targets)


def test_baseline_that_embeds_like_the_target(color_embedder: ColorEmbedder) -> None:
    # Checked at construction: evaluation code overrides alpha per call, after the model is built at alpha=0.
    with pytest.raises(PromptError, match="embed to the same vector"):
        VLMReward(color_embedder, ["a red car"], ["a red car"], alpha=0.0)


@pytest.mark.parametrize("spec", ["./no/such/dir", "/abs/missing", "~/no-such-vlmrm-model", "a/b/c"])
def test_missing_local_directory_is_named(spec: str) -> None:
    with pytest.raises(ModelLoadError, match="does not exist") as info:
        VLMReward.from_pretrained(spec, ["a red car"])
    assert f"Model directory {spec!r}" in str(info.value) and "Repo id" not in str(info.value)


def test_a_file_is_not_a_model_directory(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(b"")
    with pytest.raises(ModelLoadError, match="is a file, not a directory"):
        VLMReward.from_pretrained(str(tmp_path / "model.bin"), ["a red car"])


def test_load_from_a_directory_under_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    save_checkpoint_dir(tmp_path / "ckpt", "clip")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert VLMReward.from_pretrained("~/ckpt", ["a red car"], dtype="fp32").encoder.name == str(tmp_path / "ckpt")


def test_model_load_error_words_its_alternative_for_the_caller() -> None:
    error = ModelLoadError("Cannot load model 'x': not cached.", alternative="tiny-random")
    assert str(error).endswith(
        "\n  - or use the model spec 'tiny-random' to test the pipeline without weights (meaningless rewards)."
    )
    assert "or use --model tiny-random to test" in error.describe("--model {spec}")
    assert "or use --set reward.model=tiny-random to test" in error.describe("--set reward.model={spec}")
    copy = pickle.loads(pickle.dumps(error))  # Ray carries errors between processes
    assert str(copy) == str(error) and copy.alternative == "tiny-random"
    plain = ModelLoadError("Unknown model 'x'.")
    assert str(plain) == plain.describe("--model {spec}") == "Unknown model 'x'."
    assert isinstance(error, VLMRMError)
