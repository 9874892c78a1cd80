"""Scoring cost of the three reward families at realistic sizes, with random weights (no download).

- ``clip``: CLIP ViT-B/32 at 224 (``random:openai/clip-vit-base-patch32``);
- ``vqa``: a PaliGemma-shaped generative VLM of SmolVLM-256M's parts (SigLIP-B/16 at 224, 196 image
  tokens, and a 30-layer 576-wide language model like SmolLM2-135M; byte-level vocabulary), one
  question per frame;
- ``video``: X-CLIP B/32 at 224, clips of 8 frames (``microsoft/xclip-base-patch32``'s shape), once
  as still clips (frame by frame) and once as ``window`` rewards over an episode.

Prints frames per second for each. Run::

    python benchmarks/reward_families.py [--frames 16] [--device cpu] [--dtype fp32]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch

from vlmrm.reward import VLMReward
from vlmrm.reward.architectures import CLIP_MEAN, CLIP_STD, byte_level_tokenizer
from vlmrm.reward.devices import resolve_device, resolve_dtype
from vlmrm.reward.preprocessing import ImageSpec
from vlmrm.reward.video import VideoReward, XCLIPEncoder
from vlmrm.reward.vqa import VQAReward, VQAScorer, build_tiny_random_vqa

PROMPT = "pole vertically upright on top of the cart"


def timed(score, frames: np.ndarray) -> float:
    score(frames[:1])  # warm-up
    start = time.perf_counter()
    score(frames)
    return len(frames) / (time.perf_counter() - start)


def vqa_reward(device: torch.device, dtype: torch.dtype) -> VQAReward:
    text = {"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9}
    vision = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12}
    model, processor = build_tiny_random_vqa(
        image_size=224, patch_size=16, text={**text, "num_key_value_heads": 3}, vision=vision
    )
    return VQAReward(VQAScorer(model, processor, "vqa:smolvlm-256m-shaped", 224, device, dtype), PROMPT, batch_size=16)


def video_reward(device: torch.device, dtype: torch.dtype) -> VideoReward:
    from transformers import XCLIPConfig, XCLIPModel

    tokenizer = byte_level_tokenizer()
    special = {k: getattr(tokenizer, k) for k in ("bos_token_id", "eos_token_id", "pad_token_id")}
    model = XCLIPModel(XCLIPConfig(text_config=special, vision_config={})).eval()  # the defaults: X-CLIP B/32, 8 frames
    encoder = XCLIPEncoder(
        model, tokenizer, ImageSpec(224, CLIP_MEAN, CLIP_STD), device, dtype, "video:xclip-b32-shaped"
    )
    return VideoReward(encoder, PROMPT, batch_size=64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32")
    args = parser.parse_args()
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    frames = np.random.default_rng(0).integers(0, 256, (args.frames, 224, 224, 3), dtype=np.uint8)
    warnings.filterwarnings("ignore", message="vlmrm: model")
    clip = VLMReward.from_pretrained("random:openai/clip-vit-base-patch32", PROMPT, device=device, dtype=dtype)
    print(f"clip  (CLIP B/32)                  {timed(clip, frames):8.2f} frames/s")
    print(f"vqa   (SmolVLM-256M-shaped)        {timed(vqa_reward(device, dtype), frames):8.2f} frames/s")
    video = video_reward(device, dtype)
    print(f"video (X-CLIP B/32, still clips)   {timed(video, frames):8.2f} frames/s")
    print(f"video (X-CLIP B/32, window, 1 ep.) {timed(lambda f: video.score_episodes([f]), frames):8.2f} frames/s")


if __name__ == "__main__":
    main()
