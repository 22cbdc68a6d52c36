"""RESISC45. Images stay in the extracted NWPU-RESISC45/<class>/ folders; split lists (file names,
one a line) select train and test, as in the public code. The published lists
(resisc45-{train,val,test}.txt, 60/20/20: 18,900/6,300/6,300) are used when present; the split
tool writes lists of the same proportions, per class by a hash of the file name, when they are
not. Class names are the folder names."""

from __future__ import annotations

from collections.abc import Sized
from pathlib import Path
from typing import Callable, cast

from torch.utils.data import Dataset

from ...errors import UserError
from . import templates
from .common import RealDataset, Splitter, absent, class_folders, image_folder, readable
from .splitting import class_dirs, cut, hashed_order, image_files, read_lines, write_lines

IMAGES = "resisc45/NWPU-RESISC45"
LIST = "resisc45/resisc45-{}.txt"
SPLIT_FRACTIONS = {"train": 0.6, "val": 0.2, "test": 0.2}


def _missing(root: Path, part: str) -> list[str]:
    return absent(root, IMAGES) if part == "classnames" else absent(root, IMAGES, LIST.format(part))


class _InList:
    """is_valid_file for ImageFolder: the file's name is in the split list (picklable, unlike a lambda)."""

    def __init__(self, names: set[str]):
        self.names = names

    def __call__(self, path: str) -> bool:
        return Path(path).name in self.names


def _build(root: Path, split: str, transform: Callable | None) -> Dataset:
    names = set(read_lines(root / LIST.format(split)))
    dataset = image_folder(root / IMAGES, transform, class_folders(root / IMAGES), "RESISC45", is_valid_file=_InList(names))
    found = len(cast(Sized, dataset))  # an ImageFolder
    if found != len(names):
        raise UserError(
            f"RESISC45: {LIST.format(split)} names {len(names)} images but {found} were found in {root / IMAGES}; "
            "re-extract NWPU-RESISC45 or remake the lists"
        )
    return dataset


def _raw_missing(root: Path) -> list[str]:
    return absent(root, IMAGES)


def _make(root: Path) -> list[str]:
    if not absent(root, LIST.format("train"), LIST.format("test")):
        return []
    per_split: dict[str, list[str]] = {split: [] for split in SPLIT_FRACTIONS}
    for cls in class_dirs(root / IMAGES):
        order = hashed_order(image_files(root / IMAGES / cls), salt=f"RESISC45:{cls}")
        for split, names in zip(SPLIT_FRACTIONS, cut(order, list(SPLIT_FRACTIONS.values()))):
            per_split[split] += sorted(names)
    done = []
    for split, names in per_split.items():
        path = root / LIST.format(split)
        if not path.exists():
            write_lines(path, names)
            done.append(f"RESISC45: wrote {path} ({len(names)} images)")
        elif read_lines(path) != names:
            # The three lists belong together: never complete published lists with ours.
            raise UserError(f"RESISC45: {path} exists but the other split lists do not; add the matching published lists or delete it and rerun")
    return done


DATASET = RealDataset(
    name="RESISC45",
    num_classes=45,
    templates=templates.RESISC45,
    layout="resisc45/NWPU-RESISC45/<class>/*.jpg + resisc45/resisc45-{train,test}.txt (published lists, or made by the split tool)",
    missing=_missing,
    build=_build,
    classnames=lambda root: [readable(c) for c in class_folders(root / IMAGES)],
    epochs=15,
    splitter=Splitter(
        raw_layout="resisc45/NWPU-RESISC45/<class>/*.jpg from NWPU-RESISC45.rar",
        raw_missing=_raw_missing,
        make=_make,
    ),
)
