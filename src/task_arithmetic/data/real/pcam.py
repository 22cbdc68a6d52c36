"""PatchCamelyon through torchvision's reader of the official HDF5 files (needs h5py). Train is
the official train split (262,144 patches), test the official test split (32,768)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from torch.utils.data import Dataset

from ...errors import UserError
from . import templates
from .common import RealDataset, absent

CLASSNAMES = ("lymph node", "lymph node containing metastatic tumor tissue")
_FILE = "pcam/camelyonpatch_level_2_split_{}_{}.h5"
_FILES = {
    "train": (_FILE.format("train", "x"), _FILE.format("train", "y")),
    "test": (_FILE.format("test", "x"), _FILE.format("test", "y")),
    "classnames": (),
}


def _build(root: Path, split: str, transform: Callable | None) -> Dataset:
    try:
        import h5py  # noqa: F401  (torchvision's reader imports it itself; this gives our message)
    except ImportError:
        raise UserError("PCAM is stored as HDF5 and needs the h5py package: `pip install h5py` (it is in requirements.txt)") from None
    from ._readers import PCAMFiles

    return PCAMFiles(str(root), split=split, transform=transform, download=False)


DATASET = RealDataset(
    name="PCAM",
    num_classes=2,
    templates=templates.PCAM,
    layout="pcam/camelyonpatch_level_2_split_{train,test}_{x,y}.h5 (the official files, un-gzipped)",
    missing=lambda root, part: absent(root, *_FILES[part]),
    build=_build,
    classnames=lambda root: list(CLASSNAMES),
    epochs=1,  # TALL masks' table (see RealDataset.epochs); 2009 steps
)
