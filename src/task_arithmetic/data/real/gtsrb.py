"""GTSRB through torchvision's reader: train from the class folders of .ppm files, test from the
flat image folder plus its ground-truth CSV. The data has no class names; these are the readable
sign descriptions OpenAI published with CLIP."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from torch.utils.data import Dataset

from . import templates
from .common import RealDataset, absent

CLASSNAMES = (
    "red and white circle 20 kph speed limit",
    "red and white circle 30 kph speed limit",
    "red and white circle 50 kph speed limit",
    "red and white circle 60 kph speed limit",
    "red and white circle 70 kph speed limit",
    "red and white circle 80 kph speed limit",
    "end / de-restriction of 80 kph speed limit",
    "red and white circle 100 kph speed limit",
    "red and white circle 120 kph speed limit",
    "red and white circle red car and black car no passing",
    "red and white circle red truck and black car no passing",
    "red and white triangle road intersection warning",
    "white and yellow diamond priority road",
    "red and white upside down triangle yield right-of-way",
    "stop",
    "empty red and white circle",
    "red and white circle no truck entry",
    "red circle with white horizonal stripe no entry",
    "red and white triangle with exclamation mark warning",
    "red and white triangle with black left curve approaching warning",
    "red and white triangle with black right curve approaching warning",
    "red and white triangle with black double curve approaching warning",
    "red and white triangle rough / bumpy road warning",
    "red and white triangle car skidding / slipping warning",
    "red and white triangle with merging / narrow lanes warning",
    "red and white triangle with person digging / construction / road work warning",
    "red and white triangle with traffic light approaching warning",
    "red and white triangle with person walking warning",
    "red and white triangle with child and person walking warning",
    "red and white triangle with bicyle warning",
    "red and white triangle with snowflake / ice warning",
    "red and white triangle with deer warning",
    "white circle with gray strike bar no speed limit",
    "blue circle with white right turn arrow mandatory",
    "blue circle with white left turn arrow mandatory",
    "blue circle with white forward arrow mandatory",
    "blue circle with white forward or right turn arrow mandatory",
    "blue circle with white forward or left turn arrow mandatory",
    "blue circle with white keep right arrow mandatory",
    "blue circle with white keep left arrow mandatory",
    "blue circle with white arrows indicating a traffic circle",
    "white circle with gray strike bar indicating no passing for cars has ended",
    "white circle with gray strike bar indicating no passing for trucks has ended",
)

_FILES = {
    "train": ("gtsrb/GTSRB/Training",),
    "test": ("gtsrb/GTSRB/Final_Test/Images", "gtsrb/GT-final_test.csv"),
    "classnames": (),
}


def _missing(root: Path, part: str) -> list[str]:
    return absent(root, *_FILES[part])


def _build(root: Path, split: str, transform: Callable | None) -> Dataset:
    from torchvision.datasets import GTSRB

    return GTSRB(str(root), split=split, transform=transform, download=False)


DATASET = RealDataset(
    name="GTSRB",
    num_classes=43,
    templates=templates.GTSRB,
    layout=(
        "gtsrb/GTSRB/Training/<00000..00042>/*.ppm (GTSRB-Training_fixed.zip), "
        "gtsrb/GTSRB/Final_Test/Images/*.ppm (GTSRB_Final_Test_Images.zip), gtsrb/GT-final_test.csv (GTSRB_Final_Test_GT.zip)"
    ),
    missing=_missing,
    build=_build,
    classnames=lambda root: list(CLASSNAMES),
    epochs=11,
)
