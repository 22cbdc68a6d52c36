"""Backgrounds shared by the object families: plain, gradient, noisy, cluttered.

Which kinds a family draws from, and how strong the clutter is, is a large part of what makes a
downstream task a domain shift from the pretraining corpus.
"""

from __future__ import annotations

import numpy as np

from ..render import COLOUR_RGB, GRID_X, GRID_Y, SIZE, blank, fractal_noise, jitter_colour, local_coords, paint, sd_circle, sd_segments

BACKGROUNDS = ("plain", "gradient", "noisy", "cluttered")

# Caption words for each kind ("on a ... background").
BACKGROUND_WORDS = {"plain": "plain", "gradient": "smooth", "noisy": "noisy", "cluttered": "cluttered"}


def render_backgrounds(rng: np.random.Generator, base: np.ndarray, kinds: np.ndarray, clutter: int = 6) -> np.ndarray:
    """Backgrounds around base colours (N, 3); kinds index BACKGROUNDS per image."""
    n = base.shape[0]
    img = blank(n, jitter_colour(rng, base, 0.1))
    grad = kinds == BACKGROUNDS.index("gradient")
    if grad.any():
        other = COLOUR_RGB[rng.integers(0, len(COLOUR_RGB), grad.sum())] * 0.5 + base[grad] * 0.5
        angle = rng.uniform(0, 2 * np.pi, grad.sum())
        t = (np.cos(angle)[:, None, None] * GRID_X + np.sin(angle)[:, None, None] * GRID_Y + 1.4) / 2.8
        img[grad] = img[grad] * (1 - t[..., None]) + other[:, None, None, :] * t[..., None]
    noisy = kinds == BACKGROUNDS.index("noisy")
    if noisy.any():
        field = fractal_noise(rng, noisy.sum())[..., None] - 0.5
        img[noisy] = np.clip(img[noisy] + field * rng.uniform(0.3, 0.6, (noisy.sum(), 1, 1, 1)), 0, 1)
    busy = kinds == BACKGROUNDS.index("cluttered")
    if busy.any():
        img[busy] = add_clutter(rng, img[busy], clutter)
    return img


def add_clutter(rng: np.random.Generator, img: np.ndarray, count: int) -> np.ndarray:
    """Random blobs and strokes in random colours, drawn everywhere on the canvas."""
    n: int = img.shape[0]
    for _ in range(count):
        colour = jitter_colour(rng, COLOUR_RGB[rng.integers(0, len(COLOUR_RGB), n)], 0.15)
        opacity = rng.uniform(0.3, 0.8, n)[:, None, None]
        if rng.random() < 0.5:
            u, v = local_coords(rng.uniform(-1, 1, n), rng.uniform(-1, 1, n), rng.uniform(0.08, 0.25, n), np.zeros(n))
            alpha = np.clip(0.5 - sd_circle(u, v) * 3, 0, 1)
        else:
            a = rng.uniform(-1.1, 1.1, (n, 1, 2))
            b = a + rng.normal(0, 0.6, (n, 1, 2))
            sdf = sd_segments(np.broadcast_to(GRID_X, (n, SIZE, SIZE)), np.broadcast_to(GRID_Y, (n, SIZE, SIZE)), a, b, rng.uniform(0.02, 0.06, n)[:, None, None])
            alpha = np.clip(0.5 - sdf * SIZE / 2, 0, 1)
        img = paint(img, alpha * opacity, colour)
    return img
