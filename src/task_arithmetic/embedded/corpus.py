"""The generated image-caption corpus the tiny CLIP is pretrained on.

Images come from the same families as the tasks, but in the pretraining styles (styles.py), plus
a family no task uses (pairs of shapes, captioned compositionally). Every image carries several
captions, each with the facts it states; pretraining picks one at random each time it sees the
image. The handwritten digits of
scikit-learn never appear here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import styles
from .captions import image_facts, sample_captions
from .families.shapes import SHAPES, shape_alpha
from .generate import CHUNK, FAMILIES, render_family, stream_seed
from .render import COLOUR_RGB, blank, finish, jitter_colour, paint, pick_colour_pairs

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


def build_corpus(size: int, seed: int, captions_per_image: int = 3) -> Corpus:
    rng = np.random.default_rng(stream_seed("embedded-corpus", seed))
    weights = np.array([w for _, w, _ in MIXTURE])
    counts = np.floor(weights / weights.sum() * size).astype(int)
    counts[0] += size - counts.sum()
    images, captions, img_facts, cap_facts = [], [], [], []
    for (family, _, style), count in zip(MIXTURE, counts):
        if family == "pairs":
            img, labels, attrs = _shape_pairs(rng, count)
        else:
            labels = rng.integers(0, len(FAMILIES[family][1]), count)
            img, attrs = render_family(family, rng, labels, style)
        facts = image_facts(family, labels, attrs)
        texts, stated = sample_captions(family, rng, labels, facts, captions_per_image)
        images.append(img)
        captions.extend(texts)
        img_facts.append(facts)
        cap_facts.append(stated)
    return Corpus(np.concatenate(images), captions, np.concatenate(img_facts), np.concatenate(cap_facts))


def _shape_pairs(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Two shapes side by side on a plain background ("a red star and a blue ring")."""
    images, attrs = [], []
    for start in range(0, count, CHUNK):
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
