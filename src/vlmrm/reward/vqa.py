"""Generative-VLM rewards (``vqa:<hub id or local dir>``): how sure a VLM is that a frame shows the goal.

A ``transformers`` image-text-to-text model (SmolVLM, Qwen2-VL, PaliGemma, ...) reads each frame
and a question built from the goal prompt, and the reward is the log-odds of its next token:

    reward(frame) = log P("yes" | frame, question) - log P("no" | frame, question)

``question = template.format(goal=prompt)`` with the default template
``"Does this image show {goal}? Answer yes or no."`` (``reward.question_template``). "yes" is the
probability mass of the first tokens of ``Yes``, ``yes``, `` Yes`` and `` yes`` (likewise for
"no"), so the score does not depend on which spelling the model prefers. One forward pass per
batch of frames, no sampling: the same frames give the same rewards.

Several target prompts: their log-odds are averaged. Baseline prompts enter as the paper's
goal-baseline idea carried over to scores: ``reward = target log-odds - alpha * baseline
log-odds``, which removes what the model would say yes to for any frame of the scene (``alpha=0``,
the default, ignores the baseline). Each question adds one sequence per frame to the batch.

Frames go through the model's own processor (resizing, tiling, image tokens), on the host: frames
drawn on the GPU (``env.vectorized``) are copied to the CPU for it, then the inputs go to
``reward.device`` in ``reward.dtype`` as for CLIP.

``vqa:tiny-random`` is a tiny randomly initialised PaliGemma built here, offline: its rewards are
meaningless, it exists to test the pipeline.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vlmrm.errors import ConfigError, ModelLoadError, PromptError
from vlmrm.reward.devices import resolve_device, resolve_dtype
from vlmrm.reward.encoders import RANDOM_WEIGHTS_WARNING, load_cache_first, looks_like_path
from vlmrm.reward.preprocessing import frames_to_array
from vlmrm.reward.vlm_reward import VLMReward, _check_alpha, _check_batch_size, _check_prompts, check_reward_arguments

__all__ = ["DEFAULT_TEMPLATE", "VQAReward", "VQAScorer", "build_tiny_random_vqa", "check_template", "load_vqa_scorer"]

logger = logging.getLogger(__name__)

PREFIX = "vqa:"
DEFAULT_TEMPLATE = "Does this image show {goal}? Answer yes or no."
YES_WORDS = ("Yes", "yes", " Yes", " yes")
NO_WORDS = ("No", "no", " No", " no")
TINY_RANDOM = "tiny-random"
TINY_IMAGE_SIZE = 32


def check_template(template: str) -> str:
    """``template`` when it holds ``{goal}`` once and nothing else in braces, else a :class:`ConfigError`."""
    try:
        filled = template.format(goal="")
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(
            f"reward.question_template {template!r} is not a valid template ({exc}); "
            "write a question with {{goal}} where the goal prompt goes, e.g. "
            f"{DEFAULT_TEMPLATE!r}."
        ) from None
    if "{goal}" not in template or not filled.strip():
        raise ConfigError(
            f"reward.question_template {template!r} has no {{goal}}; write a question with {{goal}} where the "
            f"goal prompt goes, e.g. {DEFAULT_TEMPLATE!r}."
        )
    return template


def _first_token_ids(tokenizer: Any, words: Sequence[str]) -> set[int]:
    ids = set()
    for word in words:
        tokens = tokenizer(word, add_special_tokens=False)["input_ids"]
        if tokens:
            ids.add(int(tokens[0]))
    return ids


class VQAScorer:
    """An image-text-to-text model and its processor that read the log-odds of "yes" for questions about frames.

    Args:
        model: a ``transformers`` model whose output has next-token ``logits``.
        processor: its processor (images and text in, model inputs out).
        name: the spec it was loaded from.
        image_size: the frame size the model sees (envs render at this size).
        device: where the model runs.
        dtype: the model's dtype.
    """

    def __init__(
        self, model: Any, processor: Any, name: str, image_size: int, device: torch.device, dtype: torch.dtype
    ):
        self.model = model.to(device=device, dtype=dtype).eval()
        self.processor = processor
        self.name = name
        self.image_size = int(image_size)
        self.device = device
        self.dtype = dtype
        tokenizer = processor.tokenizer
        # Questions of different lengths share a batch: pad on the left so the last position is the next token.
        tokenizer.padding_side = "left"
        yes, no = _first_token_ids(tokenizer, YES_WORDS), _first_token_ids(tokenizer, NO_WORDS)
        shared = yes & no  # e.g. a leading-space token that starts both words
        self.yes_ids = sorted(yes - shared)
        self.no_ids = sorted(no - shared)
        if not self.yes_ids or not self.no_ids:
            raise ModelLoadError(f"The tokenizer of {name!r} has no token that starts 'yes' but not 'no' (or back).")

    def prompt_text(self, question: str) -> str:
        """The model's text input for ``question`` about one image: its chat template where it has one."""
        if getattr(self.processor, "chat_template", None):
            messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
            return str(self.processor.apply_chat_template(messages, add_generation_prompt=True))
        image_token = getattr(self.processor, "image_token", None) or ""
        return f"{image_token}{question}"

    @torch.inference_mode()
    def log_odds(self, frames: np.ndarray, questions: Sequence[str]) -> torch.Tensor:
        """float32 ``(N, len(questions))``: log P(yes) - log P(no) of each question about each frame.

        One forward pass for all frames and questions.
        """
        texts = [self.prompt_text(q) for q in questions]
        images = [frame for frame in frames for _ in texts]
        inputs = self.processor(text=texts * len(frames), images=images, return_tensors="pt", padding=True)
        inputs.pop("labels", None)
        inputs = {
            key: value.to(self.device, dtype=self.dtype) if value.is_floating_point() else value.to(self.device)
            for key, value in inputs.items()
            if isinstance(value, torch.Tensor)
        }
        logits = self.model(**inputs).logits[:, -1, :].float()
        log_probs = torch.log_softmax(logits, dim=-1)
        yes = torch.logsumexp(log_probs[:, self.yes_ids], dim=-1)
        no = torch.logsumexp(log_probs[:, self.no_ids], dim=-1)
        return (yes - no).reshape(len(frames), len(texts))


