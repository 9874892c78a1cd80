"""Adding an env or a reward backend is one registration: envs carry their tasks and reference ids,
encoders register by spec prefix."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vlmrm.envs import get_env_spec
from vlmrm.errors import ConfigError, ModelLoadError
from vlmrm.evaluation.dataset import known_tasks, task_sentence
from vlmrm.evaluation.landscape import make_sweep
from vlmrm.reward import VLMReward, encoder_backends, load_encoder, register_encoder
from vlmrm.reward import encoders as encoders_module
from vlmrm.testing import ColorEmbedder


def test_tasks_come_from_the_env_specs() -> None:
    humanoid = get_env_spec("humanoid")
    assert humanoid.tasks["kneeling"] == task_sentence("kneeling", "humanoid")
    assert get_env_spec("cartpole").task_sentences() == {"cartpole": "pole vertically upright on top of the cart"}
    assert "kneeling" not in known_tasks("cartpole") and "mountaincar" in known_tasks("cartpole")
    assert {"kneeling", "cartpole"} <= set(known_tasks())
    with pytest.raises(ConfigError, match="has no tasks; --task applies to humanoid"):
        make_sweep("cartpole", task="kneeling")


def test_gymnasium_reference_ids_are_on_the_specs() -> None:
    assert get_env_spec("cartpole").gym_id == "CartPole-v1"
    assert get_env_spec("humanoid").gym_id is None


def test_a_backend_registered_by_prefix_loads_its_specs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(encoders_module, "_BACKENDS", dict(encoders_module._BACKENDS))
    register_encoder("color", lambda body, device, dtype: ColorEmbedder(size=int(body)), "color:SIZE (tests)")
    reward = VLMReward.from_pretrained("color:8", ["a red frame"])
    assert reward.image_size == 8 and "color" in encoder_backends()
    frames = np.zeros((2, 8, 8, 3), np.uint8)
    frames[0, ..., 0] = 255
    values = reward(frames)
    assert values[0] > values[1]
    with pytest.raises(ModelLoadError, match=r"color:SIZE \(tests\)"):
        load_encoder("nope:x", torch.device("cpu"), torch.float32)
    with pytest.raises(ValueError, match="already registered"):
        register_encoder("color", lambda body, device, dtype: ColorEmbedder(), "again")
    # By entry point: the module is imported when a model of the backend loads, not before.
    register_encoder("lazycolor", "vlmrm.testing:load_color_embedder", "lazycolor:SIZE (tests)")
    assert VLMReward.from_pretrained("lazycolor:4", ["a blue frame"]).image_size == 4


def test_with_dtype_copies_the_weights_into_another_dtype() -> None:
    with pytest.warns(UserWarning, match="RANDOM weights"):
        encoder = load_encoder("tiny-random", torch.device("cpu"), torch.float32)
    half = encoder.with_dtype(torch.bfloat16)
    assert half.dtype == torch.bfloat16 and next(half.model.parameters()).dtype == torch.bfloat16  # type: ignore[attr-defined]
    assert next(encoder.model.parameters()).dtype == torch.float32  # type: ignore[attr-defined]
    assert half.name == encoder.name and half.image_spec == encoder.image_spec
    with pytest.raises(NotImplementedError, match="no torch model"):
        ColorEmbedder().with_dtype(torch.float16)
