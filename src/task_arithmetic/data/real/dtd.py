"""DTD (Describable Textures). Split as the field does (after PAINT / task vectors): the official
partition 1's train and val lists together form `train` (3,760 images), its test list is `test`
(1,880 images). Class names are the folder names."""

from __future__ import annotations

from pathlib import Path

from ...errors import UserError
from . import templates
from .common import RealDataset, Splitter, readable
from .folders import FolderSplits
from .splitting import build_folder, read_lines

FOLDERS = FolderSplits("DTD", train="dtd/train", test="dtd/test")
PARTS = {"train": ("train1.txt", "val1.txt"), "test": ("test1.txt",)}
# dtd-r1.0.1.tar.gz unpacks to dtd/; torchvision's DTD class nests it once more.
RAW_BASES = ("dtd", "dtd/dtd")


def _raw_base(root: Path) -> Path | None:
    for base in RAW_BASES:
        if (root / base / "images").is_dir() and all((root / base / "labels" / name).is_file() for names in PARTS.values() for name in names):
            return root / base
    return None


def _raw_missing(root: Path) -> list[str]:
    return [] if _raw_base(root) else ["dtd/images/<class>/*.jpg and dtd/labels/{train1,val1,test1}.txt"]


def _make(root: Path) -> list[str]:
    base = _raw_base(root)
    assert base is not None  # the split tool makes the folders only when _raw_missing found everything
    done = []
    for split, lists in PARTS.items():
        dest = root / (FOLDERS.train if split == "train" else FOLDERS.test)
        if dest.exists():
            continue
        entries = [line for name in lists for line in read_lines(base / "labels" / name)]
        sources = [(base / "images" / entry, entry) for entry in entries]
        lacking = [entry for src, entry in sources if not src.is_file()]
        if lacking:
            raise UserError(f"DTD: {len(lacking)} images named in {base / 'labels'} are absent from {base / 'images'} (e.g. {lacking[0]}); re-extract dtd-r1.0.1.tar.gz")
        build_folder(dest, sources, sources_in=base / "images", listed_in=base / "labels")
        done.append(f"DTD: made {dest} ({len(sources)} images)")
    return done


DATASET = RealDataset(
    name="DTD",
    num_classes=47,
    templates=templates.DTD,
    layout="dtd/train/<class>/*.jpg and dtd/test/<class>/*.jpg (made by the split tool)",
    missing=FOLDERS.missing,
    build=FOLDERS.build,
    classnames=lambda root: [readable(c) for c in FOLDERS.classes(root)],
    epochs=76,
    splitter=Splitter(
        raw_layout="dtd/images/<class>/*.jpg + dtd/labels/{train1,val1,test1}.txt from dtd-r1.0.1.tar.gz",
        raw_missing=_raw_missing,
        make=_make,
    ),
)
