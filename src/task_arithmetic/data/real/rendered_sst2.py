"""Rendered SST2 (OpenAI's sentences rendered as images) through torchvision's reader of the
folder trees: train is the official train split (6,920), test the test split (1,821)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from torch.utils.data import Dataset

from . import templates
from .common import RealDataset, absent

CLASSNAMES = ("negative", "positive")
_FILES = {"train": ("rendered-sst2/train",), "test": ("rendered-sst2/test",), "classnames": ()}


def _build(root: Path, split: str, transform: Callable | None) -> Dataset:
    from torchvision.datasets import RenderedSST2

    return RenderedSST2(str(root), split=split, transform=transform, download=False)


DATASET = RealDataset(
    name="RenderedSST2",
    num_classes=2,
    templates=templates.RENDERED_SST2,
    layout="rendered-sst2/{train,test}/{negative,positive}/*.png (rendered-sst2.tgz, extracted)",
    missing=lambda root, part: absent(root, *_FILES[part]),
    build=_build,
    classnames=lambda root: list(CLASSNAMES),
    epochs=39,  # TALL masks' table (see RealDataset.epochs); 49 steps an epoch: 1911 steps
)
