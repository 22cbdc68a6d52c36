"""MNIST through torchvision's reader of the original idx files."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from torch.utils.data import Dataset

from . import templates
from .common import DIGITS, RealDataset, RGBThen, absent

_FILES = {
    "train": ("MNIST/raw/train-images-idx3-ubyte", "MNIST/raw/train-labels-idx1-ubyte"),
    "test": ("MNIST/raw/t10k-images-idx3-ubyte", "MNIST/raw/t10k-labels-idx1-ubyte"),
    "classnames": (),
}


def _missing(root: Path, part: str) -> list[str]:
    return absent(root, *_FILES[part])


def _build(root: Path, split: str, transform: Callable | None) -> Dataset:
    from torchvision.datasets import MNIST

    return MNIST(str(root), train=split == "train", transform=RGBThen(transform), download=False)


DATASET = RealDataset(
    name="MNIST",
    num_classes=10,
    templates=templates.DIGITS,
    layout="MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte (the four idx files, un-gzipped)",
    missing=_missing,
    build=_build,
    classnames=lambda root: list(DIGITS),
    epochs=5,
)
