"""Landscape views with a horizon (SUN397's role): sky above, a scene-specific ground below."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..render import GRID_X, GRID_Y, SIZE, alpha_from_sdf, finish, fractal_noise, paint, sd_box, sd_circle, sd_convex, smooth_noise

SCENES = ("beach", "mountain", "desert", "city", "snow field", "forest", "night sky", "sunset")


@dataclass(frozen=True)
class SceneStyle:
    horizon: tuple[float, float]  # canvas y of the horizon
    colour_drift: float
    clutter: float  # strength of extra noise on the ground
    noise: float
    blur: float
    desaturate: tuple[float, float] = (0.0, 0.0)  # mix towards grey: weakens colour as a cue


def _sky(n: int, top, bottom, horizon: np.ndarray) -> np.ndarray:
    t = np.clip((GRID_Y + 1) / (horizon[:, None, None] + 1.0001), 0, 1)[..., None]
    top, bottom = np.asarray(top, dtype=np.float64), np.asarray(bottom, dtype=np.float64)
    return np.broadcast_to(top * (1 - t) + bottom * t, (n, SIZE, SIZE, 3)).copy()


def _ground(img, horizon, colour, rng, texture: float) -> np.ndarray:
    n = img.shape[0]
    below = alpha_from_sdf(horizon[:, None, None] - GRID_Y, 1.0)
    field = np.asarray(colour, dtype=np.float64)[None, None, None, :] * (1 - texture + 2 * texture * fractal_noise(rng, n, (4, 8))[..., None])
    return paint(img, below, field)


def _draw(name: str, rng: np.random.Generator, n: int, h: np.ndarray) -> np.ndarray:
    hh = h[:, None, None]
    if name == "beach":
        img = _sky(n, (0.35, 0.6, 0.9), (0.75, 0.88, 0.97), h)
        img = _ground(img, h, (0.12, 0.35, 0.65), rng, 0.1)
        shore = hh + rng.uniform(0.25, 0.45, (n, 1, 1)) + 0.05 * np.sin(6 * GRID_X + rng.uniform(0, 6, (n, 1, 1)))
        return paint(img, alpha_from_sdf(shore - GRID_Y, 1.0), np.tile([0.88, 0.8, 0.6], (n, 1)))
    if name == "mountain":
        img = _sky(n, (0.4, 0.6, 0.85), (0.8, 0.85, 0.9), h)
        ridge = hh - rng.uniform(0.4, 0.8, (n, 1, 1)) * np.abs(_tri_wave(GRID_X * rng.uniform(0.6, 1.2, (n, 1, 1)) + rng.uniform(0, 1, (n, 1, 1))))
        img = paint(img, alpha_from_sdf(ridge - GRID_Y, 1.0), np.tile([0.45, 0.42, 0.42], (n, 1)))
        snow = alpha_from_sdf(ridge - GRID_Y, 1.0) * (GRID_Y < ridge + 0.15) * (GRID_Y < hh - 0.2)
        img = paint(img, snow, np.tile([0.95, 0.95, 0.97], (n, 1)))
        return _ground(img, h, (0.3, 0.45, 0.2), rng, 0.2)
    if name == "desert":
        img = _sky(n, (0.55, 0.7, 0.9), (0.95, 0.9, 0.75), h)
        img = _ground(img, h, (0.88, 0.7, 0.4), rng, 0.1)
        dunes = 0.5 + 0.5 * np.sin(2 * np.pi * (2.5 * GRID_Y + 0.4 * np.sin(3 * GRID_X + rng.uniform(0, 6, (n, 1, 1)))))
        shade = (dunes * (GRID_Y > hh))[..., None] * 0.2
        return img * (1 - shade)
    if name == "city":
        img = _sky(n, (0.45, 0.6, 0.8), (0.8, 0.8, 0.85), h)
        for _ in range(7):
            cx: np.ndarray | float = rng.uniform(-1, 1, (n, 1, 1))
            width, height = rng.uniform(0.1, 0.25, (n, 1, 1)), rng.uniform(0.2, 0.9, (n, 1, 1))
            building = alpha_from_sdf(sd_box(GRID_X - cx, GRID_Y - hh, width, height), 1.0)
            shade = rng.uniform(0.25, 0.6, (n, 1))
            img = paint(img, building, np.repeat(shade, 3, axis=1) * np.array([1.0, 1.0, 1.1]))
        windows = (np.mod(GRID_X * 8, 1.0) < 0.4) & (np.mod(GRID_Y * 8, 1.0) < 0.4) & (GRID_Y < hh)
        lit = windows & (img.mean(axis=-1) < 0.55) & (smooth_noise(rng, n, 12) > 0.5)
        img = np.where(lit[..., None], np.array([0.95, 0.85, 0.45]), img)
        return _ground(img, h, (0.3, 0.3, 0.32), rng, 0.1)
    if name == "snow field":
        img = _sky(n, (0.7, 0.75, 0.82), (0.9, 0.9, 0.92), h)
        img = _ground(img, h, (0.93, 0.94, 0.97), rng, 0.06)
        return img * (1 - 0.08 * (GRID_Y > hh)[..., None] * np.array([1.0, 0.6, 0.0]))
    if name == "forest":
        img = _sky(n, (0.5, 0.7, 0.9), (0.8, 0.88, 0.9), h)
        img = _ground(img, h, (0.15, 0.3, 0.12), rng, 0.3)
        for _ in range(9):
            cx, base = rng.uniform(-1.1, 1.1), rng.uniform(-0.1, 0.25) + hh
            tall = rng.uniform(0.5, 0.9)
            tree = sd_convex(GRID_X - cx, GRID_Y - base, [(-0.2, 0.0), (0.2, 0.0), (0.0, -tall)])
            img = paint(img, alpha_from_sdf(np.broadcast_to(tree, (n, SIZE, SIZE)), 1.0), np.tile([0.08, 0.3, 0.12], (n, 1)) * rng.uniform(0.7, 1.3))
        return img
    if name == "night sky":
        img = _sky(n, (0.02, 0.03, 0.12), (0.08, 0.1, 0.25), h)
        stars = rng.random((n, SIZE, SIZE)) > 0.96
        img = np.where((stars & (GRID_Y < hh))[..., None], 0.9, img)
        moon = alpha_from_sdf(sd_circle(GRID_X - rng.uniform(-0.6, 0.6, (n, 1, 1)), GRID_Y + 0.6, 0.15), 1.0)
        img = paint(img, moon, np.tile([0.95, 0.93, 0.8], (n, 1)))
        return _ground(img, h, (0.03, 0.04, 0.05), rng, 0.2)
    if name == "sunset":
        img = _sky(n, (0.45, 0.2, 0.45), (0.98, 0.55, 0.2), h)
        sun = alpha_from_sdf(sd_circle(GRID_X - rng.uniform(-0.5, 0.5, (n, 1, 1)), GRID_Y - hh + 0.1, rng.uniform(0.15, 0.25, (n, 1, 1))), 1.0)
        img = paint(img, sun, np.tile([1.0, 0.85, 0.35], (n, 1)))
        return _ground(img, h, (0.15, 0.08, 0.1), rng, 0.2)
    raise ValueError(name)


def _tri_wave(x: np.ndarray) -> np.ndarray:
    return 1 - 2 * np.abs(np.mod(x, 1.0) - 0.5) * 2


def render_scenes(rng: np.random.Generator, labels: np.ndarray, style: SceneStyle) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    n = len(labels)
    horizon = rng.uniform(*style.horizon, n)
    img = np.zeros((n, SIZE, SIZE, 3))
    for k in np.unique(labels):
        idx = np.where(labels == k)[0]
        img[idx] = _draw(SCENES[k], rng, len(idx), horizon[idx])
    if style.clutter > 0:
        img = img * (1 + style.clutter * (fractal_noise(rng, n, (6, 12))[..., None] - 0.5))
    img = img * (1 + rng.uniform(-style.colour_drift, style.colour_drift, (n, 1, 1, 3)))
    grey = img.mean(axis=-1, keepdims=True)
    fade = rng.uniform(*style.desaturate, n)[:, None, None, None]
    img = img * (1 - fade) + grey * fade
    return finish(img, rng, style.noise, style.blur), {"horizon": horizon}
