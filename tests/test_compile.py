"""Fast attention (SDPA) and ``reward.compile``: the same rewards as the eager model, one compiled shape."""

from __future__ import annotations

import copy
import logging
import threading
import warnings
from typing import get_args

import numpy as np
import pytest
import torch
import torch._dynamo
from transformers import CLIPConfig, CLIPModel

from vlmrm.benchmark import BenchSettings
from vlmrm.cli.main import main
from vlmrm.config import CompileMode, config_from_dict
from vlmrm.device_options import COMPILE_CHOICES
from vlmrm.errors import ConfigError, ModelLoadError
from vlmrm.reward import VLMReward
from vlmrm.reward.compiled import CompiledImageForward, torch_compile_mode
from vlmrm.reward.encoders import TransformersEncoder, use_fast_attention
from vlmrm.testing import ColorEmbedder

DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
PROMPTS = ["a pole upright on a cart"]


def frames(count: int, size: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, size, size, 3), dtype=np.uint8)


def tiny_encoder(device: str) -> TransformersEncoder:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return TransformersEncoder.from_random("tiny-random", torch.device(device), torch.float32)


# -- attention ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_towers_run_sdpa_and_reward_as_eager_attention(device: str) -> None:
    fast = tiny_encoder(device)
    assert fast.attention == "sdpa"
    assert fast.model.config.vision_config._attn_implementation == "sdpa"
    assert fast.model.config.text_config._attn_implementation == "sdpa"
    eager = copy.copy(fast)
    eager.model = copy.deepcopy(fast.model)
    eager.model.set_attn_implementation("eager")
    assert eager.model.config.vision_config._attn_implementation == "eager"

    prompts = ["pole upright", "a much longer prompt: the attention mask pads the shorter one"]
    sdpa_reward = VLMReward(fast, prompts, ["a cart"], alpha=0.5, batch_size=4)
    eager_reward = VLMReward(eager, prompts, ["a cart"], alpha=0.5, batch_size=4)
    torch.testing.assert_close(sdpa_reward.target_embedding, eager_reward.target_embedding, atol=1e-5, rtol=1e-5)
    batch = frames(6)
    np.testing.assert_allclose(sdpa_reward(batch), eager_reward(batch), atol=1e-5, rtol=1e-5)


class _NoSDPACLIP(CLIPModel):
    _supports_sdpa = False


def test_a_model_without_sdpa_keeps_its_attention(caplog: pytest.LogCaptureFixture) -> None:
    tiny = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
    plain = _NoSDPACLIP(
        CLIPConfig(text_config={**tiny, "vocab_size": 100}, vision_config={**tiny, "image_size": 32, "patch_size": 16})
    )
    assert plain.config._attn_implementation == "eager"  # transformers' own fallback for a class without sdpa
    with caplog.at_level(logging.DEBUG, logger="vlmrm.reward.encoders"):
        assert use_fast_attention(plain) == "eager"
    assert "does not support sdpa" in caplog.text
    assert plain.config._attn_implementation == "eager"


# -- compile ------------------------------------------------------------------------------------------------


@pytest.mark.slow  # compiling takes 5-15 s on two cores
@pytest.mark.parametrize("device", DEVICES)
def test_compiled_rewards_equal_eager_with_one_graph_for_every_batch(device: str) -> None:
    encoder = tiny_encoder(device)
    eager = VLMReward(encoder, PROMPTS, batch_size=4)
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    compiled = VLMReward(encoder, PROMPTS, batch_size=4, compile="compile")  # compiles here, at batch 4
    assert compiled.compile == "compile" and "compile='compile'" in repr(compiled)
    batch = frames(11)  # two full batches and a partial one of 3
    with torch._dynamo.config.patch(error_on_recompile=True):  # any call with another shape would raise
        np.testing.assert_allclose(compiled(batch), eager(batch), atol=1e-5, rtol=1e-5)
        for count in (1, 4, 7):
            np.testing.assert_allclose(compiled(batch[:count]), eager(batch[:count]), atol=1e-5, rtol=1e-5)
        from_thread: list[np.ndarray] = []  # the background scorer calls from its own thread
        worker = threading.Thread(target=lambda: from_thread.append(compiled(batch[:3])))
        worker.start()
        worker.join()
        np.testing.assert_allclose(from_thread[0], eager(batch[:3]), atol=1e-5, rtol=1e-5)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1


