"""FashionMNIST, KMNIST and EMNIST ("letters", the split the 20-task benchmark uses) through
torchvision's readers of the original idx files, like MNIST. EMNIST's files hold the images
transposed and letters labelled 1..26; both are undone here so that 'A' is upright and label 0."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Callable

from torch.utils.data import Dataset

from . import templates
from .common import RealDataset, RGBThen, absent

# The field's names (FusionBench's task pools); torchvision writes "T-shirt/top", romaji for KMNIST.
FASHION_CLASSNAMES = ("T - shirt / top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
KMNIST_CLASSNAMES = ("お", "き", "す", "つ", "な", "は", "ま", "や", "れ", "を")
EMNIST_CLASSNAMES = tuple(string.ascii_uppercase)


def _idx_files(folder: str, train: str, test: str) -> dict[str, tuple[str, ...]]:
    return {
        "train": (f"{folder}/raw/{train}-images-idx3-ubyte", f"{folder}/raw/{train}-labels-idx1-ubyte"),
        "test": (f"{folder}/raw/{test}-images-idx3-ubyte", f"{folder}/raw/{test}-labels-idx1-ubyte"),
        "classnames": (),
    }


_FASHION = _idx_files("FashionMNIST", "train", "t10k")
_KMNIST = _idx_files("KMNIST", "train", "t10k")
_EMNIST = _idx_files("EMNIST", "emnist-letters-train", "emnist-letters-test")


def _fashion(root: Path, split: str, transform: Callable | None) -> Dataset:
    from torchvision.datasets import FashionMNIST

    return FashionMNIST(str(root), train=split == "train", transform=RGBThen(transform), download=False)


def _kmnist(root: Path, split: str, transform: Callable | None) -> Dataset:
    from torchvision.datasets import KMNIST

    return KMNIST(str(root), train=split == "train", transform=RGBThen(transform), download=False)


def _emnist(root: Path, split: str, transform: Callable | None) -> Dataset:
    from torchvision.datasets import EMNIST

    from ._readers import EMNISTLetterTarget, Upright

    return EMNIST(
        str(root), split="letters", train=split == "train", transform=Upright(RGBThen(transform)), target_transform=EMNISTLetterTarget(), download=False
    )


_IDX_NOTE = "(the idx files, un-gzipped)"

FASHION_MNIST = RealDataset(
    name="FashionMNIST",
    num_classes=10,
    templates=templates.FASHION_MNIST,
    layout=f"FashionMNIST/raw/{{train,t10k}}-{{images-idx3,labels-idx1}}-ubyte {_IDX_NOTE}",
    missing=lambda root, part: absent(root, *_FASHION[part]),
    build=_fashion,
    classnames=lambda root: list(FASHION_CLASSNAMES),
    epochs=5,  # TALL masks' table (see RealDataset.epochs); 430 steps an epoch: 2150 steps
)

KMNIST = RealDataset(
    name="KMNIST",
    num_classes=10,
    templates=templates.KMNIST,
    layout=f"KMNIST/raw/{{train,t10k}}-{{images-idx3,labels-idx1}}-ubyte {_IDX_NOTE}",
    missing=lambda root, part: absent(root, *_KMNIST[part]),
    build=_kmnist,
    classnames=lambda root: list(KMNIST_CLASSNAMES),
    epochs=5,  # TALL masks' table (see RealDataset.epochs); 430 steps an epoch: 2150 steps
)

EMNIST = RealDataset(
    name="EMNIST",
    num_classes=26,
    templates=templates.EMNIST,
    layout=f"EMNIST/raw/emnist-letters-{{train,test}}-{{images-idx3,labels-idx1}}-ubyte {_IDX_NOTE}",
    missing=lambda root, part: absent(root, *_EMNIST[part]),
    build=_emnist,
    classnames=lambda root: list(EMNIST_CLASSNAMES),
    epochs=2,  # TALL masks' table (see RealDataset.epochs), set there for the digits split (3672 steps); on letters 936 steps an epoch: 1872 steps
)
