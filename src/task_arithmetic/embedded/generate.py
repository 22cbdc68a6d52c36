"""Deterministic rendering of labelled batches from any family, in cache-friendly chunks."""

from __future__ import annotations

import zlib
from typing import Any, Callable

import numpy as np

from .families.aerial import LAND_USES, render_aerial
from .families.digits import render_digits
from .families.scenes import SCENES, render_scenes
from .families.shapes import SHAPES, render_shapes
from .families.signs import SIGN_NAMES, render_signs
from .families.textures import TEXTURES, render_textures

Renderer = Callable[[np.random.Generator, np.ndarray, Any], tuple[np.ndarray, dict[str, np.ndarray]]]

FAMILIES: dict[str, tuple[Renderer, tuple[str, ...]]] = {
    "digits": (render_digits, tuple(str(d) for d in range(10))),
    "shapes": (render_shapes, SHAPES),
    "signs": (render_signs, SIGN_NAMES),
    "textures": (render_textures, TEXTURES),
    "aerial": (render_aerial, LAND_USES),
    "scenes": (render_scenes, SCENES),
}

# Rendering a few hundred images at a time keeps the float arrays in cache; whole-split arrays
# are several times slower on a small machine.
CHUNK = 256


def stream_seed(*parts: str | int) -> list[int]:
    """A numpy seed sequence entropy from stable parts (Python's hash() is salted per process)."""
    return [zlib.crc32(str(p).encode()) for p in parts]


def balanced_labels(rng: np.random.Generator, n: int, num_classes: int) -> np.ndarray:
    return rng.permutation(np.arange(n) % num_classes)


def render_family(family: str, rng: np.random.Generator, labels: np.ndarray, style: Any,
                  check: Callable[[], None] | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Images (N, 32, 32, 3) uint8 and per-image attributes, rendered chunk by chunk; `check`
    (if given) runs before each chunk and may raise to abandon the work (a stop signal)."""
    render, _ = FAMILIES[family]
    images, attrs = [], []
    for start in range(0, len(labels), CHUNK):
        if check is not None:
            check()
        img, attr = render(rng, labels[start : start + CHUNK], style)
        images.append(img)
        attrs.append(attr)
    merged = {key: np.concatenate([a[key] for a in attrs]) for key in attrs[0]} if attrs else {}
    return (np.concatenate(images) if images else np.zeros((0, 32, 32, 3), np.uint8)), merged
