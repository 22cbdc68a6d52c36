"""torchvision's readers of the extra tasks' files, without the per-load md5 pass, plus the two
readers torchvision does not provide in the needed form. Kept in their own module (like
_svhn_reader) so the classes are importable by name, which DataLoader workers need, without
importing torchvision when the tasks are registered.

Existence is checked by each task's `missing`; torchvision would re-hash every file on every
load (CIFAR, STL10, Flowers102), and refuse any copy re-packed by a mirror.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image
from torch.utils.data import Dataset
from torchvision.datasets import CIFAR10, CIFAR100, PCAM, STL10, Flowers102


class CIFAR10Files(CIFAR10):
    def _check_integrity(self) -> bool:
        return True

    def _load_meta(self) -> None:
        import pickle

        with open(Path(self.root) / self.base_folder / self.meta["filename"], "rb") as infile:
            self.classes = pickle.load(infile, encoding="latin1")[self.meta["key"]]
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}


class CIFAR100Files(CIFAR100):
    _check_integrity = CIFAR10Files._check_integrity
    _load_meta = CIFAR10Files._load_meta


class STL10Files(STL10):
    # torchvision's check also wants the 2.6 GB unlabeled_X.bin, which no task here reads.
    def _check_integrity(self) -> bool:
        return True


class Flowers102Files(Flowers102):
    def _check_integrity(self) -> bool:
        return self._images_folder.is_dir()


class PCAMFiles(PCAM):
    """torchvision keeps the h5py module on the instance, which cannot be pickled for workers."""

    def __getstate__(self) -> dict:
        return {key: value for key, value in self.__dict__.items() if key != "h5py"}

    def __setstate__(self, state: dict) -> None:
        import h5py

        self.__dict__.update(state, h5py=h5py)


class EMNISTLetterTarget:
    """EMNIST "letters" labels run 1..26 (0 is an unused N/A class): shift them to 0..25."""

    def __call__(self, target: int) -> int:
        return int(target) - 1


class Upright:
    """EMNIST's idx files store every image transposed; flip it back before other transforms."""

    def __init__(self, transform: Callable | None):
        self.transform = transform

    def __call__(self, image):
        image = image.transpose(Image.Transpose.TRANSPOSE)
        return image if self.transform is None else self.transform(image)


FER2013_USAGE = {"train": ("Training",), "test": ("PublicTest", "PrivateTest")}


class FER2013Csv(Dataset):
    """FER2013 from the full Kaggle CSV (emotion, pixels, Usage), as torchvision splits it: test is
    PublicTest + PrivateTest. torchvision's own class md5-checks the file on every load, and the
    Kaggle test.csv it also accepts has no labels, so it cannot serve as a test set."""

    def __init__(self, csv_path: Path, split: str, transform: Callable | None = None):
        self.transform = transform
        self.images: list[np.ndarray] = []
        self.labels: list[int] = []
        with open(csv_path, newline="") as file:
            for row in csv.DictReader(file):
                # icml_face_data.csv writes its column names with a leading space
                row = {key.strip(): value for key, value in row.items()}
                if row["Usage"].strip() not in FER2013_USAGE[split]:
                    continue
                pixels = np.array(row["pixels"].split(), dtype=np.uint8)
                side = int(round(len(pixels) ** 0.5))
                self.images.append(pixels.reshape(side, side))
                self.labels.append(int(row["emotion"]))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        image = Image.fromarray(self.images[index])
        return (image if self.transform is None else self.transform(image)), self.labels[index]

    def example_keys(self) -> tuple[list[str], list[int]]:
        """A digest of each face's pixels (the CSV row has no other id), and its label (fingerprints.py)."""
        import hashlib

        return [hashlib.blake2b(image.tobytes(), digest_size=16).hexdigest() for image in self.images], list(self.labels)
