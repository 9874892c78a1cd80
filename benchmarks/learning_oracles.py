"""Oracle rewards computed from the frames alone, for the learning study (:mod:`learning_study`).

They read the picture the way a correct vision-language reward should, never the simulator state,
so a preset that learns from them learns from the same kind of signal (pixels) a CLIP reward gives.
Each is a reward function of the reward contract: uint8 frames ``(N, H, W, 3)`` -> ``N`` rewards.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image

from vlmrm.envs.cartpole.draw import POLE_RGB
from vlmrm.envs.mountaincar.draw import mountaincar_background


def _colour_mask(frames: np.ndarray, rgb: tuple[int, int, int], tolerance: int) -> np.ndarray:
    """``(N, H, W)``: pixels within ``tolerance`` of ``rgb`` in every channel."""
    return np.abs(frames.astype(np.int16) - np.array(rgb, dtype=np.int16)).max(axis=-1) <= tolerance


def cartpole_upright(frames: np.ndarray) -> np.ndarray:
    """CartPole: how upright the pole is, read from the pole's pixels: ``1 - tilt / 90 degrees`` (in [-1, 1]).

    Linear in the tilt, not its cosine: a cosine barely tells 10 degrees (0.98) from upright, so a pole
    held leaning (and failing CartPole-v1's 12-degree rule now and then) would score almost the most.

    The pole's axis is the principal axis of its pixels; it points up when their centroid lies above
    the axle, just above the track (the darkest row across the frame, which the cart sits on).
    1: upright above the cart, 0: horizontal, -1: hanging down, or a pole the frame cuts off (the cart
    at the track's end): what cannot be seen whole is not rewarded.
    """
    frames = np.asarray(frames)
    pole = _colour_mask(frames, POLE_RGB, 40)
    dark = frames.astype(np.int16).sum(axis=-1) < 200
    rewards = np.full(len(frames), -1.0)
    for i in range(len(frames)):
        ys, xs = np.nonzero(pole[i])
        if len(ys) < 2 or xs.min() == 0 or xs.max() == frames.shape[2] - 1 or ys.min() == 0:
            continue  # no pole, or not all of it, to see: the lowest reward
        axle_row = int(np.argmax(dark[i].sum(axis=1))) - frames.shape[1] / 64  # the axle: a quarter cart above
        dy, dx = ys - ys.mean(), xs - xs.mean()
        # The principal axis of the pixels: its angle from the vertical, in [0, pi/2].
        cyy, cxx, cxy = (dy * dy).mean(), (dx * dx).mean(), (dx * dy).mean()
        tilt = 0.5 * np.arctan2(2 * abs(cxy), cyy - cxx)
        tilt = abs(tilt)
        if ys.mean() > axle_row:
            tilt = np.pi - tilt  # below the track: hanging
        rewards[i] = 1 - 2 * tilt / np.pi
    return rewards


@lru_cache(maxsize=4)
def _empty_mountain(size: int) -> np.ndarray:
    """The flat MountainCar scene without the car (the track and the flag) at ``size`` px."""
    canvas = Image.fromarray(mountaincar_background(2 * size))
    return np.asarray(canvas.resize((size, size), Image.Resampling.BOX), dtype=np.int16)


def mountaincar_progress(frames: np.ndarray) -> np.ndarray:
    """MountainCar (flat look): how far right the car is, 0 (left edge) to 1 (right edge).

    The car is what differs from the empty scene; the flag stands at 0.92 of the width, so a car
    held at the flag collects the most.
    """
    frames = np.asarray(frames)
    width = frames.shape[2]
    car = np.abs(frames.astype(np.int16) - _empty_mountain(width)).max(axis=-1) > 60
    rewards = np.zeros(len(frames))
    for i in range(len(frames)):
        xs = np.nonzero(car[i])[1]
        if len(xs):
            rewards[i] = (xs.mean() + 0.5) / width
    return rewards
