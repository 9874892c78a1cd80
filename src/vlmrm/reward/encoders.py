"""Vision-language encoders behind one small interface, loaded from a spec string.

Spec strings:

- a Hugging Face hub id or a local directory: a ``transformers`` CLIP or SigLIP model (default);
- ``open_clip:ARCH/PRETRAINED``: an ``open_clip`` model (optional extra ``vlmrm[open-clip]``);
- ``tiny-random``: a tiny randomly initialised CLIP, for smoke tests (meaningless rewards);
- ``random:<hub id>``: the architecture of a known checkpoint with random weights, for benchmarks.

A backend is a spec prefix registered with :func:`register_encoder` (as envs are with
:func:`vlmrm.envs.register_env`): ``PREFIX:BODY`` specs go to its loader, and its help line is part of
every "unknown model" message. CONTRIBUTING.md shows how to add one.

Reward families that are not one image embedding against one text embedding have their own
prefix and module (:data:`REWARD_FAMILIES`): ``vqa:`` a generative VLM's yes/no log-odds
(:mod:`vlmrm.reward.vqa`), ``video:`` a video-text model over windows of frames
(:mod:`vlmrm.reward.video`).
"""

from __future__ import annotations

import abc
import copy
import difflib
import importlib
import json
import logging
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Self

import torch

from vlmrm.errors import ModelLoadError
from vlmrm.reward.architectures import CLIP_MEAN, CLIP_STD, RANDOM_ARCHITECTURES, build_random_model
from vlmrm.reward.preprocessing import ImageSpec

logger = logging.getLogger(__name__)

SUPPORTED_MODEL_TYPES = ("clip", "siglip")
OFFLINE_ALTERNATIVE = "tiny-random"
"""The model suggested when a checkpoint cannot be had here: it needs no download."""
HUB_PROBE_TIMEOUT_S = 3.0
"""How long to wait for the hub to answer before calling it unreachable (instead of retrying for ~40 s)."""
RANDOM_WEIGHTS_WARNING = (
    "vlmrm: model {spec!r} has RANDOM weights: its rewards are meaningless. Use it only to test the "
    "pipeline; for learning, use a pretrained model such as openai/clip-vit-base-patch32."
)


REWARD_FAMILIES: dict[str, tuple[str, str]] = {
    "vqa:": ("vlmrm.reward.vqa", "VQAReward"),
    "video:": ("vlmrm.reward.video", "VideoReward"),
}
"""Spec prefix -> (module, reward class) of the families that are not an :class:`ImageTextEncoder`."""


def reward_family(spec: str) -> Callable[..., Any] | None:
    """The ``from_spec`` builder of the reward family ``spec`` names (``vqa:...``, ``video:...``), else None."""
    for prefix, (module, cls) in REWARD_FAMILIES.items():
        if spec.strip().startswith(prefix):
            return getattr(importlib.import_module(module), cls).from_spec
    return None


