"""Two hand-made fonts for the digit families: a 5x7 pixel font and a stroke font.

The pixel font is printed-looking (house numbers, sign text); the stroke font, with its control
points jittered per image, looks hand-drawn. Neither is the scikit-learn handwriting, so the real
digits task stays a domain shift from everything the tiny CLIP is pretrained on.
"""

from __future__ import annotations

import numpy as np

from .render import alpha_from_sdf, ellipse_points, local_coords, sample_bitmaps, sd_segments

_PIXEL_FONT = {
    "0": [" ### ", "#   #", "#  ##", "# # #", "##  #", "#   #", " ### "],
    "1": ["  #  ", " ##  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "],
    "2": [" ### ", "#   #", "    #", "   # ", "  #  ", " #   ", "#####"],
    "3": ["#####", "   # ", "  #  ", "   # ", "    #", "#   #", " ### "],
    "4": ["   # ", "  ## ", " # # ", "#  # ", "#####", "   # ", "   # "],
    "5": ["#####", "#    ", "#### ", "    #", "    #", "#   #", " ### "],
    "6": ["  ## ", " #   ", "#    ", "#### ", "#   #", "#   #", " ### "],
    "7": ["#####", "    #", "   # ", "  #  ", " #   ", " #   ", " #   "],
    "8": [" ### ", "#   #", "#   #", " ### ", "#   #", "#   #", " ### "],
    "9": [" ### ", "#   #", "#   #", " ####", "    #", "   # ", " ##  "],
    "P": ["#### ", "#   #", "#   #", "#### ", "#    ", "#    ", "#    "],
    "!": [" ### ", " ### ", " ### ", "  #  ", "  #  ", "     ", "  #  "],
}

PIXEL_GLYPHS = {ch: np.array([[c == "#" for c in row] for row in rows], dtype=np.float64) for ch, rows in _PIXEL_FONT.items()}

# Stroke font: polylines in a [-1, 1] box (y down), roughly the way the digits are written by hand.
_STROKES: dict[str, list[list[tuple[float, float]]]] = {
    "0": [ellipse_points(0.0, 0.0, 0.55, 0.95, 14)],
    "1": [[(-0.35, -0.6), (0.05, -1.0), (0.05, 1.0)]],
    "2": [[(-0.6, -0.55), (-0.3, -0.95), (0.3, -0.95), (0.6, -0.55), (0.5, -0.1), (-0.6, 1.0), (0.65, 1.0)]],
    "3": [[(-0.6, -0.95), (0.55, -0.95), (0.0, -0.1), (0.5, 0.15), (0.6, 0.65), (0.1, 1.0), (-0.6, 0.8)]],
    "4": [[(0.35, 1.0), (0.35, -1.0), (-0.65, 0.4), (0.7, 0.4)]],
    "5": [[(0.6, -1.0), (-0.5, -1.0), (-0.6, -0.1), (0.2, -0.2), (0.6, 0.2), (0.6, 0.65), (0.15, 1.0), (-0.6, 0.85)]],
    "6": [[(0.5, -1.0), (-0.2, -0.5), (-0.6, 0.3), (-0.5, 0.9), (0.1, 1.0), (0.6, 0.6), (0.5, 0.1), (0.0, -0.05), (-0.55, 0.25)]],
    "7": [[(-0.6, -1.0), (0.65, -1.0), (-0.1, 1.0)]],
    "8": [ellipse_points(0.0, -0.5, 0.45, 0.45, 10), ellipse_points(0.0, 0.48, 0.55, 0.5, 10)],
    "9": [ellipse_points(0.0, -0.45, 0.5, 0.5, 10), [(0.5, -0.45), (0.4, 0.4), (0.0, 1.0)]],
}


def stroke_glyph_alpha(rng: np.random.Generator, chars: list[str], cx, cy, scale, angle, width, wobble: float) -> np.ndarray:
    """Coverage of stroke-font characters; each image jitters the control points of its strokes."""
    u, v = local_coords(cx, cy, scale, angle)
    scale = np.asarray(scale, dtype=np.float64)
    width = np.asarray(width, dtype=np.float64)
    out = np.zeros(u.shape)
    for ch in sorted(set(chars)):
        idx = np.array([i for i, c in enumerate(chars) if c == ch])
        starts, ends = [], []
        for stroke in _STROKES[ch]:
            pts = np.asarray(stroke)[None] + rng.normal(0.0, wobble, (len(idx), len(stroke), 2))
            starts.append(pts[:, :-1])
            ends.append(pts[:, 1:])
        sdf = sd_segments(u[idx], v[idx], np.concatenate(starts, axis=1), np.concatenate(ends, axis=1), width[idx] / 2)
        out[idx] = alpha_from_sdf(sdf, scale[idx])
    return out


def pixel_glyph_alpha(chars: list[str], cx, cy, scale, angle, weight) -> np.ndarray:
    """Coverage of pixel-font characters; weight in [0.3, 0.7] thickens (low) or thins (high) strokes.

    The glyph box is 5:7, so the object's x axis is stretched to keep the characters upright-looking.
    """
    u, v = local_coords(cx, cy, scale, angle)
    bitmaps = np.stack([PIXEL_GLYPHS[c] for c in chars])
    soft = sample_bitmaps(bitmaps, u * 1.4, v)
    return np.clip((soft - np.asarray(weight)[:, None, None]) * 4 + 0.5, 0.0, 1.0)
