"""``VLMReward``: frames in, one reward per frame out."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from numbers import Integral
from typing import TYPE_CHECKING, Any, get_args

import numpy as np
import torch

from vlmrm.config import CompileMode, compile_problem
from vlmrm.errors import ConfigError, PromptError
from vlmrm.reward.compiled import CompiledImageForward
from vlmrm.reward.devices import resolve_device, resolve_dtype
from vlmrm.reward.dtype_choice import settle_cpu_dtype
from vlmrm.reward.encoders import ImageTextEncoder, load_encoder, reward_family
from vlmrm.reward.preprocessing import FramePreprocessor, frames_to_tensor
from vlmrm.reward.projection import goal_baseline_projection, mean_direction, normalize, projected_reward

if TYPE_CHECKING:
    from vlmrm.config import RewardConfig


def _check_prompts(prompts: Sequence[str] | str | None, kind: str, required: bool) -> list[str]:
    if prompts is None:
        prompts = []
    if isinstance(prompts, str):
        prompts = [prompts]
    if not isinstance(prompts, Iterable):
        raise PromptError(f"The {kind} prompts must be a sentence or a list of sentences, got {prompts!r}.")
    prompts = list(prompts)
    if required and not prompts:
        raise PromptError(f"At least one {kind} prompt is needed: a sentence that describes the goal.")
    for prompt in prompts:
        if not isinstance(prompt, str):
            raise PromptError(
                f"A {kind} prompt is not a string ({prompt!r}, a {type(prompt).__name__}); "
                "write a sentence that describes the scene."
            )
        if not prompt.strip():
            raise PromptError(f"A {kind} prompt is empty ({prompt!r}); write a sentence that describes the scene.")
    return prompts


def _check_alpha(alpha: float) -> float:
    try:
        value = float(alpha)
    except (TypeError, ValueError):
        raise ConfigError(f"alpha must be a number in [0, 1], got {alpha!r}.") from None
    if not 0.0 <= value <= 1.0:  # also refuses NaN
        raise ConfigError(f"alpha must lie in [0, 1] (0: plain CLIP reward, 1: full projection), got {alpha!r}.")
    return value


def _check_batch_size(batch_size: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, Integral) or batch_size <= 0:
        raise ConfigError(f"batch_size must be a positive whole number of frames, got {batch_size!r}.")
    return int(batch_size)


def _check_compile(compile: CompileMode, spec: str, device: str | torch.device) -> CompileMode:
    if compile not in get_args(CompileMode):
        raise ConfigError(f"compile must be one of {', '.join(get_args(CompileMode))}, got {compile!r}.")
    problem = compile_problem(compile, spec, str(device))
    if problem is not None:
        raise ConfigError(problem)
    return compile


def check_reward_arguments(
    target_prompts: Sequence[str] | str, baseline_prompts: Sequence[str] | str | None, alpha: float, batch_size: int
) -> None:
    """Check what the user gave before a possibly long model load (a :class:`PromptError` or :class:`ConfigError`)."""
    _check_prompts(target_prompts, "target", required=True)
    _check_prompts(baseline_prompts, "baseline", required=False)
    _check_alpha(alpha)
    _check_batch_size(batch_size)


class VLMReward:
    """The reward of Rocamonde et al. (2023) for one goal.

    ``reward(x) = 1 - 0.5 * ||(x - g) P||^2`` where ``x`` is the normalised image embedding, ``g``
    the averaged normalised target-prompt embedding and ``P`` the goal-baseline projection of
    strength ``alpha`` (``P = I`` at ``alpha = 0``, the plain cosine similarity).

    Prompt embeddings are computed once; setting :attr:`alpha` only rebuilds ``P``.

    Example::

        reward = VLMReward.from_pretrained(
            "openai/clip-vit-base-patch32",
            target_prompts=["a humanoid robot kneeling"],
            baseline_prompts=["a humanoid robot"],
            alpha=0.5,
        )
        rewards = reward(frames)  # (N, H, W, 3) uint8 -> (N,) float32
    """

    compile: CompileMode = "none"
    """How the image tower runs: ``none`` (eager), ``compile`` or ``cuda-graphs`` (:mod:`vlmrm.reward.compiled`)."""

    def __init__(
        self,
        encoder: ImageTextEncoder,
        target_prompts: Sequence[str] | str,
        baseline_prompts: Sequence[str] | str | None = None,
        alpha: float = 0.0,
        batch_size: int = 64,
        compile: CompileMode = "none",
    ):
        self.encoder = encoder
        self.batch_size = _check_batch_size(batch_size)
        self.compile = _check_compile(compile, encoder.name, encoder.device)
        self.preprocess = FramePreprocessor(encoder.image_spec, encoder.device, encoder.dtype)
        self.target_prompts = _check_prompts(target_prompts, "target", required=True)
        self.baseline_prompts = _check_prompts(baseline_prompts, "baseline", required=False)
        self._text_cache: dict[str, torch.Tensor] = {}
        self.target_embedding: torch.Tensor = mean_direction(self.embed_text(self.target_prompts))
        self.baseline_embedding: torch.Tensor | None = (
            mean_direction(self.embed_text(self.baseline_prompts)) if self.baseline_prompts else None
        )
        if self.baseline_embedding is not None:
            try:  # alpha may change later (setter, per-call override): check the strongest projection now
                goal_baseline_projection(self.target_embedding, self.baseline_embedding, 1.0)
            except ValueError:  # the only failure left: target and baseline embed alike
                raise PromptError(
                    "The target and baseline prompts embed to the same vector, which leaves alpha > 0 no direction; "
                    "write baseline prompts that describe the scene without the goal (e.g. 'a humanoid robot')."
                ) from None
        self._alpha = 0.0
        self._projection = goal_baseline_projection(self.target_embedding, None, 0.0)
        self.alpha = alpha
        # Compiled last, once the prompts are known to be good: it takes seconds to minutes.
        self._encode_images = (
            encoder.encode_images if compile == "none" else CompiledImageForward(encoder, self.batch_size, compile)
        )

    @classmethod
    def from_pretrained(
        cls,
        spec: str,
        target_prompts: Sequence[str] | str,
        baseline_prompts: Sequence[str] | str | None = None,
        alpha: float = 0.0,
        device: str | torch.device = "auto",
        dtype: str | torch.dtype = "auto",
        batch_size: int = 64,
        compile: CompileMode = "none",
        **family_options: Any,
    ) -> VLMReward:
        """Load the model named by ``spec`` (hub id, local directory, ``open_clip:ARCH/TAG``,
        ``tiny-random``, ``random:<id>``) and embed the prompts.

        ``vqa:...`` and ``video:...`` specs build their family's reward (a subclass), which reads
        its own keywords from ``family_options`` (``question_template``; ``video_window``,
        ``video_stride``, ``video_form``); other specs ignore them.

        ``dtype``: ``fp32``, ``bf16``, ``fp16``, ``int8`` (CPUs) or ``auto``; on a CPU ``auto`` and
        ``int8`` are settled by timing the model (:mod:`vlmrm.reward.dtype_choice`).

        ``compile``: ``none``, ``compile`` or ``cuda-graphs`` (:mod:`vlmrm.reward.compiled`): the image
        tower through ``torch.compile`` for one batch shape, compiled here, after the dtype is settled.
        """
        check_reward_arguments(target_prompts, baseline_prompts, alpha, batch_size)
        _check_compile(compile, spec, device)
        family = reward_family(spec)
        if family is not None:
            if dtype == "int8":
                raise ConfigError(
                    f"dtype int8 quantises CLIP-style image and text towers; {spec!r} is not one. Use auto, fp32, "
                    "bf16 or fp16."
                )
            built: VLMReward = family(
                spec, target_prompts, baseline_prompts, alpha, device, dtype, batch_size, **family_options
            )
            return built
        torch_device = resolve_device(device)
        encoder = load_encoder(spec, torch_device, resolve_dtype(dtype, torch_device))
        encoder, _ = settle_cpu_dtype(encoder, dtype)  # auto and int8 on a CPU: timed once, then cached
        return cls(encoder, target_prompts, baseline_prompts, alpha=alpha, batch_size=batch_size, compile=compile)

    @classmethod
    def from_config(
        cls, config: RewardConfig, device: str | torch.device | None = None, dtype: str | torch.dtype | None = None
    ) -> VLMReward:
        """The reward described by a config's ``reward`` section (``device`` and ``dtype`` override the config's)."""
        return cls.from_pretrained(
            config.model,
            target_prompts=config.target_prompts or [],
            baseline_prompts=config.baseline_prompts or None,
            alpha=config.alpha,
            device=config.device if device is None else device,
            dtype=config.dtype if dtype is None else dtype,
            batch_size=config.batch_size,
            compile=config.compile,
            question_template=config.question_template,
            video_window=config.video.window,
            video_stride=config.video.stride,
            video_form=config.video.form,
        )

    # -- configuration ---------------------------------------------------------------------------

    @property
    def alpha(self) -> float:
        return self._alpha

    @alpha.setter
    def alpha(self, value: float) -> None:
        self._projection = self._projection_for(value)
        self._alpha = float(value)

    def _projection_for(self, alpha: float) -> torch.Tensor:
        value = _check_alpha(alpha)
        if value > 0 and self.baseline_embedding is None:
            raise PromptError(f"alpha={value} needs baseline prompts; give baseline_prompts or use alpha=0.")
        return goal_baseline_projection(self.target_embedding, self.baseline_embedding, value)

    @property
    def name(self) -> str:
        """The model's spec (e.g. ``openai/clip-vit-base-patch32``)."""
        return self.encoder.name

    @property
    def image_size(self) -> int:
        """The model's square input size: render frames at this size to skip resizing."""
        return self.encoder.image_spec.size

    @property
    def device(self) -> torch.device:
        return self.encoder.device

    @property
    def dtype(self) -> torch.dtype:
        return self.encoder.dtype

    # -- embeddings ------------------------------------------------------------------------------

    def embed_text(self, prompts: Sequence[str]) -> torch.Tensor:
        """Normalised float32 embeddings ``(len(prompts), D)``; each prompt is embedded once per instance."""
        prompts = _check_prompts(prompts, "text", required=True)
        missing = list(dict.fromkeys(p for p in prompts if p not in self._text_cache))
        if missing:
            embeddings = normalize(self.encoder.encode_text(missing).float())
            self._text_cache.update(zip(missing, embeddings, strict=True))
        return torch.stack([self._text_cache[p] for p in prompts])

    @torch.inference_mode()
    def embed_images(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Normalised float32 embeddings ``(N, D)`` of uint8 frames ``(N, H, W, 3)``, in chunks of ``batch_size``."""
        tensor = frames_to_tensor(frames)
        chunks = [
            normalize(self._encode_images(self.preprocess(tensor[start : start + self.batch_size])).float())
            for start in range(0, tensor.shape[0], self.batch_size)
        ]
        if not chunks:
            return torch.zeros((0, self.target_embedding.shape[0]), device=self.device)
        return torch.cat(chunks)

    def reward_from_embeddings(self, image_embeddings: torch.Tensor, alpha: float | None = None) -> torch.Tensor:
        """Rewards ``(N,)`` from normalised image embeddings; ``alpha`` overrides :attr:`alpha` for this call."""
        projection = self._projection if alpha is None or alpha == self._alpha else self._projection_for(alpha)
        embeddings = image_embeddings.to(device=projection.device, dtype=projection.dtype)
        return projected_reward(embeddings, self.target_embedding, projection)

    def __call__(self, frames: np.ndarray | torch.Tensor) -> np.ndarray:
        """One float32 reward per frame."""
        rewards = self.reward_from_embeddings(self.embed_images(frames))
        return rewards.cpu().numpy().astype(np.float32, copy=False)

    def close(self) -> None:
        """Nothing to release: the model lives as long as this object (part of the reward contract)."""

    def __repr__(self) -> str:
        return (
            f"VLMReward(model={self.encoder.name!r}, target_prompts={self.target_prompts!r}, "
            f"baseline_prompts={self.baseline_prompts!r}, alpha={self.alpha}, dtype={self.dtype}, device={self.device}"
            + (f", compile={self.compile!r})" if self.compile != "none" else ")")
        )
