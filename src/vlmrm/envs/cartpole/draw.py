"""CartPole's picture: where the cart, pole and axle lie (for one state or a batch) and the Pillow renderer.

The batched renderer (:class:`vlmrm.envs.cartpole.vector.CartPoleFrames`) draws the shapes
:func:`cartpole_shapes` places, so both draw the same frames.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw

from vlmrm.envs.classic import SUPERSAMPLE, Number, Point, finish_frame, trig

CART_RGB = (0, 0, 0)
POLE_RGB = (202, 152, 101)
AXLE_RGB = (129, 132, 203)


class CartPoleShapes(NamedTuple):
    """CartPole's moving shapes on a canvas, for one state (floats) or a batch (arrays).

    Attributes:
        cart: the cart's box ``(x0, y0, x1, y1)``.
        pole: the pole's four corners (a rotated rectangle), ``(x, y)`` each.
        axle: the axle's bounding box ``(x0, y0, x1, y1)`` (a circle).
    """

    cart: tuple[Number, Number, Number, Number]
    pole: tuple[Point, Point, Point, Point]
    axle: tuple[Number, Number, Number, Number]


def cartpole_shapes(
    x: Number, theta: Number, canvas: int, x_threshold: float = 2.4, pole_length: float = 0.5
) -> CartPoleShapes:
    """Place the cart at position ``x`` with the pole at angle ``theta`` (``theta > 0`` leans right, as in
    Gymnasium) on a ``canvas`` x ``canvas`` picture whose width holds the whole track. Floats or arrays
    (the same float64 arithmetic either way)."""
    scale = canvas / (2 * x_threshold)  # pixels per metre: the whole track fits the frame
    track_y = canvas * 0.62
    cart_w, cart_h = 0.5 * scale, 0.3 * scale
    pole_w, pole_len = 0.1 * scale, 2 * pole_length * scale
    cart_x = x * scale + canvas / 2
    cart = (cart_x - cart_w / 2, track_y - cart_h / 2, cart_x + cart_w / 2, track_y + cart_h / 2)
    axle_y = track_y - cart_h / 4
    tr = trig(theta)
    cos, sin = tr.cos(theta), tr.sin(theta)
    corners = [(-pole_w / 2, 0.0), (-pole_w / 2, pole_len), (pole_w / 2, pole_len), (pole_w / 2, 0.0)]
    pole = tuple((cart_x + cx * cos + cy * sin, axle_y + cx * sin - cy * cos) for cx, cy in corners)
    r = pole_w / 2
    return CartPoleShapes(cart, pole, (cart_x - r, axle_y - r, cart_x + r, axle_y + r))  # type: ignore[arg-type]


def _cartpole_canvas(canvas: int) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    """A new CartPole canvas with its static part (white, the track line) drawn: drawing it is as fast as
    copying it."""
    image = Image.new("RGB", (canvas, canvas), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    track_y = canvas * 0.62
    draw.line([(0, track_y), (canvas, track_y)], fill=(0, 0, 0), width=max(1, SUPERSAMPLE))
    return image, draw


@lru_cache(maxsize=8)
def cartpole_background(canvas: int) -> np.ndarray:
    """The static part of a CartPole canvas: ``(canvas, canvas, 3)`` uint8, read-only."""
    background = np.asarray(_cartpole_canvas(canvas)[0], dtype=np.uint8)
    background.flags.writeable = False
    return background


def render_cartpole(state: np.ndarray, size: int, x_threshold: float = 2.4, pole_length: float = 0.5) -> np.ndarray:
    """Draw a CartPole state ``(x, x_dot, theta, theta_dot)`` as a ``(size, size, 3)`` frame."""
    canvas = size * SUPERSAMPLE
    image, draw = _cartpole_canvas(canvas)
    shapes = cartpole_shapes(float(state[0]), float(state[2]), canvas, x_threshold, pole_length)
    draw.rectangle(shapes.cart, fill=CART_RGB)
    draw.polygon(shapes.pole, fill=POLE_RGB)
    draw.ellipse(shapes.axle, fill=AXLE_RGB)
    return finish_frame(image, size)