class ImageTextEncoder(abc.ABC):
    """Embeds preprocessed images and prompts into one space.

    Subclasses set ``image_spec`` (how frames must be preprocessed), ``context_length`` (the
    text encoder's maximum tokens), ``device`` and ``dtype``. Embeddings need not be normalised.
    """

    name: str
    image_spec: ImageSpec
    context_length: int
    device: torch.device
    dtype: torch.dtype

    @abc.abstractmethod
    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``(N, 3, S, S)`` preprocessed images -> ``(N, D)`` embeddings."""

    def with_dtype(self, dtype: torch.dtype) -> Self:
        """A copy that computes in ``dtype`` (its own copy of the weights; tokenizer and preprocessing shared).

        The default copies a ``model`` attribute (a ``torch.nn.Module``); encoders without one override this.
        """
        model = getattr(self, "model", None)
        if not isinstance(model, torch.nn.Module):
            raise NotImplementedError(f"{type(self).__name__} has no torch model to copy into another dtype.")
        clone = copy.copy(self)
        clone.model = copy.deepcopy(model).to(dtype=dtype).eval()  # type: ignore[attr-defined]
        clone.dtype = dtype
        return clone

    @abc.abstractmethod
    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        """Prompts -> ``(len(prompts), D)`` embeddings; prompts too long are truncated with a warning."""


def warn_truncated(prompt: str, num_tokens: int, context_length: int) -> None:
    warnings.warn(
        f"Prompt {prompt[:60]!r}... has {num_tokens} tokens, more than the text encoder's context of "
        f"{context_length}; it was truncated. Shorten it to keep all of its meaning.",
        UserWarning,
        stacklevel=4,
    )


def _features(output: Any) -> torch.Tensor:
    # transformers < 5 returns a tensor; >= 5 returns a model output whose pooler_output is projected.
    if isinstance(output, torch.Tensor):
        return output
    return output.pooler_output


FAST_ATTENTION = "sdpa"
"""The attention transformers models run with where their class supports it: PyTorch's
``scaled_dot_product_attention`` (fused kernels: flash or memory-efficient attention on CUDA), the same
arithmetic as the eager ``softmax(q k^T) v`` to floating-point tolerance."""


def _supports_fast_attention(model_class: type) -> bool:
    return bool(getattr(model_class, "_supports_sdpa", False))


def use_fast_attention(model: torch.nn.Module) -> str:
    """Switch a ``transformers`` model (and its vision and text towers) to :data:`FAST_ATTENTION` where its class
    supports it; returns the attention implementation it runs with (``"sdpa"``, ``"eager"``, ...).

    A model class without SDPA support keeps its attention, with a debug log: it is no error.
    """
    config = getattr(model, "config", None)
    current = str(getattr(config, "_attn_implementation", None))
    if current == FAST_ATTENTION or not hasattr(model, "set_attn_implementation"):
        return current
    if not _supports_fast_attention(type(model)):
        logger.debug("vlmrm: %s does not support sdpa attention; it keeps %s", type(model).__name__, current)
        return current
    try:
        model.set_attn_implementation(FAST_ATTENTION)  # type: ignore[operator]
    except (ValueError, ImportError, NotImplementedError) as exc:  # transformers' "not supported" errors
        logger.debug("vlmrm: %s keeps %s attention (sdpa: %s)", type(model).__name__, current, exc)
    return str(model.config._attn_implementation)  # type: ignore[union-attr]


class TransformersEncoder(ImageTextEncoder):
    """A ``transformers`` CLIP or SigLIP model and its tokenizer, with :data:`FAST_ATTENTION` where supported
    (``attention`` says which attention it runs with)."""

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        image_spec: ImageSpec,
        family: str,
        device: torch.device,
        dtype: torch.dtype,
        name: str,
    ):
        self.model = model.to(device=device, dtype=dtype).eval()
        self.attention = use_fast_attention(self.model)
        self.tokenizer = tokenizer
        self.image_spec = image_spec
        self.family = family
        self.device = device
        self.dtype = dtype
        self.name = name
        text_config = model.config.text_config  # type: ignore[union-attr]
        self.context_length = int(text_config.max_position_embeddings)  # type: ignore[union-attr,arg-type]
        # SigLIP was trained on prompts padded to the full context; CLIP pools at the EOS token.
        self._padding = "max_length" if family == "siglip" else "longest"

    @torch.inference_mode()
    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return _features(self.model.get_image_features(pixel_values=pixel_values))  # type: ignore[operator]

    @torch.inference_mode()
    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        lengths = [len(ids) for ids in self.tokenizer(prompts, truncation=False)["input_ids"]]
        for prompt, length in zip(prompts, lengths, strict=True):
            if length > self.context_length:
                warn_truncated(prompt, length, self.context_length)
        tokens = self.tokenizer(
            prompts,
            padding=self._padding,
            truncation=True,
            max_length=self.context_length,
            return_tensors="pt",
        ).to(self.device)
        kwargs = {"input_ids": tokens["input_ids"]}
        if self.family != "siglip" and "attention_mask" in tokens:
            kwargs["attention_mask"] = tokens["attention_mask"]
        return _features(self.model.get_text_features(**kwargs))  # type: ignore[operator]

    @classmethod
    def from_random(cls, name: str, device: torch.device, dtype: torch.dtype) -> TransformersEncoder:
        model, tokenizer, spec, family = build_random_model(name)
        label = name if name == "tiny-random" else f"random:{name}"
        return cls(model, tokenizer, spec, family, device, dtype, name=label)

    @classmethod
    def from_pretrained(cls, spec: str, device: torch.device, dtype: torch.dtype) -> TransformersEncoder:
        """Load a CLIP or SigLIP checkpoint from a local directory, the hub cache, or the hub.

        The cache is tried first, without network. Only a model that is not cached is downloaded,
        and only after the hub has answered one quick request: unreachable, it is a
        :class:`ModelLoadError` within seconds instead of half a minute of retries.
        """
        with _explain_load_errors(spec):
            try:
                return cls(*_load_checkpoint(spec, dtype, local_files_only=True), device, dtype, name=spec)
            except (OSError, ValueError) as exc:
                if Path(spec).is_dir() or not _is_cache_miss(exc) or _offline():
                    raise
                unreachable = hub_unreachable()
                if unreachable is not None:
                    raise ModelLoadError(
                        _not_available_message(spec, f"the Hugging Face hub could not be reached ({unreachable})"),
                        alternative=OFFLINE_ALTERNATIVE,
                    ) from exc
            return cls(*_load_checkpoint(spec, dtype, local_files_only=False), device, dtype, name=spec)
        raise AssertionError("unreachable: _explain_load_errors re-raises every error")


def _load_checkpoint(spec: str, dtype: torch.dtype, local_files_only: bool) -> tuple[Any, Any, ImageSpec, str]:
    """``(model, tokenizer, image_spec, model_type)`` of a transformers CLIP or SigLIP checkpoint."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    config = AutoConfig.from_pretrained(spec, local_files_only=local_files_only)
    model_type = config.model_type
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ModelLoadError(
            f"Model {spec!r} is a {model_type!r} model; vlmrm's transformers backend supports "
            f"{', '.join(SUPPORTED_MODEL_TYPES)} (SigLIP 2 fixed-resolution checkpoints are 'siglip'). "
            "For other architectures try open_clip:ARCH/PRETRAINED."
        )
    # With peft installed, AutoModel looks for adapter_config.json with adapter_kwargs only, not
    # local_files_only (transformers 5.17 to 5.25 at least): a cached model would ask the hub, with retries.
    model = AutoModel.from_pretrained(
        spec,
        dtype=dtype,
        local_files_only=local_files_only,
        adapter_kwargs={"local_files_only": local_files_only},
        attn_implementation=_attention_option(config),
    )
    tokenizer = AutoTokenizer.from_pretrained(spec, local_files_only=local_files_only)
    image_spec = _image_spec_from_preprocessor(spec, model_type, config, local_files_only)
    return model, tokenizer, image_spec, model_type


