"""SVHN (cropped digits) through torchvision's reader of the official .mat files."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from torch.utils.data import Dataset

from . import templates
from .common import DIGITS, RealDataset, absent

_FILES = {"train": ("svhn/train_32x32.mat",), "test": ("svhn/test_32x32.mat",), "classnames": ()}


def _missing(root: Path, part: str) -> list[str]:
    return absent(root, *_FILES[part])


def _build(root: Path, split: str, transform: Callable | None) -> Dataset:
    from ._svhn_reader import SVHNFiles

    return SVHNFiles(str(root / "svhn"), split=split, transform=transform, download=False)


DATASET = RealDataset(
    name="SVHN",
    num_classes=10,
    templates=templates.DIGITS,
    layout="svhn/{train,test}_32x32.mat (the official cropped-digits files)",
    missing=_missing,
    build=_build,
    classnames=lambda root: list(DIGITS),
    epochs=4,
)
