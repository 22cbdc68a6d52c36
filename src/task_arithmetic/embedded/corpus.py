"""The generated image-caption corpus the tiny CLIP is pretrained on.

Images come from the same families as the tasks, but in the pretraining styles (styles.py), plus
a family no task uses (pairs of shapes, captioned compositionally). Every image carries several
captions, each with the facts it states; pretraining picks one at random each time it sees the
image. The handwritten digits of
scikit-learn never appear here.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..runtime import usable_cores
from ..stop_signals import StopRequested, raise_if_stopped
from . import styles
from .captions import image_facts, sample_captions
from .families.shapes import SHAPES, shape_alpha
from .generate import CHUNK, FAMILIES, render_family, stream_seed
from .render import COLOUR_RGB, blank, finish, jitter_colour, paint, pick_colour_pairs

# Changes whenever the same (size, seed) would give another corpus: cached weights record it.
# 2: each family drawn from its own random stream (version 1 shared one stream across families).
CORPUS_VERSION = "2"

# Share of the corpus per family, and the style each is rendered in.
MIXTURE: tuple[tuple[str, float, object], ...] = (
    ("digits", 0.25, styles.PRETRAIN_DIGITS),
    ("shapes", 0.2, styles.PRETRAIN_SHAPES),
    ("signs", 0.1, styles.PRETRAIN_SIGNS),
    ("textures", 0.17, styles.PRETRAIN_TEXTURES),
    ("aerial", 0.08, styles.PRETRAIN_AERIAL),
    ("scenes", 0.07, styles.PRETRAIN_SCENES),
    ("pairs", 0.13, None),
)


@dataclass
class Corpus:
    images: np.ndarray  # (N, 32, 32, 3) uint8
    captions: list[tuple[str, ...]]  # per image, several phrasings
    image_facts: np.ndarray  # (N, len(FACT_KEYS)) what is true of each image
    caption_facts: np.ndarray  # (N, variants, len(FACT_KEYS)) what each caption states


def build_corpus(size: int, seed: int, captions_per_image: int = 3, workers: int | None = None) -> Corpus:
    """`size` image-caption pairs; each family from its own random stream, so the corpus is the
    same whatever the number of `workers` (threads; default: the cores this process may use).

    A stop signal (or Ctrl-C in the calling thread) stops every thread within a chunk of images
    (StopRequested): the corpus is never kept half-built; the same command builds it again."""
    weights = np.array([w for _, w, _ in MIXTURE])
    counts = np.floor(weights / weights.sum() * size).astype(int)
    counts[0] += size - counts.sum()
    abandoned = threading.Event()  # the calling thread gave up (Ctrl-C): the others stop too

    def check() -> None:
        if abandoned.is_set():
            raise StopRequested("building the pretraining corpus")
        raise_if_stopped("building the pretraining corpus")

    def family_part(i: int) -> tuple[np.ndarray, list[tuple[str, ...]], np.ndarray, np.ndarray]:
        family, _, style = MIXTURE[i]
        rng = np.random.default_rng(stream_seed("embedded-corpus", seed, family))
        count = int(counts[i])
        if family == "pairs":
            img, labels, attrs = _shape_pairs(rng, count, check)
        else:
            labels = rng.integers(0, len(FAMILIES[family][1]), count)
            img, attrs = render_family(family, rng, labels, style, check)
        facts = image_facts(family, labels, attrs)
        texts, stated = sample_captions(family, rng, labels, facts, captions_per_image, check)
        return img, texts, facts, stated

    # numpy releases the GIL in its array work: two threads render 1.8x faster than one.
    workers = workers or usable_cores()
    with ThreadPoolExecutor(min(workers, len(MIXTURE))) as pool:
        try:
            parts = list(pool.map(family_part, range(len(MIXTURE))))
        except BaseException:
            abandoned.set()  # leaving the block waits for the threads: they stop at their next chunk
            raise
    return Corpus(
        np.concatenate([p[0] for p in parts]),
        [caption for p in parts for caption in p[1]],
        np.concatenate([p[2] for p in parts]),
        np.concatenate([p[3] for p in parts]),
    )


def _shape_pairs(rng: np.random.Generator, count: int, check: Callable[[], None]) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Two shapes side by side on a plain background ("a red star and a blue ring")."""
    images, attrs = [], []
    for start in range(0, count, CHUNK):
        check()
        n = min(CHUNK, count - start)
        first, second = rng.integers(0, len(SHAPES), n), rng.integers(0, len(SHAPES), n)
        c1, bg = pick_colour_pairs(rng, n, 0.25)
        c2, _ = pick_colour_pairs(rng, n, 0.25)
        img = blank(n, jitter_colour(rng, COLOUR_RGB[bg], 0.1))
        zeros, scale = np.zeros(n), rng.uniform(0.3, 0.42, n)
        for shapes_, colours, x in ((first, c1, -0.48), (second, c2, 0.48)):
            cx = np.full(n, x) + rng.uniform(-0.05, 0.05, n)
            alpha = shape_alpha([SHAPES[k] for k in shapes_], cx, rng.uniform(-0.3, 0.3, n), scale, zeros, np.zeros(n, bool))
            img = paint(img, alpha, jitter_colour(rng, COLOUR_RGB[colours], 0.1))
        images.append(finish(img, rng, 0.02, 0.3))
        attrs.append({"label": first, "label2": second, "fg": c1, "fg2": c2, "bg": bg})
    merged = {k: np.concatenate([a[k] for a in attrs]) for k in attrs[0]}
    return np.concatenate(images), merged.pop("label"), merged
