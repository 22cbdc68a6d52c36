"""STL10 through torchvision's reader of the binary files (stl10_binary.tar.gz, extracted); only
the labelled train (5,000) and test (8,000) images are used. Class names: class_names.txt."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from torch.utils.data import Dataset

from . import templates
from .common import RealDataset, absent

_BASE = "stl10_binary"
_FILES = {
    "train": (f"{_BASE}/train_X.bin", f"{_BASE}/train_y.bin"),
    "test": (f"{_BASE}/test_X.bin", f"{_BASE}/test_y.bin"),
    "classnames": (f"{_BASE}/class_names.txt",),
}


def _build(root: Path, split: str, transform: Callable | None) -> Dataset:
    from ._readers import STL10Files

    return STL10Files(str(root), split=split, transform=transform, download=False)


def _classnames(root: Path) -> list[str]:
    return [line.strip() for line in (root / _BASE / "class_names.txt").read_text().splitlines() if line.strip()]


DATASET = RealDataset(
    name="STL10",
    num_classes=10,
    templates=templates.STL10,
    layout=f"{_BASE}/{{train_X,train_y,test_X,test_y}}.bin + {_BASE}/class_names.txt (stl10_binary.tar.gz, extracted)",
    missing=lambda root, part: absent(root, *_FILES[part]),
    build=_build,
    classnames=_classnames,
    epochs=60,  # TALL masks' table (see RealDataset.epochs); 36 steps an epoch: 2160 steps
)
