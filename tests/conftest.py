"""Shared fixtures: offline hub, a deterministic test embedder, and a tiny env whose frames encode the step."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import warnings

import pytest

# No test may touch the network: hub look-ups fail at once instead of retrying for half a minute.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("MUJOCO_GL", "egl")
# dtype="auto" on a CPU remembers its timings in the cache folder: never the user's (subprocesses inherit this).
os.environ["VLMRM_CACHE_DIR"] = tempfile.mkdtemp(prefix="vlmrm-test-cache-")

from vlmrm.testing import ColorEmbedder

atexit.register(shutil.rmtree, os.environ["VLMRM_CACHE_DIR"], ignore_errors=True)


@pytest.fixture
def color_embedder() -> ColorEmbedder:
    return ColorEmbedder()


@pytest.fixture
def tiny_reward():
    from vlmrm.reward import VLMReward

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return VLMReward.from_pretrained(
            "tiny-random",
            target_prompts=["pole vertically upright on top of the cart"],
            baseline_prompts=["pole and cart"],
            alpha=0.5,
            dtype="fp32",
        )