@pytest.mark.slow
@needs_cuda
def test_cuda_graphs_rewards_equal_eager_from_another_thread_and_stream() -> None:
    encoder = tiny_encoder("cuda")
    eager = VLMReward(encoder, PROMPTS, batch_size=4)
    torch._dynamo.reset()
    compiled = VLMReward(encoder, PROMPTS, batch_size=4, compile="cuda-graphs")
    batch = torch.from_numpy(frames(7)).cuda()
    expected = eager(batch)
    with torch._dynamo.config.patch(error_on_recompile=True):
        np.testing.assert_allclose(compiled(batch), expected, atol=1e-4, rtol=1e-4)
        first, second = compiled(batch[:2]), compiled(batch[2:4])  # outputs survive the next replay
        np.testing.assert_allclose(np.concatenate([first, second]), expected[:4], atol=1e-4, rtol=1e-4)
        from_thread: list[np.ndarray] = []

        def score_on_own_stream() -> None:
            with torch.cuda.stream(torch.cuda.Stream()):
                from_thread.append(compiled(batch[:3]))

        worker = threading.Thread(target=score_on_own_stream)
        worker.start()
        worker.join()
        np.testing.assert_allclose(from_thread[0], expected[:3], atol=1e-4, rtol=1e-4)


def test_torch_compile_modes() -> None:
    assert torch_compile_mode("compile", torch.device("cpu")) is None
    assert torch_compile_mode("compile", torch.device("cuda", 0)) == "max-autotune-no-cudagraphs"
    assert torch_compile_mode("cuda-graphs", torch.device("cuda")) == "reduce-overhead"


class _Failing(ColorEmbedder):
    def __init__(self) -> None:
        super().__init__()
        self.name = "failing"

    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("no kernel for this\nsecond line")


def test_a_model_that_does_not_compile_is_a_one_line_error() -> None:
    with pytest.raises(ModelLoadError) as info:
        CompiledImageForward(_Failing(), 2, "compile")
    message = str(info.value)
    assert "torch.compile failed on 'failing' (RuntimeError: no kernel for this)" in message
    assert "reward.compile: none" in message and "second line" not in message


# -- settings -----------------------------------------------------------------------------------------------


def minimal(**reward: object) -> dict:
    return {
        "env": {"name": "cartpole"},
        "rl": {"algorithm": "dqn", "total_steps": 10},
        "reward": {"target_prompts": ["x"], **reward},
    }


def test_compile_is_off_by_default_and_names_its_values() -> None:
    assert config_from_dict(minimal()).reward.compile == "none"
    assert config_from_dict(minimal(compile="cuda-graphs", device="cuda")).reward.compile == "cuda-graphs"
    assert get_args(CompileMode) == COMPILE_CHOICES


@pytest.mark.parametrize(
    ("reward", "message"),
    [
        ({"compile": "fast"}, "reward.compile: Input should be 'none', 'compile' or 'cuda-graphs'"),
        ({"compile": True}, "reward.compile: Input should be 'none', 'compile' or 'cuda-graphs'"),
        ({"compile": "cuda-graphs", "device": "cpu"}, "cuda-graphs replays CUDA graphs and needs a CUDA device"),
        ({"compile": "compile", "model": "vqa:some/vlm"}, "reward.compile: compile compiles a CLIP-style image tower"),
    ],
)
def test_bad_compile_settings_are_one_line_errors(reward: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict(minimal(**reward))
    assert message in str(info.value)
    assert all(message not in line or len(line) < 200 for line in str(info.value).splitlines())


def test_vlm_reward_checks_compile_before_loading() -> None:
    with pytest.raises(ConfigError, match="compile must be one of none, compile, cuda-graphs, got 'fast'"):
        VLMReward.from_pretrained("not/a-model", PROMPTS, compile="fast")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="needs a CUDA device, not 'cpu'"):
        VLMReward.from_pretrained("not/a-model", PROMPTS, device="cpu", compile="cuda-graphs")


def test_bench_checks_compile(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match="--compile cuda-graphs replays CUDA graphs"):
        BenchSettings(env="cartpole", model="tiny-random", device="cpu", compile="cuda-graphs")
    with pytest.raises(ConfigError, match="--compile must be one of"):
        BenchSettings(env="cartpole", model="tiny-random", compile="yes")  # type: ignore[arg-type]
    assert main(["bench", "cartpole", "--model", "tiny-random", "--device", "cpu", "--compile", "cuda-graphs"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --compile cuda-graphs replays CUDA graphs") and err.count("\n") == 1
