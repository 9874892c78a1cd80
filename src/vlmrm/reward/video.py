"""Video-text rewards (``video:<hub id or local dir>``): a clip of recent frames against the prompt.

An X-CLIP model (``transformers``' ``XCLIPModel``, e.g. ``microsoft/xclip-base-patch32``) embeds
a clip of ``k`` frames and the prompts into one space; the reward is that of
:class:`~vlmrm.reward.VLMReward` (cosine similarity with the goal-baseline projection of strength
``alpha``) with the clip embedding in place of the image embedding.

Two forms (``reward.video.form``):

- ``window`` (dense): the reward of step ``t`` is the similarity of the clip of frames
  ``t - (k-1)s, ..., t - s, t`` (stride ``s``, ``reward.video.stride``); before the episode has
  that many frames, its first frame fills the clip.
- ``episode`` (RoboCLIP, Sontakke et al. 2023; sparse): one reward per episode, the similarity of
  ``k`` frames spread evenly over the whole episode, at the episode's last step; every other
  step gets 0.

Both need the episode's earlier frames, which training holds already, so no frame is rendered
twice: episode-end batching (``reward.episode_end_batching``, on for SAC and DQN) hands finished
episodes to :meth:`VideoReward.score_episodes`, and PPO each rollout's steps, when it ends, to
:meth:`VideoReward.score_episode_steps` (:mod:`vlmrm.rl.rollout_rewards`); ``vlmrm inspect``
scores its episodes the same way, and ``vlmrm score`` each video file's frames (as one episode).
Scored one frame at a time (images in ``vlmrm score``, the states of ``landscape``, the frames of
``epic`` and ``rewards compare``, a call ``reward(frames)``) a frame is a still clip: the frame
repeated ``k`` times, which those tools say in one log line (:func:`note_still_clips`). ``k`` is
the model's number of frames (X-CLIP's frame-integration transformer has one position per frame).

``video:tiny-random`` is a tiny randomly initialised X-CLIP built here, offline (meaningless rewards).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from vlmrm.errors import ConfigError, ModelLoadError
from vlmrm.reward.architectures import CLIP_MEAN, CLIP_STD, byte_level_tokenizer
from vlmrm.reward.contract import Frames
from vlmrm.reward.devices import resolve_device, resolve_dtype
from vlmrm.reward.encoders import (
    RANDOM_WEIGHTS_WARNING,
    TransformersEncoder,
    _features,
    _image_spec_from_preprocessor,
    load_cache_first,
    looks_like_path,
)
from vlmrm.reward.preprocessing import ImageSpec, frames_to_tensor
from vlmrm.reward.projection import normalize
from vlmrm.reward.vlm_reward import VLMReward, check_reward_arguments

__all__ = ["VideoReward", "XCLIPEncoder", "build_tiny_random_xclip", "clip_indices", "load_xclip", "note_still_clips"]

logger = logging.getLogger(__name__)

PREFIX = "video:"
TINY_RANDOM = "tiny-random"
VideoForm = Literal["window", "episode"]


class XCLIPEncoder(TransformersEncoder):
    """An X-CLIP model: :meth:`encode_videos` embeds clips; :meth:`encode_images` embeds still clips."""

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        image_spec: ImageSpec,
        device: torch.device,
        dtype: torch.dtype,
        name: str,
    ):
        super().__init__(model, tokenizer, image_spec, "clip", device, dtype, name)
        self.num_frames = int(model.config.vision_config.num_frames)  # type: ignore[union-attr,arg-type]

    @torch.inference_mode()
    def encode_videos(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``(N, k, 3, S, S)`` preprocessed clips -> ``(N, D)`` embeddings."""
        return _features(self.model.get_video_features(pixel_values=pixel_values))  # type: ignore[operator]

    @torch.inference_mode()
    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        clips = pixel_values.unsqueeze(1).expand(-1, self.num_frames, -1, -1, -1)
        return self.encode_videos(clips)


