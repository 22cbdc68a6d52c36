"""Rendered digits: printed (pixel font) or hand-drawn-looking (jittered stroke font).

Pretraining shows single, centred digits; the house-number task (SVHN's role) adds neighbouring
digits, clutter, blur and noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..glyphs import pixel_glyph_alpha, stroke_glyph_alpha
from ..render import COLOUR_RGB, finish, jitter_colour, paint, pick_colour_pairs
from .backgrounds import BACKGROUNDS, render_backgrounds

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
FONTS = ("printed", "handwritten")


@dataclass(frozen=True)
class DigitStyle:
    font_probs: tuple[float, float]  # printed, handwritten
    scale: tuple[float, float]  # glyph half-height, canvas units
    max_rotation: float  # radians
    max_offset: float
    background_probs: tuple[float, ...]  # over BACKGROUNDS
    neighbours: float  # probability of flanking digits (house numbers)
    clutter: int
    noise: float
    blur: float
    wobble: float


def render_digits(rng: np.random.Generator, labels: np.ndarray, style: DigitStyle) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    n = len(labels)
    fg, bg = pick_colour_pairs(rng, n, min_contrast=0.3)
    kinds = rng.choice(len(BACKGROUNDS), n, p=style.background_probs)
    img = render_backgrounds(rng, COLOUR_RGB[bg], kinds, style.clutter)
    font = rng.choice(len(FONTS), n, p=style.font_probs)
    colour = jitter_colour(rng, COLOUR_RGB[fg], 0.1)
    scale = rng.uniform(*style.scale, n)
    angle = rng.uniform(-style.max_rotation, style.max_rotation, n)
    cx = rng.uniform(-style.max_offset, style.max_offset, n)
    cy = rng.uniform(-style.max_offset, style.max_offset, n)
    chars = [str(d) for d in labels]
    img = paint(img, _glyphs(rng, chars, font, cx, cy, scale, angle, style.wobble), colour)
    flank = rng.random(n) < style.neighbours
    if flank.any():
        # House numbers: the labelled digit is the centred one; its neighbours are cut by the frame.
        for side in (-1.0, 1.0):
            idx = np.where(flank & (rng.random(n) < 0.8))[0]
            if len(idx) == 0:
                continue
            others = [str(d) for d in rng.integers(0, 10, len(idx))]
            gap = scale[idx] * rng.uniform(1.35, 1.6, len(idx))
            alpha = _glyphs(rng, others, font[idx], cx[idx] + side * gap, cy[idx], scale[idx], angle[idx], style.wobble)
            img[idx] = paint(img[idx], alpha, colour[idx])
    return finish(img, rng, style.noise, style.blur), {"fg": fg, "bg": bg, "background": kinds, "font": font, "flank": flank}


def _glyphs(rng, chars, font, cx, cy, scale, angle, wobble) -> np.ndarray:
    alpha = np.zeros((len(chars), 32, 32))
    printed = font == FONTS.index("printed")
    for mask, draw in ((printed, "pixel"), (~printed, "stroke")):
        idx = np.where(mask)[0]
        if len(idx) == 0:
            continue
        sub = [chars[i] for i in idx]
        if draw == "pixel":
            weight = rng.uniform(0.3, 0.6, len(idx))
            alpha[idx] = pixel_glyph_alpha(sub, cx[idx], cy[idx], scale[idx], angle[idx], weight)
        else:
            width = rng.uniform(0.2, 0.35, len(idx))
            alpha[idx] = stroke_glyph_alpha(rng, sub, cx[idx], cy[idx], scale[idx], angle[idx], width, wobble)
    return alpha
