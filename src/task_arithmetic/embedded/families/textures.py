"""Two-colour procedural textures (DTD's role), named with DTD's vocabulary.

Each texture is an intensity field t(x, y) in [0, 1] mixing two colours. Pretraining shows clean,
upright, mid-frequency patterns; the task rotates, warps and rescales them and lowers contrast.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..render import COLOUR_RGB, GRID_X, GRID_Y, SIZE, finish, fractal_noise, jitter_colour, pick_colour_pairs, smooth_noise

# Lattice-like classes (grid, honeycombed, ...) are left out: at 32 px under rotation and warping
# they are hard to tell from chequered and dotted even for a fine-tuned model.
TEXTURES = ("striped", "chequered", "dotted", "zigzagged", "wavy", "blotchy", "bubbly", "spiralled", "marbled")


@dataclass(frozen=True)
class TextureStyle:
    frequency: tuple[float, float]  # pattern periods per canvas unit
    max_rotation: float
    warp: tuple[float, float]  # amplitude of a smooth displacement of the coordinates
    contrast: tuple[float, float]
    noise: float
    blur: float


def _soft(x: np.ndarray, sharpness: float = 6.0) -> np.ndarray:
    return np.clip(x * sharpness + 0.5, 0.0, 1.0)


def _tri(x: np.ndarray) -> np.ndarray:
    return np.abs(np.mod(x, 1.0) - 0.5) * 4 - 1


def _field(name: str, rng: np.random.Generator, p: np.ndarray, q: np.ndarray, f: np.ndarray) -> np.ndarray:
    n = p.shape[0]
    f = f[:, None, None]
    phase = rng.uniform(0, 1, (n, 1, 1))
    if name == "striped":
        return _soft(np.sin(2 * np.pi * (f * p + phase)), 2.0)
    if name == "chequered":
        return _soft(np.sin(2 * np.pi * (f * p + phase)) * np.sin(2 * np.pi * (f * q + phase)), 4.0)
    if name == "dotted":
        a, b = np.mod(f * p + phase, 1.0) - 0.5, np.mod(f * q + phase, 1.0) - 0.5
        radius = rng.uniform(0.18, 0.3, (n, 1, 1))
        return _soft(radius - np.hypot(a, b), 10.0)
    if name == "zigzagged":
        amp = rng.uniform(0.25, 0.45, (n, 1, 1))
        return _soft(np.sin(2 * np.pi * (f * q + amp * _tri(f * p * 0.8) + phase)), 2.0)
    if name == "wavy":
        amp = rng.uniform(0.25, 0.45, (n, 1, 1))
        return _soft(np.sin(2 * np.pi * (f * q + amp * np.sin(2 * np.pi * f * p * 0.4) + phase)), 2.0)
    if name == "blotchy":
        noise = fractal_noise(rng, n, (3, 5))
        return _soft(noise - rng.uniform(0.4, 0.6, (n, 1, 1)), 5.0)
    if name == "bubbly":
        # Scattered circle outlines of mixed sizes.
        count = 9
        cx, cy = rng.uniform(-1.1, 1.1, (n, count, 1, 1)), rng.uniform(-1.1, 1.1, (n, count, 1, 1))
        radius = rng.uniform(0.12, 0.35, (n, count, 1, 1)) * 2.5 / f[:, None]
        ring = np.abs(np.hypot(p[:, None] - cx, q[:, None] - cy) - radius)
        return _soft(0.05 - ring.min(axis=1), 12.0)
    if name == "spiralled":
        radius, angle = np.hypot(p, q), np.arctan2(q, p)
        arms = rng.integers(1, 4, (n, 1, 1))
        return _soft(np.sin(arms * angle + 2 * np.pi * f * 0.8 * radius), 2.0)
    if name == "marbled":
        turbulence = fractal_noise(rng, n, (2, 4, 8)) * rng.uniform(2.5, 4.0, (n, 1, 1))
        return 0.5 + 0.5 * np.sin(2 * np.pi * (f * 0.5 * p + turbulence))
    raise ValueError(name)


def render_textures(rng: np.random.Generator, labels: np.ndarray, style: TextureStyle) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    n = len(labels)
    c1, c2 = pick_colour_pairs(rng, n, min_contrast=0.3)
    angle = rng.uniform(-style.max_rotation, style.max_rotation, n)[:, None, None]
    warp = rng.uniform(*style.warp, n)[:, None, None]
    x = GRID_X + warp * (smooth_noise(rng, n, 4) - 0.5)
    y = GRID_Y + warp * (smooth_noise(rng, n, 4) - 0.5)
    p = np.cos(angle) * x + np.sin(angle) * y
    q = -np.sin(angle) * x + np.cos(angle) * y
    freq = rng.uniform(*style.frequency, n)
    t = np.zeros((n, SIZE, SIZE))
    for k in np.unique(labels):
        idx = np.where(labels == k)[0]
        t[idx] = _field(TEXTURES[k], rng, p[idx], q[idx], freq[idx])
    contrast = rng.uniform(*style.contrast, n)[:, None, None, None]
    a, b = jitter_colour(rng, COLOUR_RGB[c1], 0.1), jitter_colour(rng, COLOUR_RGB[c2], 0.1)
    mid = (a + b)[:, None, None, :] / 2
    img = b[:, None, None, :] + (a - b)[:, None, None, :] * t[..., None]
    img = mid + (img - mid) * contrast
    return finish(img, rng, style.noise, style.blur), {"fg": c1, "bg": c2}
