"""ImageNet (ILSVRC-2012), the control task: never downloaded. Train and test are ImageFolder
trees of WordNet-id folders (test = the official val set, as torchvision lays it out). Class names,
in the sorted-wnid order of the folders, come from the first of:
  - `imagenet/classnames.txt`, one name a line;
  - for a full copy (1000 class folders), the curated CLIP names open_clip ships, which the field's
    zero-shot and control numbers use;
  - torchvision's `imagenet/meta.bin` (the first synonym of each wnid).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from torch.utils.data import Dataset

from ...errors import UserError
from . import templates
from .common import RealDataset, absent, class_folders, image_folder

TRAIN = "imagenet/train"
# val_in_folder first: copies made for the task-vectors code keep the flat val/ beside it.
TEST_DIRS = ("imagenet/val_in_folder", "imagenet/val")
CLASSNAMES_TXT = "imagenet/classnames.txt"
META_BIN = "imagenet/meta.bin"
FULL_CLASS_COUNT = 1000


def _test_dir(root: Path) -> str | None:
    return next((rel for rel in TEST_DIRS if (root / rel).is_dir()), None)


def _missing(root: Path, part: str) -> list[str]:
    if part == "test":
        return [] if _test_dir(root) else ["imagenet/val/<wnid>/*.JPEG"]
    lacking = absent(root, TRAIN)
    named = (root / CLASSNAMES_TXT).is_file() or (root / META_BIN).is_file() or (not lacking and _is_full(root))
    if part == "classnames" and not named:
        lacking.append(f"{CLASSNAMES_TXT} (or torchvision's {META_BIN}; not needed for a full 1000-class copy)")
    return lacking


def _is_full(root: Path) -> bool:
    return sum(1 for entry in (root / TRAIN).iterdir() if entry.is_dir()) == FULL_CLASS_COUNT


def _build(root: Path, split: str, transform: Callable | None) -> Dataset:
    folder = TRAIN if split == "train" else _test_dir(root)
    assert folder is not None  # load_split checked `missing` first
    return image_folder(root / folder, transform, class_folders(root / TRAIN), "ImageNet")


def _classnames(root: Path) -> list[str]:
    wnids = class_folders(root / TRAIN)
    if (root / CLASSNAMES_TXT).is_file():
        names = [line.strip() for line in (root / CLASSNAMES_TXT).read_text().splitlines() if line.strip()]
        if len(names) != len(wnids):
            raise UserError(f"ImageNet: {root / CLASSNAMES_TXT} has {len(names)} names for {len(wnids)} class folders in {root / TRAIN}; one name a line, in sorted-wnid order")
        return names
    if len(wnids) == FULL_CLASS_COUNT:
        import open_clip

        return list(open_clip.IMAGENET_CLASSNAMES)
    from torchvision.datasets.imagenet import load_meta_file

    wnid_to_names = load_meta_file(str(root / "imagenet"))[0]
    unknown = [wnid for wnid in wnids if wnid not in wnid_to_names]
    if unknown:
        raise UserError(f"ImageNet: {root / META_BIN} has no names for {len(unknown)} class folders (e.g. {unknown[0]}); use the meta.bin of the same ImageNet copy")
    return [wnid_to_names[wnid][0] for wnid in wnids]


DATASET = RealDataset(
    name="ImageNet",
    num_classes=1000,
    templates=templates.IMAGENET,
    layout="imagenet/train/<wnid>/*.JPEG, imagenet/val/<wnid>/*.JPEG (or imagenet/val_in_folder/), imagenet/classnames.txt or torchvision's imagenet/meta.bin unless all 1000 classes are there",
    missing=_missing,
    build=_build,
    classnames=_classnames,
    is_control=True,
)
