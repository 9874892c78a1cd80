"""The Humanoid scene: Gymnasium's ``humanoid.xml`` with a realistic look made in this project.

The physics is untouched: only visual elements change (materials, textures, lights, sky). The
textured scene has

* a gradient skybox (MuJoCo's builtin ``gradient`` texture) that fades into a light haze at the
  horizon,
* an infinite floor of large stone tiles, drawn here with numpy (grout lines, per-tile shade,
  smooth periodic noise) and rendered without reflections,
* a light, brushed-metal body (a procedural cube texture with high specular shininess),
* a sun that follows the humanoid so its shadow is always in view, plus a soft headlight.

Nothing is read from image files: the textures are PNG bytes generated in memory and handed to
MuJoCo as assets, so no temporary files are written and worker processes build the same scene.
"""

from __future__ import annotations

import functools
import io
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from PIL import Image

FLOOR_TILES_PER_TEXTURE = 4
"""The floor texture holds 4 x 4 tiles."""
FLOOR_TEXTURE_METRES = 2.0
"""One floor texture covers 2 m x 2 m, so a tile is 0.5 m and the floor repeats every 2 m."""

SKY_TOP_RGB = (0.30, 0.52, 0.85)
SKY_HORIZON_RGB = (0.86, 0.91, 0.97)


def gymnasium_humanoid_xml_path() -> Path:
    """The path of Gymnasium's ``humanoid.xml`` (the model Humanoid-v5 loads)."""
    import gymnasium.envs.mujoco

    return Path(gymnasium.envs.mujoco.__file__).parent / "assets" / "humanoid.xml"


