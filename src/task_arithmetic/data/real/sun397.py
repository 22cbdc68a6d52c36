"""SUN397. Split: the official partition 1 (Training_01.txt / Testing_01.txt of Partitions.zip,
50 + 50 images per class: 19,850 each), the split the task-vectors papers report. Class folders
are the class path with "/" turned into "_" ("/a/abbey" -> "a_abbey"); the readable name drops the
letter prefix ("abbey", "apartment building outdoor")."""

from __future__ import annotations

from pathlib import Path

from ...errors import UserError
from . import templates
from .common import RealDataset, Splitter, readable
from .folders import FolderSplits
from .splitting import build_folder, read_lines

FOLDERS = FolderSplits("SUN397", train="sun397/train", test="sun397/test")
LISTS = {"train": "Training_01.txt", "test": "Testing_01.txt"}
# Partitions.zip may be unpacked inside SUN397/ (as torchvision does), into SUN397/Partitions/ or beside SUN397/.
LIST_DIRS = ("SUN397", "SUN397/Partitions", "Partitions", ".")


def class_folder(entry: str) -> str:
    """'/a/abbey/sun_x.jpg' -> 'a_abbey' (the class path, flattened to one folder name)."""
    return "_".join(entry.strip("/").split("/")[:-1])


def readable_name(folder: str) -> str:
    return readable(folder.split("_", 1)[1] if "_" in folder else folder)


def _list_dir(root: Path) -> Path | None:
    for rel in LIST_DIRS:
        if all((root / rel / name).is_file() for name in LISTS.values()):
            return root / rel
    return None


def _raw_missing(root: Path) -> list[str]:
    lacking = [] if (root / "SUN397").is_dir() else ["SUN397/<letter>/<class>/*.jpg"]
    if _list_dir(root) is None:
        lacking.append("SUN397/{Training_01,Testing_01}.txt (from Partitions.zip)")
    return lacking


def _make(root: Path) -> list[str]:
    lists, images = _list_dir(root), root / "SUN397"
    assert lists is not None  # the split tool makes the folders only when _raw_missing found everything
    done = []
    for split, list_name in LISTS.items():
        dest = root / (FOLDERS.train if split == "train" else FOLDERS.test)
        if dest.exists():
            continue
        entries = read_lines(lists / list_name)
        sources = [(images / entry.strip("/"), f"{class_folder(entry)}/{Path(entry).name}") for entry in entries]
        lacking = [str(src) for src, _ in sources if not src.is_file()]
        if lacking:
            raise UserError(f"SUN397: {len(lacking)} images named in {lists / list_name} are absent (e.g. {lacking[0]}); re-extract SUN397.tar.gz into {root}")
        build_folder(dest, sources, sources_in=images, listed_in=lists / list_name)
        done.append(f"SUN397: made {dest} ({len(sources)} images)")
    return done


DATASET = RealDataset(
    name="SUN397",
    num_classes=397,
    templates=templates.SUN397,
    layout="sun397/train/<a_abbey...>/*.jpg and sun397/test/<a_abbey...>/*.jpg (made by the split tool)",
    missing=FOLDERS.missing,
    build=FOLDERS.build,
    classnames=lambda root: [readable_name(c) for c in FOLDERS.classes(root)],
    epochs=14,
    splitter=Splitter(
        raw_layout="SUN397/<letter>/<class>/*.jpg from SUN397.tar.gz + Training_01.txt/Testing_01.txt from Partitions.zip",
        raw_missing=_raw_missing,
        make=_make,
    ),
)