def _attention_option(config: Any) -> str | None:
    """``attn_implementation`` to load the model of ``config`` with: :data:`FAST_ATTENTION` where its class
    supports it, else None (transformers' default; :func:`use_fast_attention` logs why)."""
    from transformers import MODEL_MAPPING

    try:
        model_class: Any = MODEL_MAPPING[type(config)]
    except (KeyError, ValueError):
        return None
    return FAST_ATTENTION if _supports_fast_attention(model_class) else None


def load_cache_first(spec: str, source: str, load: Callable[[bool], Any], alternative: str) -> Any:
    """``load(local_files_only)`` from the cache (or the directory ``source``), then, on a cache miss, from the
    hub; errors become :class:`ModelLoadError` messages about ``spec`` that suggest ``alternative`` (a spec of
    the same family that needs no download) where the model cannot be had (for the ``vqa:`` and ``video:`` families).
    """
    try:
        with _explain_load_errors(spec):
            try:
                return load(True)
            except (OSError, ValueError) as exc:
                if Path(source).is_dir() or not _is_cache_miss(exc) or _offline():
                    raise
                unreachable = hub_unreachable()  # seconds, instead of half a minute of retries
                if unreachable is not None:
                    reason = f"the Hugging Face hub could not be reached ({unreachable})"
                    raise ModelLoadError(_not_available_message(spec, reason), alternative=alternative) from exc
                return load(False)
    except ModelLoadError as exc:
        if exc.alternative is None:
            raise
        raise ModelLoadError(exc.message, alternative=alternative) from exc
    raise AssertionError("unreachable: _explain_load_errors re-raises every error")


