"""The rehearsal of the real path (tests/test_rehearsal_study.py): fakes of the eight datasets and
ImageNet in their real on-disk formats at realistic image sizes, and a real open_clip ViT
architecture shrunk only in width and depth.

The fakes come from tests/fakedata.py; only the image side length changes (its SIZE, set around
each maker call), so the loaders decode images of the sizes the real files have and the real
train/eval transforms resize them to 224 px.
"""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path
from typing import Iterator

import fakedata

# Typical side lengths of the real images (Cars' fake annotations store the box in uint8: <= 255).
REALISTIC_SIZES = {"MNIST": 28, "SVHN": 32, "GTSRB": 64, "EuroSAT": 64, "RESISC45": 256, "DTD": 300,
                   "SUN397": 256, "Cars": 240, "ImageNet": 320}
# Enough images that every Val hold-out (10 % of train) has about a dozen or more, so each class
# is likely to be there: a normalised accuracy needs a fine-tuned accuracy above zero.
COUNTS = {"MNIST": dict(n_train=400, n_test=40), "SVHN": dict(n_train=400, n_test=40), "GTSRB": dict(per_class=40, n_test=12),
          "Cars": dict(n_train=120, n_test=12), "DTD": dict(per_part=20), "EuroSAT": dict(per_class=40),
          "SUN397": dict(per_list=40), "RESISC45": dict(per_class=40), "ImageNet": dict(per_class_train=4, per_class_val=4)}
REHEARSAL_MODEL = "ViT-B-32-rehearsal"


@contextlib.contextmanager
def _image_size(size: int) -> Iterator[None]:
    saved, fakedata.SIZE = fakedata.SIZE, size
    try:
        yield
    finally:
        fakedata.SIZE = saved


def make_rehearsal_data(root: Path) -> None:
    """The eight datasets and ImageNet under `root`, splits made by the dataset tool, as a user has them."""
    makers = {**fakedata.READY_MAKERS, **fakedata.RAW_MAKERS}
    for name, size in REALISTIC_SIZES.items():
        with _image_size(size):
            makers[name](Path(root), **COUNTS[name])
    from task_arithmetic.data.real import tool

    tool.split(Path(root))


def register_rehearsal_model() -> str:
    """ViT-B-32 (224 px, patch 32, QuickGELU as OpenAI's) with narrow, shallow towers; returns its name."""
    import open_clip

    from task_arithmetic.models.factory import register_model_config

    config = copy.deepcopy(open_clip.get_model_config("ViT-B-32"))
    config["embed_dim"] = 32
    config["quick_gelu"] = True
    config["vision_cfg"].update(layers=2, width=64, head_width=32)
    config["text_cfg"].update(layers=1, width=32, heads=2)
    register_model_config(REHEARSAL_MODEL, config)
    return REHEARSAL_MODEL
