"""Which image transforms the decode cache (data/decoded.py) can serve, and how.

An open_clip transform is cut where it leaves PIL: the PIL part runs once per image when a cache
is built, the rest (ToTensor, Normalize) on every read. The evaluation transform is cacheable as
it is (resize, centre crop, RGB); the training transform's RandomResizedCrop is not, so its
records are the images squashed to train_side(size), or kept as they are when they are square and
no larger, and `crop_record` takes the crop from a record on each read.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import CenterCrop, Compose, Normalize, RandomResizedCrop, Resize, ToTensor
from torchvision.transforms import functional as TF


def train_side(size: int) -> int:
    """The side of a training record: room for RandomResizedCrop's box at 8/7 of the model's input."""
    return int(math.ceil(size * 8 / 7))


# ---- which transforms can be cached ---------------------------------------------------------------


def _is_rgb(t: Any) -> bool:
    return type(t).__name__ == "MaybeConvertMode" and getattr(t, "mode", "RGB") == "RGB" or getattr(t, "__name__", "") == "_convert_to_rgb"


def _is_to_tensor(t: Any) -> bool:
    return isinstance(t, ToTensor)


@dataclass(frozen=True)
class Stages:
    """A transform split where it leaves PIL: what runs once (cached) and what runs every pass."""

    kind: str  # "eval": the deterministic PIL stage is cached | "train": records squashed to `side`, cropped each pass
    pil: tuple  # the PIL transforms the cache applies once
    tensor: tuple  # the transforms after ToTensor (Normalize), applied to every record
    side: int  # records are side x side x 3
    crop: RandomResizedCrop | None = None  # train: the crop done on records

    def describe(self) -> str:
        """What decides the records' bytes: part of the cache's fingerprint."""
        return " | ".join(repr(t) for t in self.pil) + f" | side {self.side}"


def _steps(transform: Callable) -> list:
    return list(transform.transforms) if isinstance(transform, Compose) else [transform]


def _tensor_stage(rest: list) -> tuple | None:
    if not rest or not _is_to_tensor(rest[0]) or not all(isinstance(t, Normalize) for t in rest[1:]):
        return None
    return tuple(rest[1:])


def eval_stages(transform: Callable | None) -> Stages | None:
    """Stages of a deterministic evaluation transform (resize, centre crop, RGB, ToTensor, Normalize);
    None when it is anything else (then the images are decoded on every pass)."""
    if transform is None:
        return None
    steps = _steps(transform)
    cut = next((i for i, t in enumerate(steps) if _is_to_tensor(t)), None)
    if cut is None:
        return None
    pil, tensor = steps[:cut], _tensor_stage(steps[cut:])
    if tensor is None or not pil or not all(isinstance(t, (Resize, CenterCrop)) or _is_rgb(t) for t in pil) or not _is_rgb(pil[-1]):
        return None
    crops = [t for t in pil if isinstance(t, CenterCrop)]
    if not crops or len(set(crops[-1].size)) != 1:
        return None
    return Stages("eval", tuple(pil), tensor, int(crops[-1].size[0]))


def train_stages(transform: Callable) -> Stages | None:
    """Stages of open_clip's training transform (RandomResizedCrop, RGB, ToTensor, Normalize)."""
    steps = _steps(transform)
    if len(steps) < 3 or not isinstance(steps[0], RandomResizedCrop) or not _is_rgb(steps[1]):
        return None
    tensor = _tensor_stage(steps[2:])
    crop = steps[0]
    if tensor is None or len(set(crop.size)) != 1:
        return None
    return _with_side(Stages("train", (steps[1],), tensor, train_side(int(crop.size[0])), crop), train_side(int(crop.size[0])))


def _with_side(stages: Stages, side: int) -> Stages:
    squash = Resize((side, side), interpolation=stages.crop.interpolation, antialias=True)  # type: ignore[union-attr]
    return dataclasses.replace(stages, pil=(stages.pil[0], squash), side=side)


def fit_train_side(stages: Stages, first_size: tuple[int, int]) -> Stages:
    """A split whose (first) image is square and no larger than the record keeps its images as they
    are: cropping such a record is then exactly the PIL path (same pixels, same box, same filter)."""
    width, height = first_size
    if stages.kind == "train" and width == height and width <= stages.side:
        return _with_side(stages, width)
    return stages


class RecordOf:
    """The PIL stage as a dataset transform: (uint8 HxWx3 record, original width, height)."""

    def __init__(self, pil: Sequence[Callable]):
        self.pil = list(pil)

    def __call__(self, image):
        width, height = image.size
        for t in self.pil:
            image = t(image)
        return np.asarray(image, dtype=np.uint8), width, height


def crop_record(record: np.ndarray, width: int, height: int, crop: RandomResizedCrop) -> np.ndarray:
    """RandomResizedCrop of the original (width x height) image, taken from its record.

    The box is drawn by the transform's own get_params from the ORIGINAL size (the same random
    numbers, so the same box as the PIL path for the same seed). A record that is the original
    image is cropped and resized exactly as the PIL path does (bit-identical); a squashed one is
    resampled by Pillow straight from the scaled, sub-pixel box (one resampling after the squash)."""
    side = record.shape[0]
    shape_only = torch.empty((), dtype=torch.uint8).expand(3, height, width)  # get_params reads only the size
    top, left, h, w = crop.get_params(shape_only, crop.scale, crop.ratio)
    out_h, out_w = crop.size
    image, resample = Image.fromarray(record), TF.pil_modes_mapping[crop.interpolation]
    if (width, height) == (side, side):
        return np.array(image.crop((left, top, left + w, top + h)).resize((out_w, out_h), resample))
    sy, sx = side / height, side / width
    return np.array(image.resize((out_w, out_h), resample, box=(left * sx, top * sy, (left + w) * sx, (top + h) * sy)))