def clip_indices(length: int, window: int, stride: int, form: VideoForm) -> np.ndarray:
    """Frame indices ``(clips, window)`` of an episode of ``length`` frames: one clip per step for
    ``window``, one clip spread over the episode for ``episode``.

    >>> clip_indices(4, 3, 1, "window").tolist()
    [[0, 0, 0], [0, 0, 1], [0, 1, 2], [1, 2, 3]]
    >>> clip_indices(10, 3, 1, "episode").tolist()
    [[0, 4, 9]]
    """
    if form == "episode":
        return np.linspace(0, length - 1, window).round().astype(np.int64)[None]
    offsets = np.arange(window - 1, -1, -1) * stride
    return np.maximum(np.arange(length)[:, None] - offsets[None], 0)


class VideoReward(VLMReward):
    """The reward of a video-text model: each step's clip of recent frames (or the whole episode) against the goal.

    Args:
        encoder: the model (:class:`XCLIPEncoder`).
        target_prompts: as for :class:`~vlmrm.reward.VLMReward`.
        baseline_prompts: as for :class:`~vlmrm.reward.VLMReward`.
        alpha: as for :class:`~vlmrm.reward.VLMReward`.
        batch_size: frames through the vision tower at once (``batch_size // k`` clips at a time).
        window: frames per clip; must be the model's (None: the model's).
        stride: steps between a clip's frames.
        form: ``window`` (dense) or ``episode`` (RoboCLIP, sparse): see the module docstring.
    """

    def __init__(
        self,
        encoder: XCLIPEncoder,
        target_prompts: Sequence[str] | str,
        baseline_prompts: Sequence[str] | str | None = None,
        alpha: float = 0.0,
        batch_size: int = 64,
        window: int | None = None,
        stride: int = 1,
        form: VideoForm = "window",
    ):
        super().__init__(encoder, target_prompts, baseline_prompts, alpha, batch_size)
        self.video_encoder = encoder
        self.window = _check_window(window, encoder)
        if isinstance(stride, bool) or not isinstance(stride, int) or stride <= 0:
            raise ConfigError(f"reward.video.stride must be a positive whole number of steps, got {stride!r}.")
        if form not in ("window", "episode"):
            raise ConfigError(f"reward.video.form must be 'window' or 'episode', got {form!r}.")
        self.stride = stride
        self.form: VideoForm = form

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
        video_window: int | None = None,
        video_stride: int = 1,
        video_form: VideoForm = "window",
        **_other_families: Any,
    ) -> VideoReward:
        """Load ``video:<hub id or dir>`` (or ``video:tiny-random``) and embed the prompts."""
        check_reward_arguments(target_prompts, baseline_prompts, alpha, batch_size)
        torch_device = resolve_device(device)
        encoder = load_xclip(spec, torch_device, resolve_dtype(dtype, torch_device))
        return cls(encoder, target_prompts, baseline_prompts, alpha, batch_size, video_window, video_stride, video_form)

    @torch.inference_mode()
    def score_episodes(self, episodes: Sequence[Frames]) -> list[np.ndarray]:
        """float32 rewards, one per frame, for each episode's frames ``(T, H, W, 3)`` (see the module docstring)."""
        return [self.score_steps(frames) for frames in episodes]

    @torch.inference_mode()
    def score_steps(self, frames: Frames, first: int = 0, finished: bool = True) -> np.ndarray:
        """float32 rewards of steps ``first, ..., T-1`` of an episode whose frames so far ``(T, H, W, 3)`` are given.

        A step's reward depends only on its episode's frames up to that step (and, in the ``episode``
        form, on whether the episode ended there: ``finished`` says whether it ended at frame ``T-1``;
        an unfinished episode's steps get 0 there). So a part of an episode scores as the whole would
        when it carries the ``(window - 1) * stride`` frames before its first step (or starts at the
        episode's first frame): how a long episode is split over Ray workers, and how a PPO rollout
        scores the steps of an episode that began in an earlier rollout or goes on in the next.
        """
        tensor = frames_to_tensor(frames)
        length = tensor.shape[0]
        if not 0 <= first <= length:
            raise ValueError(f"first={first} is not a step of an episode of {length} frames")
        if self.form == "episode" and not finished:
            return np.zeros(length - first, dtype=np.float32)
        return self.rewards_from_clip_embeddings(self.embed_episode(tensor, first), length, first)

    def score_episode_steps(
        self, episodes: Sequence[Frames], first: Sequence[int], finished: Sequence[bool]
    ) -> list[np.ndarray]:
        """:meth:`score_steps` of each episode: the rewards of its steps ``first[i], ...`` (see the contract's
        :class:`~vlmrm.reward.contract.PartialEpisodeRewardFunction`)."""
        return [self.score_steps(frames, f, done) for frames, f, done in zip(episodes, first, finished, strict=True)]

    @torch.inference_mode()
    def embed_episode(self, frames: Frames, first: int = 0) -> torch.Tensor:
        """Normalised float32 clip embeddings of an episode's frames ``(T, H, W, 3)``: one per step from
        ``first`` (``window`` form) or one for the whole episode (``episode`` form); see :meth:`score_steps`."""
        tensor = frames_to_tensor(frames)
        length = tensor.shape[0]
        if not 0 <= first <= length:
            raise ValueError(f"first={first} is not a step of an episode of {length} frames")
        indices_np = clip_indices(length, self.window, self.stride, self.form) if length > first else None
        if self.form == "window" and indices_np is not None:
            indices_np = indices_np[first:]
        if indices_np is None or len(indices_np) == 0:
            return torch.zeros((0, self.target_embedding.shape[0]), device=self.device)
        # Only the frames some clip uses go through the model (a part of an episode carries its context).
        used, inverse = np.unique(indices_np, return_inverse=True)
        chosen = tensor[torch.from_numpy(used).to(tensor.device)]
        pixels = torch.cat(
            [self.preprocess(chosen[start : start + self.batch_size]) for start in range(0, len(used), self.batch_size)]
        )
        indices = torch.from_numpy(inverse.reshape(indices_np.shape)).to(pixels.device)
        per_pass = max(1, self.batch_size // self.window)
        return torch.cat(
            [
                normalize(self.video_encoder.encode_videos(pixels[indices[start : start + per_pass]]).float())
                for start in range(0, len(indices), per_pass)
            ]
        )

    def rewards_from_clip_embeddings(
        self, embeddings: torch.Tensor, length: int, first: int = 0, alpha: float | None = None
    ) -> np.ndarray:
        """float32 rewards of steps ``first, ..., length-1`` from :meth:`embed_episode`'s embeddings of an episode
        of ``length`` frames; ``alpha`` overrides :attr:`alpha` for this call."""
        rewards = np.zeros(length - first, dtype=np.float32)
        if length == first:
            return rewards
        values = self.reward_from_embeddings(embeddings, alpha=alpha).float().cpu().numpy()
        if self.form == "episode":
            rewards[-1] = values[0]
            return rewards
        return values.astype(np.float32, copy=False)

    def __repr__(self) -> str:
        return (
            f"VideoReward(model={self.name!r}, target_prompts={self.target_prompts!r}, "
            f"baseline_prompts={self.baseline_prompts!r}, alpha={self.alpha}, window={self.window}, "
            f"stride={self.stride}, form={self.form!r}, dtype={self.dtype}, device={self.device})"
        )


def note_still_clips(reward: object, what: str) -> None:
    """Say (one INFO line) that ``reward``, when it is a video model, sees each of ``what`` (independent images:
    a sweep's states, a dataset's frames) as a still clip; nothing for other models."""
    if isinstance(reward, VideoReward):
        logger.info(
            "vlmrm: %s is a video model; it sees each of %s as a still clip (the image repeated %d times), "
            "not as a window of an episode",
            reward.name,
            what,
            reward.window,
        )


def _check_window(window: int | None, encoder: XCLIPEncoder) -> int:
    if window is None:
        return encoder.num_frames
    if window != encoder.num_frames:
        raise ConfigError(
            f"reward.video.window={window}, but {encoder.name!r} takes clips of {encoder.num_frames} frames "
            f"(one position per frame); set reward.video.window: {encoder.num_frames} or leave it out."
        )
    return window


def load_xclip(spec: str, device: torch.device, dtype: torch.dtype) -> XCLIPEncoder:
    """The X-CLIP model of ``video:<hub id or dir>`` (the cache first, then the hub), or ``video:tiny-random``."""
    name = spec.strip().removeprefix(PREFIX).strip()
    if not name:
        raise ModelLoadError(
            f"Model spec {spec!r} names no model; write video:<hub id or directory>, e.g. video:{TINY_RANDOM}."
        )
    if name == TINY_RANDOM:
        warnings.warn(RANDOM_WEIGHTS_WARNING.format(spec=spec), UserWarning, stacklevel=4)
        model, tokenizer, image_spec = build_tiny_random_xclip()
        return XCLIPEncoder(model, tokenizer, image_spec, device, dtype, f"{PREFIX}{TINY_RANDOM}")
    if looks_like_path(name) and not Path(name).expanduser().is_dir():
        raise ModelLoadError(
            f"Model directory {name!r} does not exist; give a directory that holds an X-CLIP checkpoint."
        )
    source = str(Path(name).expanduser()) if Path(name).expanduser().is_dir() else name
    loaded: tuple[Any, Any, ImageSpec] = load_cache_first(
        spec, source, lambda local: _load(source, dtype, local_files_only=local), f"{PREFIX}{TINY_RANDOM}"
    )
    return XCLIPEncoder(*loaded, device, dtype, f"{PREFIX}{name}")


def _load(source: str, dtype: torch.dtype, local_files_only: bool) -> tuple[Any, Any, ImageSpec]:
    from transformers import AutoConfig, AutoTokenizer, XCLIPModel

    config = AutoConfig.from_pretrained(source, local_files_only=local_files_only)
    if config.model_type != "xclip":
        raise ModelLoadError(
            f"Model {source!r} is a {config.model_type!r} model; video: rewards take X-CLIP models (model type "
            "'xclip', e.g. microsoft/xclip-base-patch32)."
        )
    model = XCLIPModel.from_pretrained(source, dtype=dtype, local_files_only=local_files_only)
    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_files_only)
    # X-CLIP preprocesses frames as CLIP does (shortest edge, centre crop, CLIP's mean and std).
    return model, tokenizer, _image_spec_from_preprocessor(source, "clip", config, local_files_only)


def build_tiny_random_xclip(seed: int = 0, num_frames: int = 4) -> tuple[Any, Any, ImageSpec]:
    """``(model, tokenizer, image_spec)``: a tiny random X-CLIP (32-pixel frames, clips of ``num_frames``), offline."""
    from transformers import XCLIPConfig, XCLIPModel

    tokenizer = byte_level_tokenizer()
    text = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "max_position_embeddings": 77,
        "vocab_size": 1000,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    vision = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "mit_hidden_size": 16,
        "mit_intermediate_size": 32,
        "mit_num_attention_heads": 2,
        "patch_size": 16,
        "image_size": 32,
        "num_frames": num_frames,
    }
    config = XCLIPConfig(
        text_config=text, vision_config=vision, projection_dim=16, prompt_layers=1, prompt_num_attention_heads=2
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = XCLIPModel(config).eval()
    return model, tokenizer, ImageSpec(32, CLIP_MEAN, CLIP_STD, "shortest_edge")
