"""Frame preprocessing with tensor ops."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from vlmrm.reward import FramePreprocessor, ImageSpec

SPEC = ImageSpec(8, (0.5, 0.25, 0.0), (0.5, 0.5, 1.0), "shortest_edge")


def test_matching_size_is_only_normalised() -> None:
    frames = np.random.default_rng(0).integers(0, 256, size=(2, 8, 8, 3), dtype=np.uint8)
    out = FramePreprocessor(SPEC, torch.device("cpu"), torch.float32)(frames)
    expected = (frames.transpose(0, 3, 1, 2) / 255.0 - np.array(SPEC.mean)[:, None, None]) / np.array(SPEC.std)[
        :, None, None
    ]
    assert out.shape == (2, 3, 8, 8) and out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-6)


def test_shortest_edge_resize_then_centre_crop() -> None:
    # 8 rows x 24 columns: left third red, middle green, right third blue. The crop keeps the middle.
    frame = np.zeros((1, 8, 24, 3), np.uint8)
    frame[:, :, :8, 0] = 255
    frame[:, :, 8:16, 1] = 255
    frame[:, :, 16:, 2] = 255
    spec = ImageSpec(8, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), "shortest_edge")
    out = FramePreprocessor(spec, torch.device("cpu"), torch.float32)(frame)
    assert out.shape == (1, 3, 8, 8)
    np.testing.assert_allclose(out[0, :, :, 2:6].mean(dim=(1, 2)).numpy(), [0.0, 1.0, 0.0], atol=1e-6)


def test_squash_keeps_the_whole_frame() -> None:
    frame = np.zeros((1, 8, 24, 3), np.uint8)
    frame[:, :, :8, 0] = 255
    spec = ImageSpec(8, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), "squash")
    out = FramePreprocessor(spec, torch.device("cpu"), torch.float32)(frame)
    assert out[0, 0, :, 0].min().item() > 0.9  # the red left third survives a squash, not a centre crop


def test_bicubic_overshoot_is_clipped_and_dtype_applied() -> None:
    frame = np.zeros((1, 5, 5, 3), np.uint8)
    frame[:, 2, 2] = 255
    spec = ImageSpec(16, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), "squash")
    out = FramePreprocessor(spec, torch.device("cpu"), torch.bfloat16)(frame)
    assert out.dtype == torch.bfloat16
    assert out.float().min().item() >= 0.0 and out.float().max().item() <= 1.0


def test_rejects_bad_frames() -> None:
    pre = FramePreprocessor(SPEC, torch.device("cpu"), torch.float32)
    with pytest.raises(ValueError, match="uint8"):
        pre(np.zeros((1, 8, 8, 3), np.float64))


def test_read_only_frames_are_taken_without_a_warning() -> None:
    """Renderers may hand out read-only frames (their own buffer); torch warns on each unless they are copied."""
    from vlmrm.reward.preprocessing import frames_to_tensor

    frames = np.random.default_rng(0).integers(0, 256, (2, 4, 4, 3), dtype=np.uint8)
    frames.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tensor = frames_to_tensor(frames)
    assert torch.equal(tensor, torch.from_numpy(frames.copy()))
    writable = np.zeros((1, 4, 4, 3), np.uint8)
    assert frames_to_tensor(writable).data_ptr() == torch.from_numpy(writable).data_ptr()  # no copy when writable
