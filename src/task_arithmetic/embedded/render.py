"""Batched 2-D drawing in numpy: the primitives every image family of the embedded world uses.

Images are float arrays (N, S, S, 3) in [0, 1]; coordinates run over [-1, 1] with y pointing
down. Every primitive works on a whole batch with per-image parameters, so a few thousand images
render in well under a second; shapes are signed-distance fields, which gives anti-aliased edges
for free at any scale or rotation.
"""

from __future__ import annotations

import numpy as np

SIZE = 32
PIXEL = 2.0 / SIZE  # one pixel in canvas units

_AXIS = (np.arange(SIZE) + 0.5) * PIXEL - 1.0
GRID_X = _AXIS[None, None, :]  # (1, 1, S)
GRID_Y = _AXIS[None, :, None]  # (1, S, 1)

# Named colours shared by the renderers and the captions, so a word always means one hue.
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.86, 0.12, 0.12),
    "green": (0.13, 0.62, 0.22),
    "blue": (0.12, 0.32, 0.86),
    "yellow": (0.96, 0.86, 0.12),
    "orange": (0.96, 0.55, 0.1),
    "purple": (0.55, 0.2, 0.72),
    "pink": (0.96, 0.52, 0.72),
    "brown": (0.5, 0.3, 0.12),
    "black": (0.06, 0.06, 0.06),
    "white": (0.95, 0.95, 0.95),
    "gray": (0.5, 0.5, 0.5),
    "cyan": (0.12, 0.8, 0.86),
}
COLOUR_NAMES = tuple(COLOURS)
COLOUR_RGB = np.array([COLOURS[c] for c in COLOUR_NAMES], dtype=np.float64)


def luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114])


