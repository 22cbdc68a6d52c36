"""Geometric shapes and symbols: the broad family (the control task plays ImageNet's role)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..render import (
    COLOUR_RGB,
    alpha_from_sdf,
    finish,
    jitter_colour,
    local_coords,
    paint,
    pick_colour_pairs,
    sd_box,
    sd_circle,
    sd_convex,
    sd_polygon,
    sd_star,
)
from .backgrounds import BACKGROUNDS, render_backgrounds

Sdf = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _heart(u, v):
    lobes = np.minimum(sd_circle(u + 0.42, v + 0.3, 0.48), sd_circle(u - 0.42, v + 0.3, 0.48))
    return np.minimum(lobes, sd_convex(u, v, [(-0.86, -0.1), (0.86, -0.1), (0.0, 0.95)]))


def _arrow(u, v):
    shaft = sd_box(u + 0.35, v, 0.55, 0.2)
    return np.minimum(shaft, sd_convex(u, v, [(0.1, -0.65), (0.1, 0.65), (0.95, 0.0)]))


SHAPE_SDFS: dict[str, Sdf] = {
    "circle": lambda u, v: sd_circle(u, v, 0.9),
    "square": lambda u, v: sd_box(u, v, 0.75, 0.75),
    "rectangle": lambda u, v: sd_box(u, v, 0.95, 0.48),
    "triangle": lambda u, v: sd_polygon(u, v - 0.2, 3, 1.05),
    "pentagon": lambda u, v: sd_polygon(u, v, 5, 0.95),
    "hexagon": lambda u, v: sd_polygon(u, v, 6, 0.95),
    "octagon": lambda u, v: sd_polygon(u, v, 8, 0.95, rotation=np.pi / 8),
    "star": lambda u, v: sd_star(u, v, 5, 0.42),
    "heart": _heart,
    "cross": lambda u, v: np.minimum(sd_box(u, v, 0.9, 0.28), sd_box(u, v, 0.28, 0.9)),
    "ring": lambda u, v: np.abs(np.hypot(u, v) - 0.7) - 0.2,
    "diamond": lambda u, v: sd_polygon(u, v, 4, 1.0),
    "crescent": lambda u, v: np.maximum(sd_circle(u, v, 0.9), -sd_circle(u - 0.45, v - 0.1, 0.75)),
    "arrow": _arrow,
    "ellipse": lambda u, v: (np.hypot(u / 0.95, v / 0.55) - 1) * 0.55,
    "semicircle": lambda u, v: np.maximum(sd_circle(u, v - 0.35, 0.95), v - 0.35),
}
SHAPES = tuple(SHAPE_SDFS)
SIZE_WORDS = ("small", "large")
PLACES = ("in the middle", "on the left", "on the right", "at the top", "at the bottom")


@dataclass(frozen=True)
class ShapeStyle:
    scale: tuple[float, float]
    max_rotation: float
    max_offset: float
    outline_prob: float
    background_probs: tuple[float, ...]
    clutter: int
    noise: float
    blur: float


def shape_alpha(names: list[str], cx, cy, scale, angle, outline: np.ndarray) -> np.ndarray:
    """Coverage of named shapes at per-image poses; outlined shapes keep only a band at the edge."""
    u, v = local_coords(cx, cy, scale, angle)
    out = np.zeros(u.shape)
    for name in sorted(set(names)):
        idx = np.array([i for i, s in enumerate(names) if s == name])
        sdf = SHAPE_SDFS[name](u[idx], v[idx])
        sdf = np.where(outline[idx][:, None, None], np.abs(sdf) - 0.13, sdf)
        out[idx] = alpha_from_sdf(sdf, np.asarray(scale)[idx])
    return out


def render_shapes(rng: np.random.Generator, labels: np.ndarray, style: ShapeStyle) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    n = len(labels)
    fg, bg = pick_colour_pairs(rng, n, min_contrast=0.2)
    kinds = rng.choice(len(BACKGROUNDS), n, p=style.background_probs)
    img = render_backgrounds(rng, COLOUR_RGB[bg], kinds, style.clutter)
    scale = rng.uniform(*style.scale, n)
    cx = rng.uniform(-style.max_offset, style.max_offset, n)
    cy = rng.uniform(-style.max_offset, style.max_offset, n)
    angle = rng.uniform(-style.max_rotation, style.max_rotation, n)
    outline = rng.random(n) < style.outline_prob
    alpha = shape_alpha([SHAPES[k] for k in labels], cx, cy, scale, angle, outline)
    img = paint(img, alpha, jitter_colour(rng, COLOUR_RGB[fg], 0.12))
    attrs = {"fg": fg, "bg": bg, "background": kinds, "outline": outline, "size": (scale > np.mean(style.scale)).astype(int), "place": _place(cx, cy)}
    return finish(img, rng, style.noise, style.blur), attrs


def _place(cx: np.ndarray, cy: np.ndarray) -> np.ndarray:
    """Index into PLACES: the dominant offset direction, or the middle when the offset is small."""
    place = np.zeros(len(cx), dtype=int)
    horiz = np.abs(cx) >= np.abs(cy)
    far = np.maximum(np.abs(cx), np.abs(cy)) > 0.25
    place[far & horiz & (cx < 0)] = 1
    place[far & horiz & (cx >= 0)] = 2
    place[far & ~horiz & (cy < 0)] = 3
    place[far & ~horiz & (cy >= 0)] = 4
    return place
