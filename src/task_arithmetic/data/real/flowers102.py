"""Oxford Flowers102 through torchvision's reader (102flowers.tgz + imagelabels.mat + setid.mat):
train is the official train split (10 images a class), test the official test split (6,149).
The data has no class names; these are the ones OpenAI published with CLIP (also shipped by the
CLIP benchmark package)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from torch.utils.data import Dataset

from . import templates
from .common import RealDataset, absent

CLASSNAMES = (
    "pink primrose", "hard-leaved pocket orchid", "canterbury bells", "sweet pea", "english marigold", "tiger lily",
    "moon orchid", "bird of paradise", "monkshood", "globe thistle", "snapdragon", "colt's foot", "king protea",
    "spear thistle", "yellow iris", "globe flower", "purple coneflower", "peruvian lily", "balloon flower",
    "giant white arum lily", "fire lily", "pincushion flower", "fritillary", "red ginger", "grape hyacinth",
    "corn poppy", "prince of wales feathers", "stemless gentian", "artichoke", "sweet william", "carnation",
    "garden phlox", "love in the mist", "mexican aster", "alpine sea holly", "ruby-lipped cattleya", "cape flower",
    "great masterwort", "siam tulip", "lenten rose", "barbeton daisy", "daffodil", "sword lily", "poinsettia",
    "bolero deep blue", "wallflower", "marigold", "buttercup", "oxeye daisy", "common dandelion", "petunia",
    "wild pansy", "primula", "sunflower", "pelargonium", "bishop of llandaff", "gaura", "geranium", "orange dahlia",
    "pink and yellow dahlia", "cautleya spicata", "japanese anemone", "black-eyed susan", "silverbush",
    "californian poppy", "osteospermum", "spring crocus", "bearded iris", "windflower", "tree poppy", "gazania",
    "azalea", "water lily", "rose", "thorn apple", "morning glory", "passion flower", "lotus", "toad lily",
    "anthurium", "frangipani", "clematis", "hibiscus", "columbine", "desert-rose", "tree mallow", "magnolia",
    "cyclamen", "watercress", "canna lily", "hippeastrum", "bee balm", "air plant", "foxglove", "bougainvillea",
    "camellia", "mallow", "mexican petunia", "bromelia", "blanket flower", "trumpet creeper", "blackberry lily",
)

_FILES = ("flowers-102/jpg", "flowers-102/imagelabels.mat", "flowers-102/setid.mat")


def _missing(root: Path, part: str) -> list[str]:
    return [] if part == "classnames" else absent(root, *_FILES)


def _build(root: Path, split: str, transform: Callable | None) -> Dataset:
    from ._readers import Flowers102Files

    return Flowers102Files(str(root), split=split, transform=transform, download=False)


DATASET = RealDataset(
    name="Flowers102",
    num_classes=102,
    templates=templates.FLOWERS102,
    layout="flowers-102/jpg/image_*.jpg (102flowers.tgz), flowers-102/imagelabels.mat, flowers-102/setid.mat",
    missing=_missing,
    build=_build,
    classnames=lambda root: list(CLASSNAMES),
    epochs=147,  # TALL masks' table (see RealDataset.epochs); 8 steps an epoch: 1176 steps, the shortest of the twelve; kept as published
)
