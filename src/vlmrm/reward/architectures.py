"""Randomly initialised models of named architectures, built offline from a config.

``tiny-random`` is a very small CLIP for smoke runs and CI. ``random:<hub id>`` builds the
architecture of a known checkpoint with random weights, so benchmarks measure realistic compute
without downloading weights. Rewards from either are meaningless.
"""

from __future__ import annotations

from typing import Any

import torch
from tokenizers import pre_tokenizers
from transformers import CLIPConfig, CLIPModel, CLIPTokenizer, PreTrainedModel, SiglipConfig, SiglipModel

from vlmrm.reward.preprocessing import ImageSpec

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
SIGLIP_MEAN = (0.5, 0.5, 0.5)
SIGLIP_STD = (0.5, 0.5, 0.5)


def _clip(vision: dict[str, Any], text: dict[str, Any], projection_dim: int) -> dict[str, Any]:
    return {"family": "clip", "vision": vision, "text": text, "projection_dim": projection_dim}


def _vit(width: int, layers: int, heads: int, patch: int, image: int = 224) -> dict[str, Any]:
    return {
        "hidden_size": width,
        "intermediate_size": 4 * width,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "patch_size": patch,
        "image_size": image,
    }


def _text(width: int, layers: int, heads: int, mlp: int | None = None) -> dict[str, Any]:
    return {
        "hidden_size": width,
        "intermediate_size": mlp or 4 * width,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
    }


# Architectures of public checkpoints (transformers naming), from their published configs.
RANDOM_ARCHITECTURES: dict[str, dict[str, Any]] = {
    # 64-pixel frames: a smoke run renders and preprocesses 12x fewer pixels than at 224.
    "tiny-random": _clip(
        {**_vit(32, 2, 2, 16, image=64), "intermediate_size": 64},
        {**_text(32, 2, 2), "intermediate_size": 64, "vocab_size": 1000},
        16,
    ),
    "openai/clip-vit-base-patch32": _clip(_vit(768, 12, 12, 32), _text(512, 12, 8), 512),
    "openai/clip-vit-base-patch16": _clip(_vit(768, 12, 12, 16), _text(512, 12, 8), 512),
    "openai/clip-vit-large-patch14": _clip(_vit(1024, 24, 16, 14), _text(768, 12, 12), 768),
    "laion/CLIP-ViT-H-14-laion2B-s32B-b79K": _clip(
        {**_vit(1280, 32, 16, 14), "intermediate_size": 5120}, _text(1024, 24, 16), 1024
    ),
    "laion/CLIP-ViT-bigG-14-laion2B-39B-b160k": _clip(
        {**_vit(1664, 48, 16, 14), "intermediate_size": 8192}, _text(1280, 32, 20), 1280
    ),
    "google/siglip-base-patch16-224": {
        "family": "siglip",
        "vision": _vit(768, 12, 12, 16),
        "text": {**_text(768, 12, 12), "vocab_size": 32000, "max_position_embeddings": 64},
    },
}


def byte_level_tokenizer() -> CLIPTokenizer:
    """A CLIP tokenizer over single bytes (no merges), built in memory with no download.

    Every string tokenizes, so random models accept any prompt; ids stay below 514.
    """
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab: dict[str, int] = {}
    for symbol in alphabet:
        vocab[symbol] = len(vocab)
    for symbol in alphabet:
        vocab[symbol + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def build_random_model(name: str, seed: int = 0) -> tuple[PreTrainedModel, CLIPTokenizer, ImageSpec, str]:
    """Build ``(model, tokenizer, image_spec, family)`` for a name in :data:`RANDOM_ARCHITECTURES`."""
    arch = RANDOM_ARCHITECTURES[name]
    tokenizer = byte_level_tokenizer()
    special = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    text = {"max_position_embeddings": 77, **arch["text"], **special}
    vision = arch["vision"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if arch["family"] == "siglip":
            model: PreTrainedModel = SiglipModel(SiglipConfig(text_config=text, vision_config=vision))
            spec = ImageSpec(vision["image_size"], SIGLIP_MEAN, SIGLIP_STD, "squash")
        else:
            config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=arch["projection_dim"])
            model = CLIPModel(config)
            spec = ImageSpec(vision["image_size"], CLIP_MEAN, CLIP_STD, "shortest_edge")
    tokenizer.model_max_length = text["max_position_embeddings"]
    return model.eval(), tokenizer, spec, arch["family"]