def _periodic_noise(size: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth noise in [-1, 1] that tiles seamlessly: white noise low-pass filtered in Fourier space.

    ``scale`` is the feature size in pixels.
    """
    white = rng.standard_normal((size, size))
    freq = np.fft.fftfreq(size)
    radius2 = freq[:, None] ** 2 + freq[None, :] ** 2
    smooth = np.real(np.fft.ifft2(np.fft.fft2(white) * np.exp(-radius2 * (scale * np.pi) ** 2)))
    smooth -= smooth.mean()
    return smooth / (np.abs(smooth).max() + 1e-12)


def _png_bytes(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8), "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


@functools.lru_cache(maxsize=1)
def floor_texture_png(size: int = 512, seed: int = 7) -> bytes:
    """A seamless texture of 4 x 4 light stone tiles with dark grout, as PNG bytes.

    Each tile gets its own slight shade and a warm/cool tint; two octaves of periodic noise give
    the stone a mottled surface; tile edges are darkened a little (a bevel) next to the grout.
    """
    rng = np.random.default_rng(seed)
    tiles = FLOOR_TILES_PER_TEXTURE
    tile = size // tiles
    base = np.array([0.66, 0.64, 0.60])
    grout = np.array([0.33, 0.32, 0.30])
    shade = 1.0 + 0.07 * rng.uniform(-1, 1, (tiles, tiles))
    tint = 0.02 * rng.uniform(-1, 1, (tiles, tiles))
    ys, xs = np.mgrid[0:size, 0:size]
    ty, tx = ys // tile, xs // tile
    noise = 0.05 * _periodic_noise(size, 24.0, rng) + 0.025 * _periodic_noise(size, 3.0, rng)
    rgb = base[None, None, :] * shade[ty, tx][..., None] * (1.0 + noise[..., None])
    rgb[..., 0] += tint[ty, tx]
    rgb[..., 2] -= tint[ty, tx]
    # Distance (pixels) to the nearest tile edge; the grout straddles the edges so the texture tiles.
    edge = np.minimum(np.minimum(ys % tile, tile - 1 - ys % tile), np.minimum(xs % tile, tile - 1 - xs % tile))
    bevel = np.clip(edge / 6.0, 0.0, 1.0) ** 0.5
    rgb *= (0.88 + 0.12 * bevel)[..., None]
    rgb = np.where((edge < 2)[..., None], grout[None, None, :] * (1.0 + noise[..., None]), rgb)
    return _png_bytes(rgb)


@functools.lru_cache(maxsize=1)
def metal_texture_png(size: int = 256, seed: int = 11) -> bytes:
    """A light brushed-metal texture (fine streaks along one axis), as PNG bytes.

    Used as a cube texture so every body part gets the same subtle grain.
    """
    rng = np.random.default_rng(seed)
    streaks = rng.standard_normal(size)
    streaks = np.convolve(np.tile(streaks, 3), np.ones(3) / 3, mode="same")[size : 2 * size]
    grain = 0.025 * streaks[:, None] / np.abs(streaks).max() + 0.015 * _periodic_noise(size, 8.0, rng)
    base = np.array([0.80, 0.82, 0.85])
    rgb = base[None, None, :] * (1.0 + np.broadcast_to(grain, (size, size))[..., None])
    return _png_bytes(rgb)


def _set(element: ET.Element, **attributes: object) -> ET.Element:
    for key, value in attributes.items():
        element.set(key, str(value))
    return element


def _fmt(values: tuple[float, ...]) -> str:
    return " ".join(f"{v:g}" for v in values)


def _child(parent: ET.Element, tag: str) -> ET.Element:
    """The first child ``tag`` of ``parent``, created if missing."""
    child = parent.find(tag)
    return ET.SubElement(parent, tag) if child is None else child


def build_humanoid_xml(
    textured: bool = True, offscreen_size: int = 224, antialiasing: bool = True
) -> tuple[str, dict[str, bytes]]:
    """Gymnasium's humanoid model as an XML string plus the asset files it refers to.

    Args:
        textured: build the realistic scene described in this module. When ``False`` the model
            keeps Gymnasium's look (checker floor, brown body).
        offscreen_size: the offscreen framebuffer's width and height: the frame size.
        antialiasing: 4x multisampling of the offscreen buffer (MuJoCo's default). Without it,
            edges are jagged but software (CPU) rendering is 2-3 times faster.

    Returns:
        ``(xml, assets)`` for ``mujoco.MjModel.from_xml_string(xml, assets)``.
    """
    root = ET.parse(gymnasium_humanoid_xml_path()).getroot()
    visual = _child(root, "visual")
    _set(_child(visual, "global"), offwidth=offscreen_size, offheight=offscreen_size)
    quality = _set(_child(visual, "quality"), offsamples=4 if antialiasing else 0)
    assets: dict[str, bytes] = {}
    if not textured:
        return ET.tostring(root, encoding="unicode"), assets

    # A 1024 px shadow map looks the same as MuJoCo's 4096 at these frame sizes and renders faster.
    _set(quality, shadowsize=1024)
    # Haze at the horizon blends the infinite floor into the sky.
    _set(_child(visual, "map"), znear=0.01, zfar=60, haze=0.6, shadowclip=2.0)
    _set(_child(visual, "rgba"), haze=_fmt((*SKY_HORIZON_RGB, 1.0)))
    _set(_child(visual, "headlight"), ambient=".32 .32 .34", diffuse=".38 .38 .38", specular=".15 .15 .15")

    # Assets: replace Gymnasium's textures and materials.
    asset = root.find("asset")
    assert asset is not None
    for child in list(asset):
        asset.remove(child)
    assets["floor_tiles.png"] = floor_texture_png()
    assets["brushed_metal.png"] = metal_texture_png()
    ET.SubElement(
        asset,
        "texture",
        name="sky",
        type="skybox",
        builtin="gradient",
        rgb1=_fmt(SKY_TOP_RGB),
        rgb2=_fmt(SKY_HORIZON_RGB),
        width="256",
        height="1536",  # six 256 x 256 faces
    )
    ET.SubElement(asset, "texture", name="floor_tiles", type="2d", file="floor_tiles.png")
    ET.SubElement(asset, "texture", name="brushed_metal", type="cube", file="brushed_metal.png")
    # With texuniform, MuJoCo maps a plane's texture once per 2 m at texrepeat 1.
    repeat = 2.0 / FLOOR_TEXTURE_METRES
    ET.SubElement(
        asset,
        "material",
        name="floor",
        texture="floor_tiles",
        texrepeat=f"{repeat:g} {repeat:g}",
        texuniform="true",
        reflectance="0",
        specular="0.15",
        shininess="0.1",
    )
    ET.SubElement(
        asset,
        "material",
        name="geom",
        texture="brushed_metal",
        texuniform="true",
        rgba="0.78 0.8 0.84 1",
        specular="1",
        shininess="0.85",
        reflectance="0",
    )
    # The geom default colour would override the material's; drop it.
    default_geom = root.find("default/geom")
    if default_geom is not None:
        default_geom.attrib.pop("rgba", None)

    worldbody = root.find("worldbody")
    assert worldbody is not None
    for light in worldbody.findall("light"):
        worldbody.remove(light)
    floor = worldbody.find("geom[@name='floor']")
    assert floor is not None
    floor.attrib.pop("rgba", None)
    _set(floor, material="floor", size="0 0 0.125")
    torso = worldbody.find("body[@name='torso']")
    assert torso is not None
    # The sun follows the humanoid (mode trackcom), so its shadow stays in the frame.
    ET.SubElement(
        torso,
        "light",
        name="sun",
        mode="trackcom",
        directional="true",
        castshadow="true",
        pos="3 -2 4",
        dir="-0.6 0.4 -1",
        diffuse=".75 .73 .70",
        specular=".4 .4 .4",
        ambient=".05 .05 .06",
    )
    return ET.tostring(root, encoding="unicode"), assets
