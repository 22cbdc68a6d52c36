"""EuroSAT (RGB). No official split: the field's is a random 80/10/10 train/val/test cut
(21,600/2,700/2,700). Ours cuts each class by a hash of the file name, which gives exactly those
sizes. Class names: the readable ones OpenAI published with CLIP, keyed by folder name."""

from __future__ import annotations

import re
from pathlib import Path

from . import templates
from .common import RealDataset, Splitter
from .folders import FolderSplits
from .splitting import build_folder, class_dirs, cut, hashed_order, image_files

FOLDERS = FolderSplits("EuroSAT", train="EuroSAT_splits/train", test="EuroSAT_splits/test")
SPLIT_FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}
# EuroSAT_RGB.zip (zenodo) unpacks to EuroSAT_RGB/, the older EuroSAT.zip to 2750/,
# torchvision's EuroSAT class to eurosat/2750/.
RAW_DIRS = ("EuroSAT_RGB", "2750", "eurosat/2750")

READABLE = {
    "AnnualCrop": "annual crop land",
    "Forest": "forest",
    "HerbaceousVegetation": "brushland or shrubland",
    "Highway": "highway or road",
    "Industrial": "industrial buildings or commercial buildings",
    "Pasture": "pasture land",
    "PermanentCrop": "permanent crop land",
    "Residential": "residential buildings or homes or apartments",
    "River": "river",
    "SeaLake": "lake or sea",
}


def readable_name(folder: str) -> str:
    """Known folders get CLIP's names; anything else is split at capitals ("SeaLake" -> "sea lake")."""
    return READABLE.get(folder) or " ".join(re.findall(r"[A-Z][a-z]*|[a-z]+|\d+", folder)).lower() or folder


def _raw_dir(root: Path) -> Path | None:
    for rel in RAW_DIRS:
        if (root / rel).is_dir() and class_dirs(root / rel):
            return root / rel
    return None


def _raw_missing(root: Path) -> list[str]:
    return [] if _raw_dir(root) else ["EuroSAT_RGB/<class>/*.jpg (or 2750/<class>/*.jpg)"]


def _make(root: Path) -> list[str]:
    raw = _raw_dir(root)
    assert raw is not None  # the split tool makes the folders only when _raw_missing found everything
    per_split: dict[str, list[tuple[Path, str]]] = {split: [] for split in SPLIT_FRACTIONS}
    for cls in class_dirs(raw):
        order = hashed_order(image_files(raw / cls), salt=f"EuroSAT:{cls}")
        for split, names in zip(SPLIT_FRACTIONS, cut(order, list(SPLIT_FRACTIONS.values()))):
            per_split[split] += [(raw / cls / name, f"{cls}/{name}") for name in names]
    done = []
    for split, sources in per_split.items():
        # val is unused here (our Val comes out of train) but kept for the public layout.
        dest = root / "EuroSAT_splits" / split
        if not dest.exists():
            build_folder(dest, sorted(sources, key=lambda item: item[1]))
            done.append(f"EuroSAT: made {dest} ({len(sources)} images)")
    return done


DATASET = RealDataset(
    name="EuroSAT",
    num_classes=10,
    templates=templates.EUROSAT,
    layout="EuroSAT_splits/train/<class>/*.jpg and EuroSAT_splits/test/<class>/*.jpg (made by the split tool)",
    missing=FOLDERS.missing,
    build=FOLDERS.build,
    classnames=lambda root: [readable_name(c) for c in FOLDERS.classes(root)],
    epochs=12,
    splitter=Splitter(
        raw_layout="EuroSAT_RGB/<class>/*.jpg (or 2750/<class>/*.jpg) from the RGB EuroSAT zip",
        raw_missing=_raw_missing,
        make=_make,
    ),
)