class VQAReward(VLMReward):
    """The reward of a generative VLM: the log-odds that it answers "yes" to "does this frame show the goal?".

    It is a :class:`~vlmrm.reward.VLMReward` to every tool that uses one (training, ``score``,
    ``inspect``, ``landscape``, EPIC): :meth:`embed_images` gives per-frame features (the
    log-odds of each question, one column per prompt) and :meth:`reward_from_embeddings` turns
    them into rewards at any ``alpha``. There are no text embeddings.

    Args:
        scorer: the model (:class:`VQAScorer`).
        target_prompts: the goal, one or more sentences.
        baseline_prompts: the scene in general; used only at ``alpha > 0``.
        alpha: ``reward = target log-odds - alpha * baseline log-odds``.
        batch_size: most frames per forward pass.
        template: the question, with ``{goal}`` where a prompt goes.
    """

    def __init__(
        self,
        scorer: VQAScorer,
        target_prompts: Sequence[str] | str,
        baseline_prompts: Sequence[str] | str | None = None,
        alpha: float = 0.0,
        batch_size: int = 64,
        template: str | None = None,
    ):
        # No VLMReward.__init__: there is nothing to embed. The "embeddings" are feature columns.
        self.encoder = scorer  # type: ignore[assignment]
        self.batch_size = _check_batch_size(batch_size)
        self.target_prompts = _check_prompts(target_prompts, "target", required=True)
        self.baseline_prompts = _check_prompts(baseline_prompts, "baseline", required=False)
        self.template = check_template(template or DEFAULT_TEMPLATE)
        self.questions = [self.template.format(goal=p) for p in self.target_prompts + self.baseline_prompts]
        n_target = len(self.target_prompts)
        self.target_embedding = torch.arange(n_target)
        self.baseline_embedding = torch.arange(n_target, len(self.questions)) if self.baseline_prompts else None
        self._text_cache = {}
        self._alpha = 0.0
        self.alpha = alpha

    @classmethod
    def from_spec(
        cls,
        spec: str,
        target_prompts: Sequence[str] | str,
        baseline_prompts: Sequence[str] | str | None = None,
        alpha: float = 0.0,
        device: str | torch.device = "auto",
        dtype: str | torch.dtype = "auto",
        batch_size: int = 64,
        question_template: str | None = None,
        **_other_families: Any,
    ) -> VQAReward:
        """Load ``vqa:<hub id or dir>`` (or ``vqa:tiny-random``) and build the questions."""
        check_reward_arguments(target_prompts, baseline_prompts, alpha, batch_size)
        check_template(question_template or DEFAULT_TEMPLATE)
        torch_device = resolve_device(device)
        scorer = load_vqa_scorer(spec, torch_device, resolve_dtype(dtype, torch_device))
        return cls(scorer, target_prompts, baseline_prompts, alpha, batch_size, question_template)

    def _projection_for(self, alpha: float) -> torch.Tensor:
        value = _check_alpha(alpha)
        if value > 0 and self.baseline_embedding is None:
            raise PromptError(f"alpha={value} needs baseline prompts; give baseline_prompts or use alpha=0.")
        return torch.tensor(value)

    @property
    def image_size(self) -> int:
        return self.scorer.image_size

    @property
    def scorer(self) -> VQAScorer:
        return self.encoder  # type: ignore[return-value]

    def embed_text(self, prompts: Sequence[str]) -> torch.Tensor:
        raise ConfigError(f"{self.name!r} is a generative VLM: it has no text embeddings (it answers questions).")

    @torch.inference_mode()
    def embed_images(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """float32 ``(N, Q)``: the log-odds of each question (targets, then baselines) for each frame."""
        array = frames_to_array(frames)
        chunks = [
            self.scorer.log_odds(array[start : start + self.batch_size], self.questions).cpu()
            for start in range(0, len(array), self.batch_size)
        ]
        return torch.cat(chunks) if chunks else torch.zeros((0, len(self.questions)))

    def reward_from_embeddings(self, image_embeddings: torch.Tensor, alpha: float | None = None) -> torch.Tensor:
        """Rewards ``(N,)`` from :meth:`embed_images`' log-odds; ``alpha`` overrides :attr:`alpha` for this call."""
        value = self._alpha if alpha is None else float(self._projection_for(alpha))
        features = image_embeddings.float()
        reward = features[:, self.target_embedding].mean(dim=1)
        if value > 0 and self.baseline_embedding is not None:
            reward = reward - value * features[:, self.baseline_embedding].mean(dim=1)
        return reward

    def __repr__(self) -> str:
        return (
            f"VQAReward(model={self.name!r}, target_prompts={self.target_prompts!r}, "
            f"baseline_prompts={self.baseline_prompts!r}, alpha={self.alpha}, template={self.template!r}, "
            f"dtype={self.dtype}, device={self.device})"
        )


def load_vqa_scorer(spec: str, device: torch.device, dtype: torch.dtype) -> VQAScorer:
    """The model of ``vqa:<hub id or dir>`` (the cache first, then the hub), or ``vqa:tiny-random``."""
    name = spec.strip().removeprefix(PREFIX).strip()
    if not name:
        raise ModelLoadError(
            f"Model spec {spec!r} names no model; write vqa:<hub id or directory>, e.g. vqa:{TINY_RANDOM}."
        )
    if name == TINY_RANDOM:
        warnings.warn(RANDOM_WEIGHTS_WARNING.format(spec=spec), UserWarning, stacklevel=4)
        model, processor = build_tiny_random_vqa()
        return VQAScorer(model, processor, f"{PREFIX}{TINY_RANDOM}", TINY_IMAGE_SIZE, device, dtype)
    if looks_like_path(name) and not Path(name).expanduser().is_dir():
        raise ModelLoadError(f"Model directory {name!r} does not exist; give a directory that holds a checkpoint.")
    source = str(Path(name).expanduser()) if Path(name).expanduser().is_dir() else name
    model, processor = load_cache_first(
        spec, source, lambda local: _load(source, dtype, local_files_only=local), f"{PREFIX}{TINY_RANDOM}"
    )
    return VQAScorer(model, processor, f"{PREFIX}{name}", _image_size(model, processor), device, dtype)


def _load(source: str, dtype: torch.dtype, local_files_only: bool) -> tuple[Any, Any]:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(source, local_files_only=local_files_only)
    model = AutoModelForImageTextToText.from_pretrained(source, dtype=dtype, local_files_only=local_files_only)
    return model, processor


def _image_size(model: Any, processor: Any) -> int:
    """The frame size to render at: the vision tower's input size (the processor resizes anything else)."""
    vision = getattr(model.config, "vision_config", None)
    size = getattr(vision, "image_size", None)
    if isinstance(size, int):
        return size
    processor_size = getattr(getattr(processor, "image_processor", None), "size", None) or {}
    return int(processor_size.get("height") or processor_size.get("longest_edge") or 384)


TINY_TEXT = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
TINY_VISION = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}


