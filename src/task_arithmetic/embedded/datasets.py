"""Generate, cache and serve the embedded tasks' splits as normalised tensor datasets.

Caching: a split is rendered once (a second or two) and stored as 8-bit images in
`<data_location>/embedded/<task>-<split>-<recipe digest>.safetensors` (atomic write, JSON beside
it); later processes read it back in milliseconds. The digest covers GENERATOR_VERSION and the
task's recipe (style, sizes), so a changed recipe writes a new file instead of reusing a stale one.
Within a process the normalised tensors are also kept in memory. If data_location is read-only
the split is simply regenerated in memory.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from open_clip.transform import PreprocessCfg
from torch.utils.data import TensorDataset

from ..errors import UserError
from ..io import load_cached_weights, save_weights
from ..stop_signals import raise_if_stopped
from ..storage.write_errors import WriteFailed
from .catalog import EmbeddedTask
from .families.handwritten import load_sklearn_digits, render_handwritten
from .generate import balanced_labels, render_family, stream_seed

# Bump when any renderer changes what it draws: cached splits are then regenerated.
GENERATOR_VERSION = "1"
SECONDS_PER_IMAGE = 0.0005  # one core, measured on the generated families (HouseNumbers' 5000 images: 2.3 s)
BASE_SEED = "embedded-v1"
SPLIT_INDEX = {"train": 0, "test": 1}

_MEMORY: dict[tuple[str, str, str], TensorDataset] = {}


def recipe_digest(task: EmbeddedTask) -> str:
    recipe = f"{GENERATOR_VERSION}|{BASE_SEED}|{task.name}|{task.family}|{task.style!r}|{task.train_size}|{task.test_size}"
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def generate_split(task: EmbeddedTask, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 32, 32, 3) uint8, labels (N,) int64), the same bytes on every call and machine."""
    if split not in SPLIT_INDEX:
        raise UserError(f"unknown split '{split}' for {task.name}; valid splits: train, test")
    rng = np.random.default_rng(stream_seed(BASE_SEED, task.name, split))
    if task.family == "handwritten":
        return _handwritten_split(task, split, rng)
    n = task.train_size if split == "train" else task.test_size
    labels = balanced_labels(rng, n, len(task.class_names()))
    images, _ = render_family(task.family, rng, labels, task.style, lambda: raise_if_stopped(f"generating the {task.name} {split} split"))
    return images, labels.astype(np.int64)


def _handwritten_split(task: EmbeddedTask, split: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    bitmaps, labels = load_sklearn_digits()
    # scikit-learn ships no split: a fixed permutation puts test_size images aside.
    order = np.random.default_rng(stream_seed(BASE_SEED, task.name, "split")).permutation(len(labels))
    test_idx, train_idx = order[: task.test_size], order[task.test_size : task.test_size + task.train_size]
    idx = np.sort(train_idx if split == "train" else test_idx)
    return render_handwritten(rng, bitmaps[idx]), labels[idx]


def normalise(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) with the mean/std TinyCLIP's preprocessing uses."""
    cfg = PreprocessCfg()
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(cfg.mean).view(1, 3, 1, 1)
    std = torch.tensor(cfg.std).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous()


def cache_path(data_location: Path, task: EmbeddedTask, split: str) -> Path:
    return Path(data_location) / "embedded" / f"{task.name}-{split}-{recipe_digest(task)}.safetensors"


def split_arrays(task: EmbeddedTask, split: str, data_location: Path) -> tuple[np.ndarray, np.ndarray]:
    """The split's uint8 images and labels, from the disk cache or freshly generated (and cached)."""
    path = cache_path(data_location, task, split)
    cached = load_cached_weights(path) if path.is_file() and path.with_suffix(".json").is_file() else None
    if cached is not None:
        tensors, _ = cached
        return tensors["images"].numpy(), tensors["labels"].numpy()
    n = task.train_size if split == "train" else task.test_size
    print(f"generating the embedded task {task.name}'s {split} split ({n} images, about {max(1, round(n * SECONDS_PER_IMAGE))} s; once, "
          f"cached in {path.parent})", flush=True)
    images, labels = generate_split(task, split)
    try:
        save_weights(
            path,
            {"images": torch.from_numpy(images), "labels": torch.from_numpy(labels)},
            {"format": "embedded_split", "task": task.name, "split": split, "generator_version": GENERATOR_VERSION, "n": int(len(labels))},
        )
    except (OSError, WriteFailed):
        pass  # a read-only data location: keep the split in memory only
    return images, labels


def load_split(task: EmbeddedTask, data_location: Path, split: str, transform: Callable | None = None) -> TensorDataset:
    """TaskSpec.load_split for embedded tasks; the PIL transform is ignored (images are tensors)."""
    key = (str(Path(data_location).resolve()), task.name, split)
    if key not in _MEMORY:
        images, labels = split_arrays(task, split, Path(data_location))
        _MEMORY[key] = TensorDataset(normalise(images), torch.from_numpy(labels).long())
    return _MEMORY[key]
