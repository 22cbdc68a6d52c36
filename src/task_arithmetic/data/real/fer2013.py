"""FER2013 from the Kaggle challenge's full CSV (fer2013.csv or icml_face_data.csv): train is
"Training" (28,709 faces), test "PublicTest" + "PrivateTest" (7,178), torchvision's split. Class
names in the file's label order (0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise,
6 neutral), worded as the field's prompts use them."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from torch.utils.data import Dataset

from . import templates
from .common import RealDataset, RGBThen

FILES = ("fer2013/fer2013.csv", "fer2013/icml_face_data.csv")  # the same data, differently headed
CLASSNAMES = ("angry", "disgusted", "fearful", "happy", "sad", "surprised", "neutral")


def _csv(root: Path) -> Path | None:
    return next((root / rel for rel in FILES if (root / rel).is_file()), None)


def _missing(root: Path, part: str) -> list[str]:
    return [] if part == "classnames" or _csv(root) else ["fer2013/fer2013.csv (or fer2013/icml_face_data.csv)"]


def _build(root: Path, split: str, transform: Callable | None) -> Dataset:
    from ._readers import FER2013Csv

    csv = _csv(root)
    assert csv is not None  # load_split checked `missing` first
    return FER2013Csv(csv, split, RGBThen(transform))


DATASET = RealDataset(
    name="FER2013",
    num_classes=7,
    templates=templates.FER2013,
    layout="fer2013/fer2013.csv or fer2013/icml_face_data.csv (the full CSV with emotion, pixels and Usage; Kaggle's test.csv has no labels)",
    missing=_missing,
    build=_build,
    classnames=lambda root: list(CLASSNAMES),
    epochs=10,  # TALL masks' table (see RealDataset.epochs); 202 steps an epoch: 2020 steps
)
