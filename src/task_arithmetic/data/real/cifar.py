"""CIFAR10 and CIFAR100 through torchvision's reader of the python-version batches
(cifar-10-python.tar.gz, cifar-100-python.tar.gz, extracted). Class names come from the batches'
meta file (CIFAR100's fine labels, underscores made spaces)."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Callable

from torch.utils.data import Dataset

from . import templates
from .common import RealDataset, absent, readable

_CIFAR10 = "cifar-10-batches-py"
_CIFAR100 = "cifar-100-python"
_FILES10 = {
    "train": tuple(f"{_CIFAR10}/data_batch_{i}" for i in range(1, 6)) + (f"{_CIFAR10}/batches.meta",),
    "test": (f"{_CIFAR10}/test_batch", f"{_CIFAR10}/batches.meta"),
    "classnames": (f"{_CIFAR10}/batches.meta",),
}
_FILES100 = {
    "train": (f"{_CIFAR100}/train", f"{_CIFAR100}/meta"),
    "test": (f"{_CIFAR100}/test", f"{_CIFAR100}/meta"),
    "classnames": (f"{_CIFAR100}/meta",),
}


def _build10(root: Path, split: str, transform: Callable | None) -> Dataset:
    from ._readers import CIFAR10Files

    return CIFAR10Files(str(root), train=split == "train", transform=transform, download=False)


def _build100(root: Path, split: str, transform: Callable | None) -> Dataset:
    from ._readers import CIFAR100Files

    return CIFAR100Files(str(root), train=split == "train", transform=transform, download=False)


def _meta_names(path: Path, key: str) -> list[str]:
    with open(path, "rb") as file:
        return [readable(name) for name in pickle.load(file, encoding="latin1")[key]]


CIFAR10 = RealDataset(
    name="CIFAR10",
    num_classes=10,
    templates=templates.CIFAR,
    layout=f"{_CIFAR10}/{{data_batch_1..5,test_batch,batches.meta}} (cifar-10-python.tar.gz, extracted)",
    missing=lambda root, part: absent(root, *_FILES10[part]),
    build=_build10,
    classnames=lambda root: _meta_names(root / _CIFAR10 / "batches.meta", "label_names"),
    epochs=6,  # TALL masks' table (see RealDataset.epochs); 352 steps an epoch: 2112 steps
)

CIFAR100 = RealDataset(
    name="CIFAR100",
    num_classes=100,
    templates=templates.CIFAR,
    layout=f"{_CIFAR100}/{{train,test,meta}} (cifar-100-python.tar.gz, extracted)",
    missing=lambda root, part: absent(root, *_FILES100[part]),
    build=_build100,
    classnames=lambda root: _meta_names(root / _CIFAR100 / "meta", "fine_label_names"),
    epochs=6,  # TALL masks' table (see RealDataset.epochs); 352 steps an epoch: 2112 steps
)
