"""A realistic look for MountainCar: sky, distant hills, a grassy hill, a yellow flag, a red car.

Everything is drawn here from procedural noise (no third-party images), in the same world
geometry as :func:`vlmrm.envs.mountaincar.draw.render_mountaincar` (the track spans the frame
width, height 0 sits at 82 % of the frame), so the two looks show the car at the same pixels.

The static scene (sky, hills, terrain, flag) is drawn once per ``(size, goal_position)`` and
cached; a frame then costs one copy of the background plus a rotated, anti-aliased car sprite.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from vlmrm.envs.mountaincar.draw import MOUNTAIN_BASE
from vlmrm.envs.mountaincar.spec import MOUNTAIN_MAX_X, MOUNTAIN_MIN_X

_SEED = 20231017  # textures are the same in every frame and every process

# The car, in world units (the track spans 1.8 units); tall enough to read at 224 pixels.
CAR_LENGTH = 0.19
_SPRITE_SUPERSAMPLE = 4


def _track_height(x: np.ndarray | float) -> np.ndarray | float:
    return np.sin(3 * np.asarray(x)) * 0.45 + 0.55


def _track_slope(x: float) -> float:
    return 0.45 * 3 * math.cos(3 * x)


def _value_noise(rng: np.random.Generator, height: int, width: int, cell: float, stretch: float = 1.0) -> np.ndarray:
    """Smooth noise in about [-1, 1] with features ``cell`` pixels tall and ``stretch`` x as wide."""
    cell_w = cell * stretch
    gh = max(2, math.ceil(height / cell) + 2)
    gw = max(2, math.ceil(width / cell_w) + 2)
    grid = rng.uniform(-1.0, 1.0, size=(gh, gw)).astype(np.float32)
    big = Image.fromarray(grid, mode="F").resize((round(gw * cell_w), round(gh * cell)), Image.Resampling.BICUBIC)
    return np.asarray(big, dtype=np.float32)[:height, :width]


def _fractal_noise(
    rng: np.random.Generator, height: int, width: int, cell: float, octaves: int = 4, stretch: float = 1.0
) -> np.ndarray:
    total = np.zeros((height, width), np.float32)
    amplitude, norm = 1.0, 0.0
    for _ in range(octaves):
        total += amplitude * _value_noise(rng, height, width, max(cell, 1.0), stretch)
        norm += amplitude
        amplitude *= 0.5
        cell /= 2.0
    return total / norm


def _lerp_colour(a: tuple[float, ...], b: tuple[float, ...], t: np.ndarray) -> np.ndarray:
    a_arr, b_arr = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return a_arr + (b_arr - a_arr) * t[..., None]


def textured_background(size: int, goal_position: float = 0.45) -> np.ndarray:
    """The static scene at ``size`` x ``size``: sky, distant hills, the grassy hill and the flag.

    Cached per ``(size, goal_position)``; the returned array is read-only.
    """
    return _cached_background(int(size), float(goal_position))


@lru_cache(maxsize=8)
def _cached_background(size: int, goal_position: float) -> np.ndarray:
    background = _draw_background(size, goal_position)
    background.flags.writeable = False
    return background


def _draw_background(size: int, goal_position: float) -> np.ndarray:
    ss = 2  # draw at twice the size, then box-filter down
    n = size * ss
    rng = np.random.default_rng(_SEED)
    scale = n / (MOUNTAIN_MAX_X - MOUNTAIN_MIN_X)
    base = n * MOUNTAIN_BASE
    rows = np.arange(n, dtype=np.float32)[:, None]
    cols = np.arange(n, dtype=np.float32)[None, :]
    world_x = MOUNTAIN_MIN_X + (cols[0] + 0.5) / scale

    # Sky: deep blue at the top, pale and slightly warm at the horizon.
    t = np.clip(rows / (0.75 * n), 0, 1) ** 0.8
    sky = _lerp_colour((58, 118, 196), (196, 222, 240), np.broadcast_to(t, (n, n)))
    # Clouds: thresholded fractal noise, stretched horizontally, fading towards the horizon.
    cloud_noise = _fractal_noise(rng, n, n, n / 9, octaves=5, stretch=2.5)
    fade = np.clip(1.0 - rows / (0.42 * n), 0, 1)
    cloud = np.clip((cloud_noise + 0.35 * fade - 0.3) * 4.0, 0, 1) * fade
    # Lit from above: a cloud is brightest where the density above it is low.
    below = np.clip((cloud_noise - np.roll(cloud_noise, -int(0.02 * n), axis=0)) * 6, -1, 1)
    cloud_shade = (0.93 + 0.07 * below)[..., None] * np.array([250, 251, 255], np.float32)
    sky = sky * (1 - cloud[..., None]) + cloud_shade * cloud[..., None]
    image = sky

    # Distant hills: two ridges, hazier (bluer, lighter) the further away they are.
    mist = np.asarray((200, 220, 236), np.float32)

    def ridge(level: float, amplitude: float, cell: float, colour: tuple[int, int, int], haze: float, trees: float):
        nonlocal image
        profile = _fractal_noise(rng, 1, n, cell, octaves=5)[0]
        profile = 1.0 - 2.0 * np.abs(profile) if trees == 0 else profile  # sharper peaks for far mountains
        top = base - (level + amplitude * profile) * scale
        below = rows - top[None, :]
        # Forest texture: dark blotches and lighter clearings; mist gathers low in the valley.
        blotch = _fractal_noise(rng, n, n, n / 60, octaves=3)
        col = np.asarray(colour, np.float32) * (1 + trees * 0.35 * blotch[..., None])
        valley_mist = np.clip(below / (0.35 * n), 0, 1)[..., None] * 0.45
        col = col * (1 - haze) + mist * haze
        col = col * (1 - valley_mist) + mist * valley_mist
        soft = np.clip(below / 1.5, 0, 1)[..., None]
        image = image * (1 - soft) + col * soft

    ridge(1.0, 0.22, n / 4, (92, 116, 150), 0.4, trees=0.0)
    ridge(0.78, 0.12, n / 6, (52, 102, 62), 0.18, trees=1.0)

    # The hill: grass on a band along the track, earth with strata and stones below.
    surface = base - np.asarray(_track_height(world_x)) * scale  # pixel row of the track surface per column
    slope = 0.45 * 3 * np.cos(3 * world_x)
    depth = (rows - surface[None, :]) * (1.0 / np.sqrt(1.0 + slope**2))[None, :]  # ~distance below surface
    grass_depth = 0.045 * scale
    grass_jag = grass_depth * (0.85 + 0.35 * _fractal_noise(rng, 1, n, n / 60, octaves=2)[0])
    fine = _fractal_noise(rng, n, n, 3.0 * ss, octaves=2)
    medium = _fractal_noise(rng, n, n, n / 25, octaves=4)

    # Grass: light at the top edge, darker underneath, with blade-like vertical streaks.
    streaks = _value_noise(rng, 1, n * 4, 1.5 * ss)[0][::4]
    g_t = np.clip(depth / grass_depth, 0, 1)
    grass = _lerp_colour((120, 178, 62), (58, 118, 38), g_t)
    grass += (14 * fine + 12 * medium + 10 * streaks[None, :])[..., None] * np.array([0.8, 1.0, 0.5], np.float32)

    # Earth: warm brown with wavy strata parallel to the surface and scattered stones.
    strata = np.sin(depth / (0.035 * scale) * 2 * np.pi + 3 * medium) * 0.5 + 0.5
    earth_t = np.clip(depth / (0.5 * scale), 0, 1)
    earth = _lerp_colour((134, 96, 60), (92, 62, 40), earth_t)
    earth += (16 * fine + 14 * medium)[..., None] + (10 * strata)[..., None] * np.array([1.0, 0.8, 0.6], np.float32)
    stones = np.clip((_fractal_noise(rng, n, n, n / 45, octaves=2) - 0.5) * 5, 0, 1) * 0.5
    earth = earth * (1 - stones[..., None]) + np.array([146, 136, 122], np.float32) * stones[..., None]

    in_ground = np.clip(depth + 0.5, 0, 1)[..., None]  # anti-aliased edge at the surface
    is_grass = np.clip(grass_jag[None, :] - depth, 0, 1)[..., None]
    ground = grass * is_grass + earth * (1 - is_grass)
    # A thin dark line where grass meets earth, and the track edge itself.
    seam = np.exp(-(((depth - grass_jag[None, :]) / (0.004 * scale + 1)) ** 2))[..., None]
    ground = ground * (1 - 0.25 * seam)
    image = image * (1 - in_ground) + ground * in_ground

    canvas = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8), "RGB")
    canvas = canvas.filter(ImageFilter.GaussianBlur(radius=0.35 * ss))
    _draw_flag(canvas, goal_position, scale, base)
    return np.asarray(canvas.resize((size, size), Image.Resampling.BOX), dtype=np.uint8)


def _draw_flag(canvas: Image.Image, goal_position: float, scale: float, base: float) -> None:
    draw = ImageDraw.Draw(canvas)
    fx = (goal_position - MOUNTAIN_MIN_X) * scale
    fy = base - float(_track_height(goal_position)) * scale
    pole_h, pole_w = 0.19 * scale, max(1.5, 0.008 * scale)
    # Pole: light grey with a dark edge, a golden finial on top.
    draw.rectangle([fx - pole_w, fy - pole_h, fx + pole_w, fy + 0.01 * scale], fill=(70, 70, 70))
    draw.rectangle([fx - pole_w * 0.4, fy - pole_h, fx + pole_w * 0.6, fy + 0.01 * scale], fill=(225, 225, 230))
    r = pole_w * 1.6
    draw.ellipse([fx - r, fy - pole_h - 2 * r, fx + r, fy - pole_h], fill=(235, 190, 40), outline=(120, 90, 20))
    # A waving yellow flag: top and bottom edges follow a sine, shaded along the folds.
    flag_w, flag_h = 0.13 * scale, 0.07 * scale
    top = fy - pole_h + 0.005 * scale
    steps = 40
    for i in range(steps):
        u0, u1 = i / steps, (i + 1) / steps
        wave0 = math.sin(u0 * 2.4 * math.pi) * 0.012 * scale * u0
        wave1 = math.sin(u1 * 2.4 * math.pi) * 0.012 * scale * u1
        shade = 0.82 + 0.18 * math.cos(u0 * 2.4 * math.pi)
        colour = (int(250 * shade), int(212 * shade), int(20 * shade))
        x0, x1 = fx + pole_w + u0 * flag_w, fx + pole_w + u1 * flag_w + 0.5
        h0, h1 = flag_h * (1 - 0.15 * u0), flag_h * (1 - 0.15 * u1)
        draw.polygon(
            [(x0, top + wave0), (x1, top + wave1), (x1, top + wave1 + h1), (x0, top + wave0 + h0)], fill=colour
        )


@lru_cache(maxsize=8)
def _car_sprite(size: int) -> tuple[Image.Image, float, float]:
    """The car facing right as RGBA at ``_SPRITE_SUPERSAMPLE`` x the frame scale.

    Returns the sprite and the anchor (the point midway between the tyres' contact points) in
    sprite pixels.
    """
    k = _SPRITE_SUPERSAMPLE
    scale = size * k / (MOUNTAIN_MAX_X - MOUNTAIN_MIN_X)
    length = CAR_LENGTH * scale
    w = math.ceil(length * 1.08) + 4
    h = math.ceil(length * 0.62) + 4
    sprite = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    d = ImageDraw.Draw(sprite)
    x0 = (w - length) / 2
    ground = h - 2.0
    L = length

    def p(u: float, v: float) -> tuple[float, float]:
        """A point at fraction ``u`` of the length from the rear, ``v`` lengths above the ground."""
        return x0 + u * L, ground - v * L

    wheel_r = 0.105 * L
    axle_v = wheel_r / L
    # Lower body (a hatchback profile) in red, with a darker sill.
    body = [
        p(0.02, 0.10), p(0.0, 0.2), p(0.03, 0.31), p(0.2, 0.33), p(0.3, 0.49), p(0.62, 0.5),
        p(0.8, 0.34), p(0.97, 0.30), p(1.0, 0.2), p(0.99, 0.1),
    ]  # fmt: skip
    d.polygon(body, fill=(200, 28, 32, 255), outline=(90, 10, 12, 255), width=max(1, int(0.012 * L)))
    d.polygon([p(0.03, 0.09), p(0.97, 0.09), p(0.98, 0.15), p(0.02, 0.15)], fill=(120, 14, 18, 255))
    # Highlight along the shoulder line.
    d.line([p(0.05, 0.29), p(0.95, 0.28)], fill=(245, 110, 100, 255), width=max(1, int(0.02 * L)))
    # Windows: rear and front, separated by a pillar.
    d.polygon([p(0.24, 0.34), p(0.32, 0.46), p(0.44, 0.465), p(0.44, 0.34)], fill=(150, 196, 226, 255))
    d.polygon([p(0.48, 0.34), p(0.48, 0.465), p(0.6, 0.46), p(0.74, 0.34)], fill=(170, 210, 235, 255))
    # Door line, head- and tail-lights.
    d.line([p(0.46, 0.14), p(0.46, 0.33)], fill=(110, 12, 16, 255), width=max(1, int(0.01 * L)))
    d.ellipse([*p(0.94, 0.27), *p(1.0, 0.21)], fill=(255, 240, 160, 255))
    d.rectangle([*p(0.0, 0.27), *p(0.03, 0.21)], fill=(255, 120, 40, 255))
    # Wheels: black tyres, grey rims, dark hubs.
    for u in (0.2, 0.8):
        cx, cy = p(u, axle_v)
        d.ellipse([cx - wheel_r, cy - wheel_r, cx + wheel_r, cy + wheel_r], fill=(22, 22, 24, 255))
        rr = wheel_r * 0.58
        d.ellipse([cx - rr, cy - rr, cx + rr, cy + rr], fill=(175, 178, 185, 255))
        hr = wheel_r * 0.2
        d.ellipse([cx - hr, cy - hr, cx + hr, cy + hr], fill=(70, 70, 75, 255))
    anchor_x, anchor_y = p(0.5, 0.0)
    return sprite, anchor_x, anchor_y


Affine = tuple[float, float, float, float, float, float]
"""An affine map ``(a, b, c, d, e, f)``: ``(x, y) -> (a x + b y + c, d x + e y + f)``, as Pillow writes one."""


@dataclass(frozen=True)
class CarPlacement:
    """Where the car sprite of one frame goes, as :func:`render_mountaincar_textured` places it.

    The sprite is rotated by ``degrees`` about its centre into an image of ``rotated_size``
    (Pillow's ``rotate(..., expand=True)``, whose inverse affine map is ``matrix``: rotated pixel
    centre -> sprite coordinates), pasted at ``offset`` into a transparent patch of ``patch_size``
    frame pixels (``_SPRITE_SUPERSAMPLE`` times as many patch pixels), which goes to frame pixel
    ``(left, top)``. The batched renderer
    (:class:`vlmrm.envs.mountaincar.vector.TexturedMountainCarFrames`) draws from the same numbers.
    """

    degrees: float
    matrix: Affine
    rotated_size: tuple[int, int]
    offset: tuple[int, int]
    left: int
    top: int
    patch_size: tuple[int, int]


def pillow_rotation(degrees: float, width: int, height: int) -> tuple[Affine, tuple[int, int]]:
    """The inverse affine map and output size of Pillow's ``rotate(degrees, expand=True)`` of a
    ``width`` x ``height`` image (Pillow's own arithmetic, ``PIL.Image.Image.rotate``)."""
    angle = -math.radians(degrees % 360.0)
    a, b, d, e = (
        round(math.cos(angle), 15),
        round(math.sin(angle), 15),
        round(-math.sin(angle), 15),
        round(math.cos(angle), 15),
    )
    cx, cy = width / 2, height / 2
    c, f = a * -cx + b * -cy + 0.0 + cx, d * -cx + e * -cy + 0.0 + cy
    corners = [(0, 0), (width, 0), (width, height), (0, height)]
    xs = [a * x + b * y + c for x, y in corners]
    ys = [d * x + e * y + f for x, y in corners]
    new_w = math.ceil(max(xs)) - math.floor(min(xs))
    new_h = math.ceil(max(ys)) - math.floor(min(ys))
    tx, ty = -(new_w - width) / 2.0, -(new_h - height) / 2.0
    return (a, b, a * tx + b * ty + c, d, e, d * tx + e * ty + f), (new_w, new_h)


def car_placement(position: float, size: int) -> CarPlacement:
    """Where the car goes in a ``size`` frame with the car at track ``position``."""
    k = _SPRITE_SUPERSAMPLE
    sprite, ax, ay = _car_sprite(size)
    angle = math.atan(_track_slope(position))  # counter-clockwise on screen when climbing to the right
    degrees = math.degrees(angle)
    matrix, (rot_w, rot_h) = pillow_rotation(degrees, sprite.width, sprite.height)
    # Where the anchor lands after rotating about the sprite's centre (y points down).
    vx, vy = ax - sprite.width / 2, ay - sprite.height / 2
    cos_a, sin_a = math.cos(angle), math.sin(angle)
    rax = rot_w / 2 + vx * cos_a + vy * sin_a
    ray = rot_h / 2 - vx * sin_a + vy * cos_a
    # Target point on the track, in frame pixels.
    scale = size / (MOUNTAIN_MAX_X - MOUNTAIN_MIN_X)
    tx = (position - MOUNTAIN_MIN_X) * scale
    ty = size * MOUNTAIN_BASE - float(_track_height(position)) * scale
    # A patch aligned to whole frame pixels, so the sub-pixel offset survives the downsampling.
    left = math.floor(tx - rax / k) - 1
    top = math.floor(ty - ray / k) - 1
    patch_size = (math.ceil(rot_w / k) + 3, math.ceil(rot_h / k) + 3)
    offset = (round((tx - left) * k - rax), round((ty - top) * k - ray))
    return CarPlacement(degrees, matrix, (rot_w, rot_h), offset, left, top, patch_size)


def render_mountaincar_textured(position: float, size: int, goal_position: float = 0.45) -> np.ndarray:
    """Draw MountainCar in the realistic look with the car at ``position``: ``(size, size, 3)`` uint8.

    Same signature and geometry as :func:`vlmrm.envs.mountaincar.draw.render_mountaincar`.
    """
    k = _SPRITE_SUPERSAMPLE
    frame = Image.fromarray(textured_background(size, goal_position))
    sprite, _, _ = _car_sprite(size)
    place = car_placement(position, size)
    rotated = sprite.rotate(place.degrees, resample=Image.Resampling.BICUBIC, expand=True)
    assert rotated.size == place.rotated_size
    patch_w, patch_h = place.patch_size
    left, top = place.left, place.top
    patch = Image.new("RGBA", (patch_w * k, patch_h * k), (0, 0, 0, 0))
    patch.alpha_composite(rotated, place.offset)
    # Premultiply before downsampling so transparent pixels do not darken the edges.
    arr = np.asarray(patch, dtype=np.float32)
    alpha = arr[..., 3:4] / 255.0
    premult = np.concatenate([arr[..., :3] * alpha, alpha * 255.0], axis=-1)
    small = premult.reshape(patch_h, k, patch_w, k, 4).mean(axis=(1, 3))
    out = np.array(frame, dtype=np.float32)
    # Clip the patch to the frame.
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + patch_h, size), min(left + patch_w, size)
    if y1 > y0 and x1 > x0:
        part = small[y0 - top : y1 - top, x0 - left : x1 - left]
        a = part[..., 3:4] / 255.0
        out[y0:y1, x0:x1] = part[..., :3] + out[y0:y1, x0:x1] * (1 - a)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
