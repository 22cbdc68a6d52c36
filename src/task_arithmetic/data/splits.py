"""Splits: train (fine-tuning), val (held-out part of the official train set), test.

The held-out part is min(10 %, 5000) of the train set, chosen by hashing (seed, index): the same
indices on every run, machine and library version, unlike an RNG stream.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sized
from pathlib import Path
from typing import Callable, cast

from torch.utils.data import Dataset, Subset

from ..errors import UserError
from .registry import get_task

SPLITS = ("train", "val", "test")
VAL_FRACTION = 0.1
VAL_MAX = 5000
VAL_SEED = 0


def heldout_indices(n: int, seed: int = VAL_SEED) -> list[int]:
    size = min(int(n * VAL_FRACTION), VAL_MAX)
    keyed = sorted(range(n), key=lambda i: hashlib.sha256(f"{seed}:{i}".encode()).digest())
    return sorted(keyed[:size])


def split_train_val(n: int, seed: int = VAL_SEED) -> tuple[list[int], list[int]]:
    held = heldout_indices(n, seed)
    held_set = set(held)
    return [i for i in range(n) if i not in held_set], held


def load_dataset(task: str, split: str, data_location: Path, transform: Callable | None = None) -> Dataset:
    """The dataset of `task` for `split`; train/val are disjoint parts of the official train set."""
    if split not in SPLITS:
        raise UserError(f"unknown split '{split}'; valid splits: {', '.join(SPLITS)}")
    spec = get_task(task)
    if split == "test":
        return spec.load_split(Path(data_location), "test", transform)
    full = spec.load_split(Path(data_location), "train", transform)
    train_idx, val_idx = split_train_val(len(cast(Sized, full)))  # map-style datasets have __len__; torch's Dataset does not declare it
    return Subset(full, train_idx if split == "train" else val_idx)