def pick_colour_pairs(rng: np.random.Generator, n: int, min_contrast: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """Indices (fg, bg) into COLOUR_NAMES with distinct hues and enough luminance contrast."""
    lum = luminance(COLOUR_RGB)
    ok = np.abs(lum[:, None] - lum[None, :]) >= min_contrast
    pairs = np.argwhere(ok)
    chosen = pairs[rng.integers(0, len(pairs), n)]
    return chosen[:, 0], chosen[:, 1]


def jitter_colour(rng: np.random.Generator, rgb: np.ndarray, amount: float) -> np.ndarray:
    """Per-image random brightness and tint around named colours (N, 3)."""
    n = rgb.shape[0]
    gain = 1.0 + rng.uniform(-amount, amount, (n, 1))
    tint = rng.uniform(-amount / 2, amount / 2, (n, 3))
    return np.clip(rgb * gain + tint, 0.0, 1.0)


def blank(n: int, rgb: np.ndarray | None = None) -> np.ndarray:
    img = np.zeros((n, SIZE, SIZE, 3))
    if rgb is not None:
        img[:] = rgb[:, None, None, :]
    return img


def local_coords(cx: np.ndarray, cy: np.ndarray, scale: np.ndarray, angle: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Canvas -> object coordinates (N, S, S): the object lives in [-1, 1] at the given pose."""
    dx = GRID_X - cx[:, None, None]
    dy = GRID_Y - cy[:, None, None]
    c, s = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    sc = scale[:, None, None]
    return (c * dx + s * dy) / sc, (-s * dx + c * dy) / sc


def alpha_from_sdf(sdf: np.ndarray, scale: np.ndarray | float) -> np.ndarray:
    """Coverage of a shape from its signed distance (object units, negative inside)."""
    sc = np.asarray(scale, dtype=np.float64)
    if sc.ndim == 1:
        sc = sc[:, None, None]
    return np.clip(0.5 - sdf * sc / PIXEL, 0.0, 1.0)


def paint(img: np.ndarray, alpha: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    """Composite a colour (N, 3) or a colour field (N, S, S, 3) through a coverage mask (N, S, S)."""
    colour = rgb[:, None, None, :] if rgb.ndim == 2 else rgb
    a = alpha[..., None]
    return img * (1.0 - a) + colour * a


# ---- signed distances in object coordinates -------------------------------------------------


def sd_circle(u: np.ndarray, v: np.ndarray, r: float | np.ndarray = 1.0) -> np.ndarray:
    return np.hypot(u, v) - _bcast(r)


def sd_box(u: np.ndarray, v: np.ndarray, half_w: float | np.ndarray, half_h: float | np.ndarray) -> np.ndarray:
    return np.maximum(np.abs(u) - _bcast(half_w), np.abs(v) - _bcast(half_h))


def sd_polygon(u: np.ndarray, v: np.ndarray, sides: int, radius: float = 1.0, rotation: float = 0.0) -> np.ndarray:
    """Regular polygon with circumradius `radius`; the first vertex points up unless rotated."""
    theta = np.arctan2(v, u) + np.pi / 2 - rotation
    sector = 2 * np.pi / sides
    phi = np.mod(theta, sector) - sector / 2
    return np.hypot(u, v) * np.cos(phi) - radius * np.cos(np.pi / sides)


def sd_star(u: np.ndarray, v: np.ndarray, points: int = 5, inner: float = 0.45) -> np.ndarray:
    theta = np.arctan2(v, u) + np.pi / 2
    sector = 2 * np.pi / points
    tri = np.abs(np.mod(theta, sector) / sector - 0.5) * 2  # 1 at the tips, 0 between them
    return np.hypot(u, v) - (inner + (1 - inner) * tri)


def sd_segments(u: np.ndarray, v: np.ndarray, starts: np.ndarray, ends: np.ndarray, half_width: float | np.ndarray) -> np.ndarray:
    """Distance to the nearest of K thick segments; starts/ends (K, 2) or per image (N, K, 2)."""
    if starts.ndim == 2:
        starts, ends = starts[None], ends[None]
    ax, ay = starts[..., 0][..., None, None], starts[..., 1][..., None, None]
    bx, by = ends[..., 0][..., None, None], ends[..., 1][..., None, None]
    pu, pv = u[:, None], v[:, None]
    ex, ey = bx - ax, by - ay
    t = np.clip(((pu - ax) * ex + (pv - ay) * ey) / np.maximum(ex * ex + ey * ey, 1e-9), 0.0, 1.0)
    dist = np.hypot(pu - ax - t * ex, pv - ay - t * ey).min(axis=1)
    return dist - _bcast(half_width)


def ellipse_points(cx: float, cy: float, rx: float, ry: float, count: int = 12) -> list[tuple[float, float]]:
    angles = np.linspace(0, 2 * np.pi, count + 1)
    return [(cx + rx * np.cos(a), cy + ry * np.sin(a)) for a in angles]


def _bcast(x: float | np.ndarray) -> float | np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x[:, None, None] if x.ndim == 1 else x


# ---- bitmaps, noise, blur ---------------------------------------------------------------------


def sample_bitmaps(bitmaps: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Bilinear lookup of per-image bitmaps (N, h, w) in [0, 1] at object coords; 0 outside [-1, 1]."""
    n, h, w = bitmaps.shape
    padded = np.pad(bitmaps, ((0, 0), (1, 1), (1, 1)))
    fx = (u + 1) / 2 * w + 0.5  # +1 for the padding, -0.5 for pixel centres
    fy = (v + 1) / 2 * h + 0.5
    fx = np.clip(fx, 0, w + 1 - 1e-6)
    fy = np.clip(fy, 0, h + 1 - 1e-6)
    x0, y0 = np.floor(fx).astype(int), np.floor(fy).astype(int)
    x1, y1 = np.minimum(x0 + 1, w + 1), np.minimum(y0 + 1, h + 1)
    wx, wy = fx - x0, fy - y0
    idx = np.arange(n)[:, None, None]
    top = padded[idx, y0, x0] * (1 - wx) + padded[idx, y0, x1] * wx
    bottom = padded[idx, y1, x0] * (1 - wx) + padded[idx, y1, x1] * wx
    return top * (1 - wy) + bottom * wy


def _interp_matrix(src: int, dst: int = SIZE) -> np.ndarray:
    """(dst, src) bilinear resampling matrix with edge clamping."""
    pos = np.clip((np.arange(dst) + 0.5) * src / dst - 0.5, 0, src - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, src - 1)
    frac = pos - lo
    m = np.zeros((dst, src))
    m[np.arange(dst), lo] += 1 - frac
    m[np.arange(dst), hi] += frac
    return m


def smooth_noise(rng: np.random.Generator, n: int, cells: int, channels: int = 1) -> np.ndarray:
    """Value noise: a cells x cells random grid upsampled bilinearly, (N, S, S[, C]) in ~[0, 1]."""
    m = _interp_matrix(cells)
    grid = rng.random((n, channels, cells, cells))
    field = np.einsum("ij,ncjk,lk->nilc", m, grid, m)
    return field[..., 0] if channels == 1 else field


def fractal_noise(rng: np.random.Generator, n: int, octaves: tuple[int, ...] = (3, 6, 12)) -> np.ndarray:
    total = np.zeros((n, SIZE, SIZE))
    weight = 1.0
    for cells in octaves:
        total += weight * smooth_noise(rng, n, cells)
        weight *= 0.5
    total -= total.min(axis=(1, 2), keepdims=True)
    return total / np.maximum(total.max(axis=(1, 2), keepdims=True), 1e-9)


def blur(img: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Separable Gaussian blur with a per-image sigma in pixels (0 = unchanged)."""
    sigma = np.asarray(sigma, dtype=np.float64)
    pos = np.arange(SIZE)
    d = pos[None, :, None] - pos[None, None, :]
    s = np.maximum(sigma, 1e-3)[:, None, None]
    k = np.exp(-0.5 * (d / s) ** 2)
    k /= k.sum(axis=2, keepdims=True)
    rows = np.matmul(k[:, None], img.transpose(0, 3, 1, 2))  # (N, C, S, S): blur along y
    both = np.matmul(rows, k.transpose(0, 2, 1)[:, None])  # then along x
    return both.transpose(0, 2, 3, 1)


def finish(img: np.ndarray, rng: np.random.Generator, noise: float, blur_max: float) -> np.ndarray:
    """Camera effects: optional blur and pixel noise, then 8-bit quantisation."""
    n: int = img.shape[0]
    if blur_max > 0:
        img = blur(img, rng.uniform(0.0, blur_max, n))
    if noise > 0:
        img = img + rng.normal(0.0, noise, img.shape)
    return to_uint8(img)


def to_uint8(img: np.ndarray) -> np.ndarray:
    return np.round(np.clip(img, 0.0, 1.0) * 255).astype(np.uint8)


def sd_convex(u: np.ndarray, v: np.ndarray, vertices: list[tuple[float, float]]) -> np.ndarray:
    """Convex polygon from vertices in either winding order (exact inside, close enough outside)."""
    pts = np.asarray(vertices, dtype=np.float64)
    centre = pts.mean(axis=0)
    out = None
    for a, b in zip(pts, np.roll(pts, -1, axis=0)):
        normal = np.array([b[1] - a[1], a[0] - b[0]])
        normal /= np.linalg.norm(normal)
        if np.dot(centre - a, normal) > 0:  # make the normal point outwards
            normal = -normal
        d = (u - a[0]) * normal[0] + (v - a[1]) * normal[1]
        out = d if out is None else np.maximum(out, d)
    assert out is not None  # a polygon has vertices
    return out
