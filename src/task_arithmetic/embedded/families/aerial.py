"""Satellite views of land use (EuroSAT's role), with EuroSAT's ten class names.

Scenes are built from noise fields, fields of crop rows, roads, roofs and water. The style sets
the zoom, haze and colour drift, which is where pretraining and task differ.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..render import SIZE, alpha_from_sdf, finish, fractal_noise, local_coords, paint, sd_box, sd_circle, smooth_noise

LAND_USES = (
    "annual crop land",
    "forest",
    "brushland or shrubland",
    "highway or road",
    "industrial buildings",
    "pasture land",
    "permanent crop land",
    "residential buildings",
    "river",
    "lake or sea",
)

_C = {
    "forest": (0.1, 0.3, 0.13),
    "pasture": (0.45, 0.66, 0.3),
    "brush": (0.45, 0.47, 0.26),
    "soil": (0.56, 0.43, 0.29),
    "water": (0.09, 0.24, 0.45),
    "road": (0.46, 0.46, 0.46),
    "concrete": (0.7, 0.7, 0.68),
}
_CROPS = np.array([(0.72, 0.7, 0.32), (0.55, 0.4, 0.25), (0.35, 0.56, 0.2), (0.62, 0.55, 0.3)])
_ROOFS = np.array([(0.66, 0.3, 0.24), (0.6, 0.6, 0.6), (0.45, 0.3, 0.22), (0.75, 0.72, 0.7)])


@dataclass(frozen=True)
class AerialStyle:
    zoom: tuple[float, float]  # >1 makes every structure bigger
    haze: tuple[float, float]  # mix towards a bluish grey
    colour_drift: float  # per-image random tint
    noise: float
    blur: float
    desaturate: tuple[float, float] = (0.0, 0.0)  # mix towards grey: weakens colour as a cue


def _colour(name: str, n: int) -> np.ndarray:
    return np.tile(np.array(_C[name]), (n, 1))


def _tinted(base: np.ndarray, field: np.ndarray, amount: float) -> np.ndarray:
    """A colour (N, 3) modulated by a field (N, S, S) -> (N, S, S, 3)."""
    return base[:, None, None, :] * (1 - amount + 2 * amount * field[..., None])


def _rotated(rng: np.random.Generator, n: int, zoom: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return local_coords(rng.uniform(-0.3, 0.3, n), rng.uniform(-0.3, 0.3, n), zoom, rng.uniform(0, 2 * np.pi, n))


def _vegetation(rng, n, name, cells=(4, 8, 16), amount=0.35):
    return _tinted(_colour(name, n), fractal_noise(rng, n, cells), amount)


def _draw(name: str, rng: np.random.Generator, n: int, zoom: np.ndarray) -> np.ndarray:
    z = zoom[:, None, None]
    if name == "annual crop land":
        u, v = _rotated(rng, n, zoom)
        sx, sy = rng.uniform(-0.5, 0.5, (n, 1, 1)), rng.uniform(-0.5, 0.5, (n, 1, 1))
        patch = (u > sx).astype(int) + 2 * (v > sy).astype(int)
        colours = _CROPS[rng.integers(0, len(_CROPS), (n, 4))]
        base = colours[np.arange(n)[:, None, None], patch]
        rows = 0.5 + 0.5 * np.sin(2 * np.pi * 5 * np.where(patch % 2 == 0, u, v))
        edge = np.minimum(np.abs(u - sx), np.abs(v - sy)) * z < 0.04
        img = base * (0.82 + 0.18 * rows[..., None])
        return np.where(edge[..., None], np.array(_C["soil"]) * 0.8, img)
    if name == "forest":
        return _vegetation(rng, n, "forest", (6, 12, 16), 0.5)
    if name == "brushland or shrubland":
        mix = fractal_noise(rng, n, (4, 8))[..., None]
        return _vegetation(rng, n, "brush", (8, 16), 0.3) * (1 - mix) + _colour("soil", n)[:, None, None, :] * mix
    if name == "highway or road":
        img = _vegetation(rng, n, "pasture" if rng.random() < 0.5 else "brush", (3, 6), 0.25)
        u, v = _rotated(rng, n, zoom)
        half = rng.uniform(0.16, 0.24, n)[:, None, None]
        img = paint(img, alpha_from_sdf(np.abs(v) - half, zoom), _colour("road", n))
        dashes = (np.abs(v) < 0.03) & (np.mod(u * 3, 1.0) < 0.5)
        return np.where(dashes[..., None], 0.92, img)
    if name == "industrial buildings":
        img = _tinted(_colour("road", n), fractal_noise(rng, n, (4, 8)), 0.15)
        u, v = _rotated(rng, n, zoom)
        for _ in range(3):
            cx, cy = rng.uniform(-0.8, 0.8, (n, 1, 1)), rng.uniform(-0.8, 0.8, (n, 1, 1))
            hw, hh = rng.uniform(0.25, 0.5, (n, 1, 1)), rng.uniform(0.2, 0.4, (n, 1, 1))
            shade = rng.uniform(0.55, 0.95, (n, 1))
            img = paint(img, alpha_from_sdf(sd_box(u - cx, v - cy, hw, hh), zoom), np.repeat(shade, 3, axis=1))
        return img
    if name == "pasture land":
        return _vegetation(rng, n, "pasture", (2, 4), 0.15)
    if name == "permanent crop land":
        img = _tinted(_colour("soil", n) * 0.6 + _colour("pasture", n) * 0.4, fractal_noise(rng, n, (4,)), 0.1)
        u, v = _rotated(rng, n, zoom)
        spacing: np.ndarray | float = rng.uniform(3.0, 4.0, (n, 1, 1))
        a, b = np.mod(u * spacing, 1.0) - 0.5, np.mod(v * spacing, 1.0) - 0.5
        trees = alpha_from_sdf(sd_circle(a, b, 0.28) / spacing, zoom)
        return paint(img, trees, _colour("forest", n) * 1.2)
    if name == "residential buildings":
        img = _tinted(_colour("pasture", n) * 0.7 + _colour("road", n) * 0.3, fractal_noise(rng, n, (6,)), 0.15)
        u, v = _rotated(rng, n, zoom)
        spacing = 3.0
        cell_u, cell_v = np.floor(u * spacing), np.floor(v * spacing)
        a, b = np.mod(u * spacing, 1.0) - 0.5, np.mod(v * spacing, 1.0) - 0.5
        roof_id = (np.abs(cell_u * 7 + cell_v * 13).astype(int) + rng.integers(0, 4, (n, 1, 1))) % len(_ROOFS)
        house = alpha_from_sdf(sd_box(a, b, 0.3, 0.22) / spacing, zoom)
        img = paint(img, house, _ROOFS[roof_id])
        street = alpha_from_sdf((0.5 - np.abs(b)) / spacing - 0.03, zoom)
        return paint(img, street, _colour("road", n))
    if name == "river":
        img = _vegetation(rng, n, "pasture" if rng.random() < 0.5 else "forest", (4, 8), 0.3)
        u, v = _rotated(rng, n, zoom)
        centre = rng.uniform(0.2, 0.4, (n, 1, 1)) * np.sin(2 * np.pi * rng.uniform(0.3, 0.6, (n, 1, 1)) * u + rng.uniform(0, 6.3, (n, 1, 1)))
        half = rng.uniform(0.1, 0.18, (n, 1, 1))
        return paint(img, alpha_from_sdf(np.abs(v - centre) - half, zoom), _colour("water", n))
    if name == "lake or sea":
        img = _tinted(_colour("water", n), smooth_noise(rng, n, 8), 0.15)
        u, v = _rotated(rng, n, zoom)
        shore = rng.uniform(0.3, 1.5, (n, 1, 1)) + 0.2 * (smooth_noise(rng, n, 5) - 0.5)
        land = _vegetation(rng, n, "pasture", (4, 8), 0.3)
        return paint(img, alpha_from_sdf(shore - v, zoom), land)
    raise ValueError(name)


def render_aerial(rng: np.random.Generator, labels: np.ndarray, style: AerialStyle) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    n = len(labels)
    zoom = rng.uniform(*style.zoom, n)
    img = np.zeros((n, SIZE, SIZE, 3))
    for k in np.unique(labels):
        idx = np.where(labels == k)[0]
        img[idx] = _draw(LAND_USES[k], rng, len(idx), zoom[idx])
    haze = rng.uniform(*style.haze, n)[:, None, None, None]
    img = img * (1 - haze) + np.array([0.62, 0.66, 0.72]) * haze
    img = img * (1 + rng.uniform(-style.colour_drift, style.colour_drift, (n, 1, 1, 3)))
    grey = img.mean(axis=-1, keepdims=True)
    fade = rng.uniform(*style.desaturate, n)[:, None, None, None]
    img = img * (1 - fade) + grey * fade
    return finish(img, rng, style.noise, style.blur), {"zoom": zoom}

