"""Real handwriting (MNIST's role): scikit-learn's 1797 8x8 digits, upscaled and colourised.

The images are real data shipped inside scikit-learn (no download). They are resampled to 32 px
with a small random pose as light ink on a dark ground with faint random tints (MNIST's look). The pretraining corpus never contains them.
"""

from __future__ import annotations

import functools

import numpy as np

from ..render import finish, local_coords, sample_bitmaps


@functools.lru_cache(maxsize=1)
def load_sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """(bitmaps (1797, 8, 8) in [0, 1], labels (1797,)); read from scikit-learn's bundled file."""
    from sklearn.datasets import load_digits

    data = load_digits()
    return data.images.astype(np.float64) / 16.0, data.target.astype(np.int64)


# MNIST's look: near-white ink on a near-black ground, each with a faint random tint.
def render_handwritten(rng: np.random.Generator, bitmaps: np.ndarray) -> np.ndarray:
    n = len(bitmaps)
    u, v = local_coords(
        rng.uniform(-0.05, 0.05, n), rng.uniform(-0.05, 0.05, n), rng.uniform(0.85, 1.0, n), rng.uniform(-0.1, 0.1, n)
    )
    alpha = np.clip(sample_bitmaps(bitmaps, u, v) * 1.3, 0.0, 1.0)[..., None]
    ink = (rng.uniform(0.8, 1.0, (n, 1)) - rng.uniform(0.0, 0.2, (n, 3)))[:, None, None, :]
    ground = rng.uniform(0.0, 0.2, (n, 3))[:, None, None, :]
    return finish(ground * (1 - alpha) + ink * alpha, rng, noise=0.03, blur_max=0.4)