def _offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set: the hub is not to be asked."""
    from huggingface_hub import constants

    return constants.is_offline_mode()


def hub_unreachable(timeout: float = HUB_PROBE_TIMEOUT_S) -> str | None:
    """Why the Hugging Face hub (``HF_ENDPOINT``) cannot be reached, or None when it answers at all.

    One HEAD request to the endpoint through huggingface_hub's own HTTP client (so its proxies and
    certificates apply); any HTTP status counts as an answer. It runs in a daemon thread, so a DNS
    look-up that hangs (which no socket timeout bounds) costs ``timeout`` too.
    """
    from huggingface_hub import constants, get_session

    endpoint = constants.ENDPOINT
    outcome: list[str | None] = []

    def probe() -> None:
        try:
            get_session().head(endpoint, timeout=timeout)
            outcome.append(None)
        except Exception as exc:  # any failure to get an answer means: unreachable
            outcome.append(f"{type(exc).__name__}: {exc}".rstrip(": "))

    thread = threading.Thread(target=probe, name="vlmrm-hub-probe", daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    if not outcome:
        return f"{endpoint} did not answer within {timeout:g} s"
    return None if outcome[0] is None else f"{endpoint}: {outcome[0]}"


def _image_spec_from_preprocessor(spec: str, model_type: str, config: Any, local_files_only: bool) -> ImageSpec:
    """Read size, crop and normalisation from ``preprocessor_config.json`` without an image processor.

    (The image processor classes may need torchvision, which the default install avoids.)
    """
    from transformers.utils import cached_file

    size = int(config.vision_config.image_size)
    if local_files_only and not _offline() and not Path(spec).is_dir():
        # Missing files are not errors below: tell "not cached" (download it) from "not in the repo".
        from huggingface_hub import try_to_load_from_cache
        from huggingface_hub.errors import LocalEntryNotFoundError

        if try_to_load_from_cache(spec, "preprocessor_config.json") is None:
            raise LocalEntryNotFoundError(f"preprocessor_config.json of {spec!r} is not in the local cache")
    path = cached_file(
        spec,
        "preprocessor_config.json",
        local_files_only=local_files_only,
        _raise_exceptions_for_missing_entries=False,
    )
    settings: dict[str, Any] = json.loads(Path(path).read_text()) if path else {}
    squash = model_type == "siglip" or not settings.get("do_center_crop", True)
    default_mean, default_std = ((0.5,) * 3, (0.5,) * 3) if model_type == "siglip" else (CLIP_MEAN, CLIP_STD)
    mean = tuple(settings.get("image_mean", default_mean))
    std = tuple(settings.get("image_std", default_std))
    resample = settings.get("resample", 3)  # PIL: 2 bilinear, 3 bicubic
    return ImageSpec(
        size=size,
        mean=mean,
        std=std,
        resize_mode="squash" if squash else "shortest_edge",
        interpolation="bilinear" if resample == 2 else "bicubic",
    )


class _explain_load_errors:
    """Turn hub and file errors into :class:`ModelLoadError` messages that say what to do."""

    def __init__(self, spec: str):
        self.spec = spec

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> Literal[False]:
        if exc is None or isinstance(exc, ModelLoadError) or not isinstance(exc, (OSError, ValueError)):
            return False
        from huggingface_hub.errors import HFValidationError, RepositoryNotFoundError

        spec = self.spec
        if _caused_by(exc, RepositoryNotFoundError) or "is not a local folder" in str(exc):
            raise ModelLoadError(
                f"Unknown model {spec!r}: it is neither a local directory nor a model on the Hugging Face hub.\n"
                f"{_spec_help()}"
            ) from exc
        invalid = _caused_by(exc, HFValidationError)
        if invalid is not None:
            raise ModelLoadError(
                f"Model spec {spec!r} is neither a local directory nor a valid hub id: {invalid}\n{_spec_help()}"
            ) from exc
        if _is_cache_miss(exc):
            reason = "HF_HUB_OFFLINE is set" if _offline() else "the Hugging Face hub could not be reached"
            raise ModelLoadError(_not_available_message(spec, reason), alternative=OFFLINE_ALTERNATIVE) from exc
        raise ModelLoadError(f"Cannot load model {spec!r}: {exc}") from exc


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised from or during, innermost last."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _caused_by(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    return next((e for e in _chain(exc) if isinstance(e, kind)), None)


def _is_cache_miss(exc: BaseException) -> bool:
    """The files are not in the local cache and the hub was not (or could not be) asked for them."""
    from huggingface_hub.errors import LocalEntryNotFoundError

    return _caused_by(exc, LocalEntryNotFoundError) is not None or "couldn't connect" in str(exc)


def _not_available_message(spec: str, reason: str) -> str:
    return (
        f"Cannot load model {spec!r}: {reason} and it is not in the local cache.\n"
        "  - download it once on a machine with network (it is cached under ~/.cache/huggingface), "
        "then run with HF_HUB_OFFLINE=1;\n"
        "  - or pass a local directory that holds the checkpoint (config.json, weights, tokenizer);"
    )


def _spec_help() -> str:
    backends = ", ".join(backend.help for backend in _BACKENDS.values())
    return (
        "Model specs: a hub id such as openai/clip-vit-base-patch32 or google/siglip-base-patch16-224, "
        f"a local directory, tiny-random, vqa:<id or dir> (a generative VLM), video:<id or dir> (X-CLIP), {backends}."
    )


class OpenCLIPEncoder(ImageTextEncoder):
    """An ``open_clip`` model (``open_clip:ARCH/PRETRAINED``)."""

    def __init__(self, arch: str, pretrained: str, device: torch.device, dtype: torch.dtype):
        try:
            import open_clip
        except ImportError as exc:
            raise ModelLoadError(
                f"Model spec 'open_clip:{arch}/{pretrained}' needs the open_clip package, which failed to import "
                f"({exc}). Install it with: pip install 'vlmrm[open-clip]' (it also needs a torchvision build "
                "that matches your torch), or use a transformers model such as openai/clip-vit-base-patch32."
            ) from exc
        with _explain_load_errors(f"open_clip:{arch}/{pretrained}"):
            model = open_clip.create_model(arch, pretrained=pretrained, device=device)
        self.model = model.to(dtype=dtype).eval()
        self.tokenizer = open_clip.get_tokenizer(arch)
        self.device, self.dtype, self.name = device, dtype, f"open_clip:{arch}/{pretrained}"
        visual = model.visual
        size = visual.image_size if isinstance(visual.image_size, int) else visual.image_size[0]
        mean = getattr(visual, "image_mean", None) or open_clip.OPENAI_DATASET_MEAN
        std = getattr(visual, "image_std", None) or open_clip.OPENAI_DATASET_STD
        self.image_spec = ImageSpec(int(size), tuple(mean), tuple(std), "shortest_edge")
        self.context_length = int(getattr(model, "context_length", 77))

    @torch.inference_mode()
    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixel_values)

    @torch.inference_mode()
    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        encode = getattr(self.tokenizer, "encode", None)
        if encode is not None:
            for prompt in prompts:
                length = len(encode(prompt)) + 2  # start and end tokens
                if length > self.context_length:
                    warn_truncated(prompt, length, self.context_length)
        tokens = self.tokenizer(prompts, context_length=self.context_length).to(self.device)
        return self.model.encode_text(tokens)


# -- the backends, by spec prefix --------------------------------------------------------------------------

EncoderLoader = Callable[[str, torch.device, torch.dtype], ImageTextEncoder]
"""``load(body, device, dtype)``: the encoder of the spec ``PREFIX:BODY``."""


@dataclass(frozen=True)
class EncoderBackend:
    """A kind of model spec: ``PREFIX:BODY`` specs load through ``load(BODY, device, dtype)``.

    ``load`` is a function or ``"module:function"``, imported on first use (as an env's ``entry_point``), so
    registering a backend costs nothing until one of its models loads.
    """

    prefix: str
    load: EncoderLoader | str
    help: str
    """How a spec of this backend looks, for error messages (``open_clip:ARCH/PRETRAINED (pip install ...)``)."""

    def loader(self) -> EncoderLoader:
        if callable(self.load):
            return self.load
        module, _, name = self.load.partition(":")
        loader: EncoderLoader = getattr(importlib.import_module(module), name)
        return loader


_BACKENDS: dict[str, EncoderBackend] = {}


def register_encoder(prefix: str, load: EncoderLoader | str, help: str) -> None:
    """Make ``PREFIX:BODY`` model specs load through ``load(BODY, device, dtype)`` (a function or
    ``"module:function"``); ``help`` is the line that names the backend in "unknown model" messages."""
    if not prefix.isidentifier():
        raise ValueError(f"An encoder prefix is a name such as 'open_clip', not {prefix!r}.")
    if prefix in _BACKENDS:
        raise ValueError(f"An encoder backend with prefix {prefix!r} is already registered.")
    _BACKENDS[prefix] = EncoderBackend(prefix, load, help)


def encoder_backends() -> dict[str, EncoderBackend]:
    """The registered backends by prefix (besides the default: hub ids and local directories)."""
    return dict(_BACKENDS)


def load_encoder(spec: str, device: torch.device, dtype: torch.dtype) -> ImageTextEncoder:
    """Build the encoder named by ``spec`` (see the module docstring)."""
    spec = spec.strip()
    if not spec:
        raise ModelLoadError(f"The model spec is empty.\n{_spec_help()}")
    if spec == "tiny-random":
        warnings.warn(RANDOM_WEIGHTS_WARNING.format(spec=spec), UserWarning, stacklevel=3)
        return TransformersEncoder.from_random("tiny-random", device, dtype)
    if looks_like_path(spec) or Path(spec).exists():
        return TransformersEncoder.from_pretrained(str(_existing_directory(spec)), device, dtype)
    prefix, sep, body = spec.partition(":")
    if sep and prefix in _BACKENDS:
        return _BACKENDS[prefix].loader()(body, device, dtype)
    if sep and "/" not in prefix:
        raise ModelLoadError(f"Unknown model spec prefix {prefix + ':'!r} in {spec!r}.\n{_spec_help()}")
    return TransformersEncoder.from_pretrained(spec, device, dtype)


def _load_random(name: str, device: torch.device, dtype: torch.dtype) -> ImageTextEncoder:
    if name not in RANDOM_ARCHITECTURES or name == "tiny-random":
        known = [n for n in RANDOM_ARCHITECTURES if n != "tiny-random"]
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" Did you mean 'random:{close[0]}'?" if close else ""
        raise ModelLoadError(f"Unknown random architecture {name!r}.{hint} Known: {', '.join(known)}.")
    warnings.warn(RANDOM_WEIGHTS_WARNING.format(spec=f"random:{name}"), UserWarning, stacklevel=4)
    return TransformersEncoder.from_random(name, device, dtype)


def _load_open_clip(body: str, device: torch.device, dtype: torch.dtype) -> ImageTextEncoder:
    arch, sep, pretrained = body.partition("/")
    if not sep or not arch or not pretrained:
        raise ModelLoadError(
            f"Model spec 'open_clip:{body}' must look like open_clip:ARCH/PRETRAINED, e.g. open_clip:ViT-B-32/openai."
        )
    return OpenCLIPEncoder(arch, pretrained, device, dtype)


register_encoder("open_clip", _load_open_clip, "open_clip:ARCH/PRETRAINED (pip install 'vlmrm[open-clip]')")
register_encoder(
    "random",
    _load_random,
    f"random:<id> with id one of: {', '.join(n for n in RANDOM_ARCHITECTURES if n != 'tiny-random')}",
)


def looks_like_path(spec: str) -> bool:
    """A spec that starts with ``/``, ``.`` or ``~``, or has more than one ``/``, names a directory, not a hub id."""
    return spec.startswith(("/", ".", "~")) or spec.count("/") > 1


def _existing_directory(spec: str) -> Path:
    """The directory ``spec`` names (``~`` expanded), or a :class:`ModelLoadError` that says it is missing."""
    path = Path(spec).expanduser()
    shown = repr(spec) if str(path.absolute()) == spec else f"{spec!r} ({path.absolute()})"
    what = "a local directory that holds a checkpoint (config.json, weights, tokenizer)"
    if not path.exists():
        raise ModelLoadError(
            f"Model directory {shown} does not exist. Give {what}, or a hub id such as openai/clip-vit-base-patch32."
        )
    if not path.is_dir():
        raise ModelLoadError(f"Model path {shown} is a file, not a directory. Give {what}.")
    return path


__all__ = [
    "EncoderBackend",
    "ImageTextEncoder",
    "OpenCLIPEncoder",
    "TransformersEncoder",
    "encoder_backends",
    "load_encoder",
    "register_encoder",
]
