"""Datasets stored as one folder per split with one sub-folder per class (ImageFolder layout)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from torch.utils.data import Dataset

from .common import absent, class_folders, image_folder


@dataclass(frozen=True)
class FolderSplits:
    name: str
    train: str  # relative to --data-location
    test: str

    def missing(self, root: Path, part: str) -> list[str]:
        return absent(root, self.test if part == "test" else self.train)

    def classes(self, root: Path) -> list[str]:
        return class_folders(root / self.train)

    def build(self, root: Path, split: str, transform: Callable | None) -> Dataset:
        folder = self.train if split == "train" else self.test
        return image_folder(root / folder, transform, self.classes(root), self.name)
