"""MountainCar's flat look (Gymnasium's): the track, where the car lies (for one position or a batch) and the
Pillow renderer. The textured look is :mod:`vlmrm.envs.mountaincar.textured`, in the same world geometry.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw

from vlmrm.envs.classic import SUPERSAMPLE, Number, Point, finish_frame, trig
from vlmrm.envs.mountaincar.spec import MOUNTAIN_MAX_X, MOUNTAIN_MIN_X

CAR_RGB = (0, 0, 0)
WHEEL_RGB = (128, 128, 128)

MOUNTAIN_BASE = 0.82
"""The fraction of the frame's height at which the track's height 0 is drawn (both looks)."""


def mountain_height(x: float) -> float:
    """The MountainCar track: y = 0.45 sin(3x) + 0.55."""
    return float(np.sin(3 * x) * 0.45 + 0.55)


class MountainCarShapes(NamedTuple):
    """The flat look's car on a canvas, for one position (floats) or a batch (arrays).

    Attributes:
        body: the body's four corners (a rectangle tilted along the slope), ``(x, y)`` each.
        wheels: the bounding boxes ``(x0, y0, x1, y1)`` of the two wheels (circles).
    """

    body: tuple[Point, Point, Point, Point]
    wheels: tuple[tuple[Number, Number, Number, Number], tuple[Number, Number, Number, Number]]


def mountaincar_shapes(position: Number, canvas: int) -> MountainCarShapes:
    """Place the flat look's car at track ``position`` (a float or an array) on a ``canvas`` x ``canvas`` picture."""
    scale = canvas / (MOUNTAIN_MAX_X - MOUNTAIN_MIN_X)
    base = canvas * MOUNTAIN_BASE  # y pixel of height 0
    tr = trig(position)
    angle = tr.atan(tr.cos(3 * position) * 0.45 * 3)
    car_w, car_h, clearance = 0.12 * scale, 0.06 * scale, 0.03 * scale
    cx = (position - MOUNTAIN_MIN_X) * scale
    cy = base - (tr.sin(3 * position) * 0.45 + 0.55) * scale
    cos_a, sin_a = tr.cos(angle), tr.sin(angle)

    def rotate(dx: float, dy: float) -> Point:
        # dy measured upward from the track surface.
        return cx + dx * cos_a - dy * sin_a, cy - (dx * sin_a + dy * cos_a)

    body = (
        rotate(-car_w / 2, clearance),
        rotate(-car_w / 2, clearance + car_h),
        rotate(car_w / 2, clearance + car_h),
        rotate(car_w / 2, clearance),
    )
    wheel_r = clearance * 0.9
    centres = [rotate(dx, clearance) for dx in (-car_w / 4, car_w / 4)]
    wheels = tuple((x - wheel_r, y - wheel_r, x + wheel_r, y + wheel_r) for x, y in centres)
    return MountainCarShapes(body, wheels)  # type: ignore[arg-type]


@lru_cache(maxsize=8)
def _mountaincar_background_image(canvas: int, goal_position: float = 0.45) -> Image.Image:
    image = Image.new("RGB", (canvas, canvas), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    scale = canvas / (MOUNTAIN_MAX_X - MOUNTAIN_MIN_X)
    base = canvas * MOUNTAIN_BASE

    def to_px(x: float, y: float) -> tuple[float, float]:
        return (x - MOUNTAIN_MIN_X) * scale, base - y * scale

    xs = np.linspace(MOUNTAIN_MIN_X, MOUNTAIN_MAX_X, 200)
    draw.line([to_px(x, mountain_height(x)) for x in xs], fill=(0, 0, 0), width=2 * SUPERSAMPLE)
    # Flag at the goal.
    fx, fy = to_px(goal_position, mountain_height(goal_position))
    pole_h = 0.17 * scale
    draw.line([(fx, fy), (fx, fy - pole_h)], fill=(0, 0, 0), width=SUPERSAMPLE)
    draw.polygon(
        [
            (fx, fy - pole_h),
            (fx, fy - pole_h + 0.045 * scale),
            (fx + 0.11 * scale, fy - pole_h + 0.022 * scale),
        ],
        fill=(204, 204, 0),
    )
    return image


def mountaincar_background(canvas: int, goal_position: float = 0.45) -> np.ndarray:
    """The static part of a flat MountainCar canvas (the track, the flag): ``(canvas, canvas, 3)`` uint8."""
    return np.asarray(_mountaincar_background_image(canvas, float(goal_position)), dtype=np.uint8)


def render_mountaincar(position: float, size: int, goal_position: float = 0.45) -> np.ndarray:
    """Draw MountainCar (Gymnasium's flat look) with the car at ``position``."""
    canvas = size * SUPERSAMPLE
    image = _mountaincar_background_image(canvas, float(goal_position)).copy()
    draw = ImageDraw.Draw(image)
    # Car: a body tilted along the slope, with two wheels.
    shapes = mountaincar_shapes(float(position), canvas)
    draw.polygon(shapes.body, fill=CAR_RGB)
    for box in shapes.wheels:
        draw.ellipse(box, fill=WHEEL_RGB)
    return finish_frame(image, size)
