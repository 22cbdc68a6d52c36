"""Oxford-IIIT Pet through torchvision's reader (images.tar.gz + annotations.tar.gz): train is
the official trainval list (3,680), test the test list (3,669). Class names: OpenAI's CLIP names
of the 37 breeds, in label order."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from torch.utils.data import Dataset

from . import templates
from .common import RealDataset, absent

CLASSNAMES = (
    "Abyssinian", "American Bulldog", "American Pit Bull Terrier", "Basset Hound", "Beagle", "Bengal", "Birman",
    "Bombay", "Boxer", "British Shorthair", "Chihuahua", "Egyptian Mau", "English Cocker Spaniel", "English Setter",
    "German Shorthaired", "Great Pyrenees", "Havanese", "Japanese Chin", "Keeshond", "Leonberger", "Maine Coon",
    "Miniature Pinscher", "Newfoundland", "Persian", "Pomeranian", "Pug", "Ragdoll", "Russian Blue", "Saint Bernard",
    "Samoyed", "Scottish Terrier", "Shiba Inu", "Siamese", "Sphynx", "Staffordshire Bull Terrier", "Wheaten Terrier",
    "Yorkshire Terrier",
)

_FILES = {
    "train": ("oxford-iiit-pet/images", "oxford-iiit-pet/annotations/trainval.txt"),
    "test": ("oxford-iiit-pet/images", "oxford-iiit-pet/annotations/test.txt"),
    "classnames": (),
}


def _build(root: Path, split: str, transform: Callable | None) -> Dataset:
    from torchvision.datasets import OxfordIIITPet

    return OxfordIIITPet(str(root), split="trainval" if split == "train" else "test", transform=transform, download=False)


DATASET = RealDataset(
    name="OxfordIIITPet",
    num_classes=37,
    templates=templates.OXFORD_PETS,
    layout="oxford-iiit-pet/images/*.jpg, oxford-iiit-pet/annotations/{trainval,test}.txt (images.tar.gz, annotations.tar.gz)",
    missing=lambda root, part: absent(root, *_FILES[part]),
    build=_build,
    classnames=lambda root: list(CLASSNAMES),
    epochs=82,  # TALL masks' table (see RealDataset.epochs); 26 steps an epoch: 2132 steps
)
