"""Traffic signs (GTSRB's role): a plate shape, a border, and a symbol or number inside.

Pretraining shows large, frontal signs on plain backgrounds; the task shows them smaller, tilted,
squashed by perspective, on street-like backgrounds in poor light.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..glyphs import pixel_glyph_alpha
from ..render import COLOURS, alpha_from_sdf, finish, local_coords, paint, sample_bitmaps, sd_box, sd_convex, sd_polygon
from .backgrounds import BACKGROUNDS, render_backgrounds
from .shapes import SHAPE_SDFS

# name -> (plate, plate colour, border colour, symbol, symbol colour)
SIGNS: dict[str, tuple[str, str, str, str, str]] = {
    "stop": ("octagon", "red", "white", "bar", "white"),
    "yield": ("inverted triangle", "white", "red", "none", "white"),
    "no entry": ("circle", "red", "red", "bar", "white"),
    "speed limit 30": ("circle", "white", "red", "30", "black"),
    "speed limit 50": ("circle", "white", "red", "50", "black"),
    "speed limit 80": ("circle", "white", "red", "80", "black"),
    "turn left": ("circle", "blue", "white", "arrow left", "white"),
    "turn right": ("circle", "blue", "white", "arrow right", "white"),
    "ahead only": ("circle", "blue", "white", "arrow up", "white"),
    "general caution": ("triangle", "white", "red", "!", "black"),
    "priority road": ("diamond", "yellow", "white", "none", "yellow"),
    "parking": ("square", "blue", "white", "P", "white"),
}
SIGN_NAMES = tuple(SIGNS)

# Words a caption can use to describe a sign without naming it.
PLATE_WORDS = {
    "octagon": "octagonal",
    "inverted triangle": "upside-down triangular",
    "circle": "round",
    "triangle": "triangular",
    "diamond": "diamond-shaped",
    "square": "square",
}
SYMBOL_WORDS = {
    "bar": "a white bar",
    "none": "nothing",
    "30": "the number 30",
    "50": "the number 50",
    "80": "the number 80",
    "arrow left": "an arrow pointing left",
    "arrow right": "an arrow pointing right",
    "arrow up": "an arrow pointing up",
    "!": "an exclamation mark",
    "P": "the letter P",
}


@dataclass(frozen=True)
class SignStyle:
    scale: tuple[float, float]
    max_rotation: float
    max_squash: float  # horizontal foreshortening, a cheap stand-in for perspective
    max_offset: float
    background_probs: tuple[float, ...]
    clutter: int
    light: tuple[float, float]  # brightness multiplier
    noise: float
    blur: float


def _plate_sdf(plate: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    if plate == "inverted triangle":
        return sd_polygon(u, -v - 0.2, 3, 1.05)
    if plate == "square":
        return sd_box(u, v, 0.85, 0.85)
    return SHAPE_SDFS[plate](u, v)


def _symbol_alpha(symbol: str, u: np.ndarray, v: np.ndarray, scale: np.ndarray, n: int) -> np.ndarray:
    if symbol == "none":
        return np.zeros(u.shape)
    if symbol == "bar":
        return alpha_from_sdf(sd_box(u, v, 0.6, 0.17), scale)
    if symbol.startswith("arrow"):
        direction = {"arrow left": np.pi, "arrow right": 0.0, "arrow up": -np.pi / 2}[symbol]
        c, s = np.cos(direction), np.sin(direction)
        ru, rv = c * u + s * v, -s * u + c * v
        shaft = sd_box(ru + 0.2, rv, 0.4, 0.13)
        head = sd_convex(ru, rv, [(0.1, -0.45), (0.1, 0.45), (0.62, 0.0)])
        return alpha_from_sdf(np.minimum(shaft, head), scale)
    zeros = np.zeros(n)
    if len(symbol) == 2:
        # Two characters side by side, each 0.32 of the plate's half-width.
        left = pixel_glyph_alpha([symbol[0]] * n, zeros, zeros, np.full(n, 0.4), zeros, np.full(n, 0.4))
        right = pixel_glyph_alpha([symbol[1]] * n, zeros, zeros, np.full(n, 0.4), zeros, np.full(n, 0.4))
        return np.maximum(_warp(left, u, v, -0.3), _warp(right, u, v, 0.3))
    single = pixel_glyph_alpha([symbol] * n, zeros, zeros, np.full(n, 0.55), zeros, np.full(n, 0.4))
    offset = 0.12 if symbol == "!" else 0.0
    return _warp(single, u, v - offset, 0.0)


def _warp(glyph: np.ndarray, u: np.ndarray, v: np.ndarray, du: float) -> np.ndarray:
    """Look a canvas-centred glyph up at object coordinates (so it follows the sign's pose)."""
    return sample_bitmaps(glyph, u - du, v)


def render_signs(rng: np.random.Generator, labels: np.ndarray, style: SignStyle) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    n = len(labels)
    bg_colour = np.array([COLOURS["gray"], COLOURS["green"], COLOURS["blue"], COLOURS["brown"], COLOURS["white"]])
    bg = rng.integers(0, len(bg_colour), n)
    kinds = rng.choice(len(BACKGROUNDS), n, p=style.background_probs)
    img = render_backgrounds(rng, bg_colour[bg] * 0.8 + 0.1, kinds, style.clutter)
    scale = rng.uniform(*style.scale, n)
    cx = rng.uniform(-style.max_offset, style.max_offset, n)
    cy = rng.uniform(-style.max_offset, style.max_offset, n)
    angle = rng.uniform(-style.max_rotation, style.max_rotation, n)
    squash = 1.0 - rng.uniform(0.0, style.max_squash, n)
    u, v = local_coords(cx, cy, scale, angle)
    u = u / squash[:, None, None]
    for k in np.unique(labels):
        idx = np.where(labels == k)[0]
        plate, plate_c, border_c, symbol, symbol_c = SIGNS[SIGN_NAMES[k]]
        su, sv, sc = u[idx], v[idx], scale[idx]
        sdf = _plate_sdf(plate, su, sv)
        img[idx] = paint(img[idx], alpha_from_sdf(sdf, sc), np.tile(COLOURS[border_c], (len(idx), 1)))
        inner = 0.2 if border_c != plate_c else 0.0
        img[idx] = paint(img[idx], alpha_from_sdf(sdf + inner, sc), np.tile(COLOURS[plate_c], (len(idx), 1)))
        img[idx] = paint(img[idx], _symbol_alpha(symbol, su, sv, sc, len(idx)), np.tile(COLOURS[symbol_c], (len(idx), 1)))
    light = rng.uniform(*style.light, n)[:, None, None, None]
    return finish(img * light, rng, style.noise, style.blur), {"background": kinds}
