"""Stanford Cars through torchvision's reader of the devkit .mat annotations. The official
download is gone; copies (e.g. on Kaggle) must be arranged into the torchvision layout below.
Class names come from the devkit's cars_meta.mat."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from torch.utils.data import Dataset

from . import templates
from .common import RealDataset, absent

_FILES = {
    "train": ("stanford_cars/devkit/cars_train_annos.mat", "stanford_cars/devkit/cars_meta.mat", "stanford_cars/cars_train"),
    "test": ("stanford_cars/cars_test_annos_withlabels.mat", "stanford_cars/devkit/cars_meta.mat", "stanford_cars/cars_test"),
    "classnames": ("stanford_cars/devkit/cars_meta.mat",),
}


def _missing(root: Path, part: str) -> list[str]:
    return absent(root, *_FILES[part])


def _build(root: Path, split: str, transform: Callable | None) -> Dataset:
    from torchvision.datasets import StanfordCars

    return StanfordCars(str(root), split=split, transform=transform, download=False)


def _classnames(root: Path) -> list[str]:
    import scipy.io

    names = scipy.io.loadmat(str(root / "stanford_cars/devkit/cars_meta.mat"), squeeze_me=True)["class_names"]
    return [str(name) for name in names.tolist()]


DATASET = RealDataset(
    name="Cars",
    num_classes=196,
    templates=templates.CARS,
    layout=(
        "stanford_cars/devkit/{cars_meta.mat,cars_train_annos.mat}, stanford_cars/cars_test_annos_withlabels.mat, "
        "stanford_cars/cars_train/*.jpg, stanford_cars/cars_test/*.jpg"
    ),
    missing=_missing,
    build=_build,
    classnames=_classnames,
    epochs=35,
)