def build_tiny_random_vqa(
    seed: int = 0,
    image_size: int = TINY_IMAGE_SIZE,
    patch_size: int = 16,
    text: dict[str, int] | None = None,
    vision: dict[str, int] | None = None,
) -> tuple[Any, Any]:
    """``(model, processor)``: a random PaliGemma over a byte-level tokenizer, built offline; tiny by default.

    ``text`` and ``vision`` (Gemma and SigLIP widths and depths) size it up, for benchmarks. Save
    both with ``save_pretrained(dir)`` to get a checkpoint directory that ``vqa:<dir>`` loads.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import (
        PaliGemmaConfig,
        PaliGemmaForConditionalGeneration,
        PaliGemmaProcessor,
        PreTrainedTokenizerFast,
        SiglipImageProcessorPil,
    )

    specials = ["<pad>", "<eos>", "<bos>", "<image>"]
    vocab = {token: i for i, token in enumerate(specials)}
    for symbol in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[symbol] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        additional_special_tokens=["<image>"],
    )
    image_processor = SiglipImageProcessorPil(size={"height": image_size, "width": image_size})
    image_processor.image_seq_length = (image_size // patch_size) ** 2  # type: ignore[attr-defined]
    processor = PaliGemmaProcessor(image_processor=image_processor, tokenizer=tokenizer)
    text = {**TINY_TEXT, "num_key_value_heads": 1, **(text or {})}
    vision = {**TINY_VISION, **(vision or {})}
    config = PaliGemmaConfig(
        text_config={
            "model_type": "gemma",
            "vocab_size": len(vocab),
            "head_dim": text["hidden_size"] // text["num_attention_heads"],
            **text,
        },
        vision_config={
            "model_type": "siglip_vision_model",
            "patch_size": patch_size,
            "image_size": image_size,
            "projection_dim": text["hidden_size"],
            **vision,
        },
        image_token_index=vocab["<image>"],
        projection_dim=text["hidden_size"],
        hidden_size=text["hidden_size"],
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = PaliGemmaForConditionalGeneration(config).eval()
    return model, processor
