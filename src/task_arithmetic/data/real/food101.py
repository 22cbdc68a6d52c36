"""Food-101 through torchvision's reader (food-101.tar.gz): train and test from the official
meta/{train,test}.json (75,750 / 25,250). Class names: the sorted class keys, underscores made
spaces (torchvision's label order)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from torch.utils.data import Dataset

from . import templates
from .common import RealDataset, absent, readable

_FILES = {
    "train": ("food-101/images", "food-101/meta/train.json"),
    "test": ("food-101/images", "food-101/meta/test.json"),
    "classnames": ("food-101/meta/train.json",),
}


def _build(root: Path, split: str, transform: Callable | None) -> Dataset:
    from torchvision.datasets import Food101

    return Food101(str(root), split=split, transform=transform, download=False)


def _classnames(root: Path) -> list[str]:
    return [readable(name) for name in sorted(json.loads((root / "food-101/meta/train.json").read_text()))]


DATASET = RealDataset(
    name="Food101",
    num_classes=101,
    templates=templates.FOOD101,
    layout="food-101/images/<class>/*.jpg, food-101/meta/{train,test}.json (food-101.tar.gz, extracted)",
    missing=lambda root, part: absent(root, *_FILES[part]),
    build=_build,
    classnames=_classnames,
    epochs=4,  # TALL masks' table (see RealDataset.epochs); 553 steps an epoch: 2212 steps
)
