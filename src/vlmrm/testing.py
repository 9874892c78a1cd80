"""Deterministic stand-ins for tests and examples: an embedder that follows the picture, and a tiny env.

Pretrained weights are gigabytes; a test that must show that a reward follows the frame uses
:class:`ColorEmbedder` (the image embedding is the frame's mean colour) instead, and
:func:`color_reward_reference` computes what :class:`~vlmrm.reward.VLMReward` must give with it;
:class:`ColorClipEmbedder` is the same for video models (a clip is embedded as its mean frame).
:class:`StepColorEnv` draws a frame whose colour encodes the step and the env, so a stored
transition tells which frame followed it.

>>> import numpy as np
>>> reward = color_reward(target="a red pole")
>>> frames = np.stack([StepColorEnv.frame_for(t, 0) for t in (1, 2)])
>>> bool(np.allclose(reward(frames), color_reward_reference(frames, (1.0, 0.0, 0.0)), atol=1e-6))
True
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from vlmrm.reward.encoders import ImageTextEncoder
from vlmrm.reward.preprocessing import ImageSpec
from vlmrm.reward.vlm_reward import VLMReward


class ColorEmbedder(ImageTextEncoder):
    """A deterministic embedder whose image embedding is the frame's centred mean colour.

    The text embedding of a prompt is a colour named in it ("red", "green", "blue", ...) or a
    hashed vector, so a reward computed with it follows the picture in a way a test can predict.
    """

    COLORS: ClassVar[dict[str, tuple[float, float, float]]] = {
        "red": (1.0, 0.0, 0.0),
        "green": (0.0, 1.0, 0.0),
        "blue": (0.0, 0.0, 1.0),
        "white": (1.0, 1.0, 1.0),
    }

    def __init__(self, size: int = 16, device: str | torch.device = "cpu"):
        self.name = "color-embedder"
        # mean 0.5, std 0.5 maps pixels to [-1, 1].
        self.image_spec = ImageSpec(size, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "squash")
        self.context_length = 16
        self.device = torch.device(device)
        self.dtype = torch.float32
        self.image_calls = 0
        self.text_calls: list[list[str]] = []

    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        self.image_calls += 1
        mean_rgb = pixel_values.float().mean(dim=(2, 3))
        return torch.cat([mean_rgb, torch.full_like(mean_rgb[:, :1], 0.25)], dim=1)

    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        self.text_calls.append(list(prompts))
        rows = []
        for prompt in prompts:
            named = next((c for name, c in self.COLORS.items() if name in prompt), None)
            digest = hashlib.sha256(prompt.encode()).digest()
            color = named if named is not None else tuple(b / 255.0 - 0.5 for b in digest[:3])
            rows.append([*(2 * np.asarray(color) - 1), 0.25])
        return torch.tensor(rows, dtype=torch.float32, device=self.device)


class ColorClipEmbedder(ColorEmbedder):
    """A deterministic stand-in for a video model (``encode_videos``, clips of :attr:`num_frames` frames): a
    clip's embedding is that of its mean frame, so a :class:`~vlmrm.reward.video.VideoReward` on it follows
    the colours of each step's clip."""

    num_frames = 3

    def encode_videos(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``(N, k, 3, S, S)`` preprocessed clips -> ``(N, 4)`` embeddings (of each clip's mean frame)."""
        return self.encode_images(pixel_values.mean(dim=1))


def load_color_embedder(body: str, device: torch.device, dtype: torch.dtype) -> ColorEmbedder:
    """An encoder loader (:func:`vlmrm.reward.register_encoder`): ``BODY`` is the frame size, e.g. ``color:16``."""
    return ColorEmbedder(size=int(body or 16))


def color_reward_reference(frames: np.ndarray, target_rgb: tuple[float, float, float]) -> np.ndarray:
    """What a VLMReward with :class:`ColorEmbedder` and alpha=0 must give, computed independently."""
    mean_rgb = frames.reshape(len(frames), -1, 3).mean(axis=1) / 127.5 - 1
    x = np.concatenate([mean_rgb, np.full((len(frames), 1), 0.25)], 1)
    g = np.array([*(2 * np.asarray(target_rgb) - 1), 0.25])
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    g = g / np.linalg.norm(g)
    return (x @ g).astype(np.float32)


class StepColorEnv(gym.Env):
    """An env whose frame after step ``t`` has a colour computed from ``(t, env_id)``.

    The observation is ``[t, env_id]`` so a stored transition tells which frame followed it.
    Episodes last ``length`` steps (terminated), the env reward is ``t``.
    """

    metadata = {"render_modes": ["rgb_array"]}  # noqa: RUF012 (Gymnasium's own convention)

    def __init__(self, env_id: int = 0, length: int = 5, size: int = 16, continuous: bool = False):
        self.env_id = env_id
        self.length = length
        self.size = size
        self.render_mode = "rgb_array"
        self.observation_space = spaces.Box(0, 1000, shape=(2,), dtype=np.float32)
        self.action_space = spaces.Box(-1, 1, shape=(1,), dtype=np.float32) if continuous else spaces.Discrete(2)
        self.t = 0

    @staticmethod
    def frame_for(t: int, env_id: int, size: int = 16) -> np.ndarray:
        color = np.array([(37 * t + 11 * env_id) % 256, (91 * t + 53 * env_id) % 256, (17 * t + 200) % 256])
        return np.broadcast_to(color.astype(np.uint8), (size, size, 3)).copy()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0, self.env_id], dtype=np.float32), {}

    def step(self, action: Any):
        self.t += 1
        obs = np.array([self.t, self.env_id], dtype=np.float32)
        return obs, float(self.t), self.t >= self.length, False, {}

    def render(self) -> np.ndarray:
        return self.frame_for(self.t, self.env_id, self.size)


def color_reward(embedder: ColorEmbedder | None = None, target: str = "a red pole", **kwargs: Any) -> VLMReward:
    """A :class:`~vlmrm.reward.VLMReward` on a :class:`ColorEmbedder` (16-pixel frames, no weights, no network)."""
    return VLMReward(embedder or ColorEmbedder(), target_prompts=[target], **kwargs)


__all__ = [
    "ColorClipEmbedder",
    "ColorEmbedder",
    "StepColorEnv",
    "color_reward",
    "color_reward_reference",
    "load_color_embedder",
]
