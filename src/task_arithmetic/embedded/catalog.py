"""The embedded benchmark's tasks: what each one mirrors, its classes, prompts, sizes and defaults.

| task          | mirrors  | source                                   | classes |
|---------------|----------|------------------------------------------|---------|
| Digits        | MNIST    | scikit-learn's real 8x8 handwriting      | 10      |
| HouseNumbers  | SVHN     | printed digits with neighbours, clutter  | 10      |
| TrafficSigns  | GTSRB    | sign plates with symbols, street light   | 12      |
| Textures      | DTD      | warped two-colour patterns               | 9       |
| LandUse       | EuroSAT  | satellite views, EuroSAT's class names   | 10      |
| Landscapes    | SUN397   | horizon scenes                           | 8       |
| Shapes (ctrl) | ImageNet | 16 shapes and symbols, busy backgrounds  | 16      |

The 12-task benchmark `embedded12` adds six variants of the same families, for running the
protocol at larger T offline (the default study keeps the six above):

| task           | variant of   | how it differs                                  |
|----------------|--------------|-------------------------------------------------|
| PrintedDigits  | HouseNumbers | printed glyphs only, alone, rotated, busy ground |
| SketchedDigits | Digits       | the renderer's handwritten-style glyphs, wobbly |
| NightSigns     | TrafficSigns | dim light, heavy blur                           |
| FineTextures   | Textures     | two to three times finer patterns, low contrast |
| HazyLandUse    | LandUse      | zoomed out, thick haze                          |
| DuskScenes     | Landscapes   | high horizon, strong tint, little colour        |

Their epochs are the sibling task's, not calibrated separately.

`defaults` are the training settings the fine-tuning engine reads (TaskSpec.defaults): `epochs`,
`lr`, `wd`, `warmup` (steps) and `batch_size`. One learning rate serves standard and linearised
fine-tuning alike: linearised accuracy was flat across lr 2e-3 .. 1.6e-2 in calibration. Epochs
differ per task so that standard fine-tuning reaches >= 90 % test accuracy on each; they were
calibrated once, against the first world's pretrained weights, and never tuned towards any
task-arithmetic result. The calibration towards CLIP's task-arithmetic regime (issue 14,
benchmarks/results/embedded-calibration.md) changed the pretraining, not these settings: on the
calibrated world the same epochs reach 93.7-99.5 %, and a smaller lr, which shrinks the task
vectors, lifted standard one-shot addition out of CLIP's range.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import styles
from .generate import FAMILIES


@dataclass(frozen=True)
class EmbeddedTask:
    name: str
    family: str  # a generate.FAMILIES key, or "handwritten" for the scikit-learn digits
    style: Any  # the family's style dataclass; None for the real digits
    templates: tuple[str, ...]
    train_size: int
    test_size: int
    defaults: dict[str, Any] = field(default_factory=dict)
    is_control: bool = False
    benchmark: str = "embedded"  # the home suite: "embedded" (the default study's) or "embedded12"

    def class_names(self) -> tuple[str, ...]:
        return FAMILIES["digits" if self.family == "handwritten" else self.family][1]


# One recipe for every task, the tiny model's counterpart of the paper's (AdamW, wd 0.1, warm-up
# then cosine): a tiny ViT pretrained for a minute needs a far larger step than CLIP's 1e-5.
_DEFAULTS = {"lr": 2e-3, "wd": 0.1, "warmup": 20, "batch_size": 64}


def _defaults(epochs: int) -> dict[str, Any]:
    return {"epochs": epochs, **_DEFAULTS}


_SATELLITE = ("a centered satellite photo of {}.", "a centered satellite photo of a {}.", "a centered satellite photo of the {}.")
_TEXTURE = tuple(f"a photo of {article} {{}} {noun}." for article in ("a", "the") for noun in ("texture", "pattern", "thing", "object"))
_SIGN = (
    'a zoomed in photo of a "{}" traffic sign.',
    'a centered photo of a "{}" traffic sign.',
    'a close up photo of a "{}" traffic sign.',
)
_OBJECT = (
    "a photo of a {}.",
    "a bad photo of a {}.",
    "a photo of a small {}.",
    "a photo of a large {}.",
    "a drawing of a {}.",
    "a {} shape.",
    "a bright photo of a {}.",
    "a dark photo of a {}.",
    "a blurry photo of a {}.",
    "a photo of the {}.",
    "a cropped photo of a {}.",
    "a close-up photo of a {}.",
)

TASKS: tuple[EmbeddedTask, ...] = (
    EmbeddedTask("Digits", "handwritten", None, ('a photo of the number: "{}".', "a handwritten digit {}.", "the number {}."), 1347, 450, _defaults(20)),
    EmbeddedTask("HouseNumbers", "digits", styles.STREET_DIGITS, ('a photo of the number: "{}".', "a house number {}."), 4000, 1000, _defaults(5)),
    EmbeddedTask("TrafficSigns", "signs", styles.STREET_SIGNS, _SIGN, 4000, 1000, _defaults(6)),
    EmbeddedTask("Textures", "textures", styles.TASK_TEXTURES, _TEXTURE, 6000, 1000, _defaults(5)),
    EmbeddedTask("LandUse", "aerial", styles.TASK_AERIAL, _SATELLITE, 4000, 1000, _defaults(4)),
    EmbeddedTask("Landscapes", "scenes", styles.TASK_SCENES, ("a photo of a {}.", "a photo of the {}."), 4000, 1000, _defaults(2)),
    EmbeddedTask("Shapes", "shapes", styles.CONTROL_SHAPES, _OBJECT, 4000, 1000, _defaults(4), is_control=True),
)

_VARIANT = "embedded12"
VARIANTS: tuple[EmbeddedTask, ...] = (
    EmbeddedTask("PrintedDigits", "digits", styles.PRINTED_DIGITS, ('a photo of the number: "{}".', "a printed digit {}."), 3000, 600, _defaults(5), benchmark=_VARIANT),
    EmbeddedTask("SketchedDigits", "digits", styles.SKETCHED_DIGITS, ('a photo of the number: "{}".', "a sketch of the digit {}."), 3000, 600, _defaults(5), benchmark=_VARIANT),
    EmbeddedTask("NightSigns", "signs", styles.NIGHT_SIGNS, _SIGN, 3000, 600, _defaults(6), benchmark=_VARIANT),
    EmbeddedTask("FineTextures", "textures", styles.FINE_TEXTURES, _TEXTURE, 3000, 600, _defaults(5), benchmark=_VARIANT),
    EmbeddedTask("HazyLandUse", "aerial", styles.HAZY_AERIAL, _SATELLITE, 3000, 600, _defaults(4), benchmark=_VARIANT),
    EmbeddedTask("DuskScenes", "scenes", styles.DUSK_SCENES, ("a photo of a {}.", "a photo of the {}."), 3000, 600, _defaults(2), benchmark=_VARIANT),
)
ALL_TASKS = TASKS + VARIANTS
TASKS_BY_NAME = {t.name: t for t in ALL_TASKS}
EMBEDDED12 = tuple(t.name for t in TASKS if not t.is_control) + tuple(t.name for t in VARIANTS)
