"""Generative-VLM rewards (``vqa:``): the yes/no log-odds of a question about each frame."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import vlmrm.reward.encoders as encoders
from vlmrm.cli.main import main
from vlmrm.errors import ConfigError, ModelLoadError, PromptError
from vlmrm.reward import VLMReward
from vlmrm.reward.vqa import DEFAULT_TEMPLATE, VQAReward, VQAScorer, build_tiny_random_vqa, check_template

pytestmark = pytest.mark.filterwarnings("ignore:vlmrm. model:UserWarning")
ROOT = Path(__file__).resolve().parents[1]


def frames(n: int, seed: int = 0, size: int = 40) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


class RednessVLM(torch.nn.Module):
    """A stand-in generative VLM: the next-token logit of every "yes" token is the image's mean red value
    (in the processor's [-1, 1] scale), all others 0. It records the token ids it was asked about."""

    def __init__(self, vocab_size: int, yes_ids: list[int]):
        super().__init__()
        self.vocab_size = vocab_size
        self.yes_ids = yes_ids
        self.seen: list[torch.Tensor] = []

    def forward(self, input_ids: torch.Tensor, pixel_values: torch.Tensor, **_: object) -> SimpleNamespace:
        self.seen.append(input_ids)
        logits = torch.zeros(*input_ids.shape, self.vocab_size)
        red = pixel_values[:, 0].mean(dim=(1, 2))
        logits[:, -1, self.yes_ids] = red[:, None]
        return SimpleNamespace(logits=logits)


def redness_reward(**kwargs: object) -> tuple[VQAReward, RednessVLM]:
    model, processor = build_tiny_random_vqa()
    scorer = VQAScorer(model, processor, "tiny", 32, torch.device("cpu"), torch.float32)
    stand_in = RednessVLM(model.config.text_config.vocab_size, scorer.yes_ids)
    scorer.model = stand_in
    return VQAReward(scorer, ["a red pole"], **kwargs), stand_in  # type: ignore[arg-type]


def test_rewards_follow_the_picture_as_the_log_odds_of_yes() -> None:
    reward, stand_in = redness_reward()
    red = np.zeros((1, 32, 32, 3), np.uint8)
    red[..., 0] = 255
    grey = np.full((1, 32, 32, 3), 128, np.uint8)
    values = reward(np.concatenate([red, grey, np.zeros_like(red)]))
    # log P(yes) - log P(no) = red + log|yes ids| - log|no ids| (softmax over equal logits elsewhere)
    offset = math.log(len(reward.scorer.yes_ids)) - math.log(len(reward.scorer.no_ids))
    expected = np.array([1.0, 128 / 127.5 - 1, -1.0]) + offset
    np.testing.assert_allclose(values, expected, atol=1e-4)
    assert values[0] > values[1] > values[2]
    # The model was asked the question built from the goal prompt, about each frame, in one forward pass.
    assert len(stand_in.seen) == 1 and stand_in.seen[0].shape[0] == 3
    text = reward.scorer.processor.tokenizer.decode(stand_in.seen[0][0], skip_special_tokens=True)
    assert text.strip().endswith(DEFAULT_TEMPLATE.format(goal="a red pole"))  # PaliGemma ends a prompt with a newline


def test_baseline_question_enters_with_alpha() -> None:
    reward, _ = redness_reward(baseline_prompts=["a pole"], alpha=0.5)
    features = reward.embed_images(frames(4))
    assert features.shape == (4, 2)  # one column per question: the target, then the baseline
    expected = features[:, 0] - 0.5 * features[:, 1]
    torch.testing.assert_close(reward.reward_from_embeddings(features), expected)
    torch.testing.assert_close(reward.reward_from_embeddings(features, alpha=0.0), features[:, 0])
    with pytest.raises(PromptError, match="needs baseline prompts"):
        redness_reward(alpha=0.5)


def test_tiny_random_is_deterministic_and_batch_size_free() -> None:
    batch = frames(5)
    one = VLMReward.from_pretrained("vqa:tiny-random", "a red pole", device="cpu", dtype="fp32", batch_size=2)
    other = VLMReward.from_pretrained("vqa:tiny-random", "a red pole", device="cpu", dtype="fp32", batch_size=5)
    assert isinstance(one, VQAReward) and one.image_size == 32 and one.name == "vqa:tiny-random"
    values = one(batch)
    assert values.dtype == np.float32 and values.shape == (5,)
    np.testing.assert_array_equal(values, one(batch))
    np.testing.assert_allclose(values, other(batch), atol=1e-5)


def test_a_saved_checkpoint_loads_by_path(tmp_path: Path) -> None:
    model, processor = build_tiny_random_vqa()
    model.save_pretrained(tmp_path / "vqa")
    processor.save_pretrained(tmp_path / "vqa")
    batch = frames(3)
    saved = VLMReward.from_pretrained(f"vqa:{tmp_path / 'vqa'}", "a red pole", device="cpu", dtype="fp32")
    built = VLMReward.from_pretrained("vqa:tiny-random", "a red pole", device="cpu", dtype="fp32")
    np.testing.assert_allclose(saved(batch), built(batch), atol=1e-5)


@pytest.mark.parametrize("template", ["Is the goal reached?", "Does {goal} show {other}?", "{goal"])
def test_bad_question_templates_are_refused(template: str) -> None:
    with pytest.raises(ConfigError, match="question_template"):
        check_template(template)


def test_bad_template_in_the_cli_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "train",
            str(ROOT / "configs" / "cartpole.yaml"),
            "--set",
            "reward.model=vqa:tiny-random",
            "--set",
            "reward.question_template=Is it done?",
            "--set",
            f"logging.run_dir={tmp_path / 'run'}",
        ]
    )
    assert code == 2
    assert "question_template" in capsys.readouterr().err


def tiny_scorer() -> VQAScorer:
    model, processor = build_tiny_random_vqa()
    return VQAScorer(model, processor, "tiny", 32, torch.device("cpu"), torch.float32)


def test_questions_of_different_lengths_share_a_batch_unchanged() -> None:
    scorer = tiny_scorer()
    short, long = "Is it red?", "Is the pole upright and the cart in the middle of the track?"
    batch = frames(2, size=32)
    together = scorer.log_odds(batch, [short, long])
    torch.testing.assert_close(together[:, :1], scorer.log_odds(batch, [short]), atol=1e-5, rtol=0)
    torch.testing.assert_close(together[:, 1:], scorer.log_odds(batch, [long]), atol=1e-5, rtol=0)


def test_a_chat_template_frames_the_question() -> None:
    scorer = tiny_scorer()
    scorer.processor.chat_template = (
        "{% for m in messages %}User:{% for c in m['content'] %}{% if c['type'] == 'image' %}<image>"
        "{% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endfor %}"
        "{% if add_generation_prompt %} Assistant:{% endif %}"
    )
    assert scorer.prompt_text("Is it red?") == "User:<image>Is it red? Assistant:"
    assert scorer.log_odds(frames(2, size=32), ["Is it red?"]).shape == (2, 1)


def test_a_model_that_cannot_be_had_suggests_the_familys_tiny_random(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(encoders, "_offline", lambda: True)  # as with HF_HUB_OFFLINE=1: the hub is not asked
    with pytest.raises(ModelLoadError, match="not in the local cache") as caught:
        VLMReward.from_pretrained("vqa:no-such-owner/no-such-vlm", "a red pole", device="cpu")
    assert caught.value.alternative == "vqa:tiny-random"
    assert "--model vqa:tiny-random" in caught.value.describe("--model {spec}")
