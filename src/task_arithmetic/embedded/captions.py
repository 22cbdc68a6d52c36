"""Captions for the pretraining corpus, built from the class vocabularies and each image's attributes.

The wording overlaps with the tasks' prompt templates only as much as web captions overlap with
CLIP's prompts: the class words are shared, the sentence frames mostly are not.

Every caption also records which facts it states (family, class, colours, ...). Because the
corpus is generated, we know exactly which images a caption is TRUE of: "the number 7" describes
every image of a 7, "a red 7 on blue" only the red-on-blue ones. Pretraining uses that to count
all true pairs in a batch as positives instead of pushing them apart as false negatives.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:
    import torch

from .families.aerial import LAND_USES
from .families.backgrounds import BACKGROUND_WORDS, BACKGROUNDS
from .families.digits import DIGIT_WORDS, FONTS
from .families.scenes import SCENES
from .families.shapes import PLACES, SHAPES, SIZE_WORDS
from .families.signs import PLATE_WORDS, SIGN_NAMES, SIGNS, SYMBOL_WORDS
from .families.textures import TEXTURES
from .render import COLOUR_NAMES

# The facts an image has and a caption may state; -1 = not stated (caption) / not applicable (image).
FACT_KEYS = ("family", "label", "fg", "bg", "background", "font", "outline", "size", "place", "flank", "label2", "fg2")
FACT_INDEX = {k: i for i, k in enumerate(FACT_KEYS)}

Attrs = dict[str, int]
Option = tuple[str, tuple[str, ...]]  # (text, facts it states besides family and class)
CaptionFn = Callable[[int, Attrs], list[Option]]


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _a(phrase: str) -> str:
    return f"{article(phrase)} {phrase}"


def digit_options(label: int, a: Attrs) -> list[Option]:
    d, word = str(label), DIGIT_WORDS[label]
    fg, bg = COLOUR_NAMES[a["fg"]], COLOUR_NAMES[a["bg"]]
    font = FONTS[a["font"]]
    background = BACKGROUND_WORDS[BACKGROUNDS[a["background"]]]
    options: list[Option] = [
        (f"the number {d}", ()),
        (f"the digit {word}", ()),
        (f'the number "{d}"', ()),
        (f"a {font} number {d}", ("font",)),
        (f"a photo of the digit {d}", ()),
        (f"a picture of the number {word}", ()),
        (f"{_a(font)} {word} on a {background} background", ("font", "background")),
        (f'the number "{d}" in {fg}', ("fg",)),
        (f"{_a(fg)} {d} on {bg}", ("fg", "bg")),
    ]
    if a["flank"]:
        options += [(f"the number {d} between other digits", ("flank",)), (f"a row of digits with {d} in the middle", ("flank",))]
    return options


def shape_options(label: int, a: Attrs) -> list[Option]:
    shape, colour, bg = SHAPES[label], COLOUR_NAMES[a["fg"]], COLOUR_NAMES[a["bg"]]
    size, place = SIZE_WORDS[a["size"]], PLACES[a["place"]]
    fill = "outlined" if a["outline"] else "filled"
    background = BACKGROUND_WORDS[BACKGROUNDS[a["background"]]]
    return [
        (f"a {shape}", ()),
        (f"a drawing of {_a(shape)}", ()),
        (f"a photo of {_a(shape)} shape", ()),
        (f"{_a(shape)} {place}", ("place",)),
        (f"{_a(fill)} {shape}", ("outline",)),
        (f"a {size} {shape} on a {background} background", ("size", "background")),
        (f"{_a(colour)} {shape}", ("fg",)),
        (f"a {size} {colour} {shape} {place}", ("size", "fg", "place")),
        (f"a {shape} on a {bg} background", ("bg",)),
    ]


def sign_options(label: int, a: Attrs) -> list[Option]:
    name = SIGN_NAMES[label]
    plate, plate_colour, _, symbol, _ = SIGNS[name]
    described = f"a {PLATE_WORDS[plate]} {plate_colour} sign with {SYMBOL_WORDS[symbol]}"
    return [(f"a {name} sign", ()), (f'a "{name}" traffic sign', ()), (f"a traffic sign: {name}", ()), (described, ()), (f"a photo of a {name} road sign", ())]


def texture_options(label: int, a: Attrs) -> list[Option]:
    name, c1, c2 = TEXTURES[label], COLOUR_NAMES[a["fg"]], COLOUR_NAMES[a["bg"]]
    return [
        (f"a {name} pattern", ()),
        (f"a {name} texture in {c1} and {c2}", ("fg", "bg")),
        (f"a close-up of a {name} surface", ()),
        (f"{c1} and {c2} {name} fabric", ("fg", "bg")),
        (f"a photo of a {name} pattern", ()),
        (f"a {name} {c1} texture", ("fg",)),
    ]


def aerial_options(label: int, a: Attrs) -> list[Option]:
    name = LAND_USES[label]
    return [(f"a satellite photo of {name}", ()), (f"an aerial view of {name}", ()), (f"a satellite image showing {name}", ()), (f"overhead view of {name}", ()), (f"{name} seen from above", ())]


def scene_options(label: int, a: Attrs) -> list[Option]:
    name = SCENES[label]
    return [(f"a photo of {_a(name)}", ()), (f"a landscape photo of the {name}", ()), (f"a view of {_a(name)}", ()), (f"a picture of {_a(name)} scene", ())]


def pair_options(label: int, a: Attrs) -> list[Option]:
    s1, s2 = SHAPES[label], SHAPES[a["label2"]]
    c1, c2 = COLOUR_NAMES[a["fg"]], COLOUR_NAMES[a["fg2"]]
    first, second = f"{_a(c1)} {s1}", f"{_a(c2)} {s2}"
    return [
        (f"{first} and {second}", ("label2", "fg", "fg2")),
        (f"{first} next to {second}", ("label2", "fg", "fg2")),
        (f"{first} on the left and {second} on the right", ("label2", "fg", "fg2")),
        (f"two shapes: {_a(s1)} and {_a(s2)}", ("label2",)),
    ]


OPTIONS: dict[str, CaptionFn] = {
    "digits": digit_options,
    "shapes": shape_options,
    "signs": sign_options,
    "textures": texture_options,
    "aerial": aerial_options,
    "scenes": scene_options,
    "pairs": pair_options,
}
FAMILY_IDS = {name: i for i, name in enumerate(OPTIONS)}


def image_facts(family: str, labels: np.ndarray, attrs: dict[str, np.ndarray]) -> np.ndarray:
    """(N, len(FACT_KEYS)) every fact of every image; -1 where the family has no such attribute."""
    facts = np.full((len(labels), len(FACT_KEYS)), -1, dtype=np.int64)
    facts[:, FACT_INDEX["family"]] = FAMILY_IDS[family]
    facts[:, FACT_INDEX["label"]] = labels
    for key, values in attrs.items():
        if key in FACT_INDEX:
            facts[:, FACT_INDEX[key]] = np.asarray(values).astype(np.int64)
    return facts


def sample_captions(
    family: str, rng: np.random.Generator, labels: np.ndarray, facts: np.ndarray, variants: int, check: Callable[[], None] | None = None
) -> tuple[list[tuple[str, ...]], np.ndarray]:
    """`variants` captions per image and the facts each states: (texts, (N, variants, len(FACT_KEYS)));
    `check` (if given) runs every 1024 images and may raise to abandon the work (a stop signal)."""
    fn = OPTIONS[family]
    texts: list[tuple[str, ...]] = []
    stated = np.full((len(labels), variants, len(FACT_KEYS)), -1, dtype=np.int64)
    for i, label in enumerate(labels):
        if check is not None and i % 1024 == 0:
            check()
        attrs = {k: int(facts[i, j]) for j, k in enumerate(FACT_KEYS)}
        options = fn(int(label), attrs)
        picks = rng.integers(0, len(options), variants)
        row = []
        for v, p in enumerate(picks):
            text, keys = options[p]
            row.append(text)
            for key in ("family", "label", *keys):
                stated[i, v, FACT_INDEX[key]] = facts[i, FACT_INDEX[key]]
        texts.append(tuple(row))
    return texts, stated


def caption_matches(image_facts: torch.Tensor, caption_facts: torch.Tensor) -> torch.Tensor:
    """(B_img, B_cap) bool: caption j is true of image i (every fact it states holds for i)."""
    cap = caption_facts[None, :, :]
    img = image_facts[:, None, :]
    return ((cap == -1) | (cap == img)).all(dim=-1)
