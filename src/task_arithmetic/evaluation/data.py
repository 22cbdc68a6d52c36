"""Evaluation datasets, built once per (task, split) and reused for every coefficient."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..data.registry import get_task
from ..lazy import torch  # imported on first use: the registry is read by every script's --help

if TYPE_CHECKING:
    from torch.utils.data import DataLoader, Dataset

EVAL_SPLITS = ("val", "test")
SUBSAMPLE_SEED = 0


def capped(dataset: Dataset, max_samples: int | None, seed: int = SUBSAMPLE_SEED) -> Dataset:
    """A fixed random subset of at most max_samples (spread over the data, not its first rows,
    which are often sorted by class)."""
    n = len(dataset)  # type: ignore[arg-type]
    if max_samples is None or n <= max_samples:
        return dataset
    keep = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:max_samples].sort().values
    return torch.utils.data.Subset(dataset, keep.tolist())


class DataBank:
    def __init__(
        self,
        data_location: Path,
        transform: Callable | None,
        batch_size: int = 128,
        num_workers: int = 0,
        max_samples: int | None = None,
        decode_cache: bool = True,
    ):
        self.data_location = Path(data_location)
        self.transform = transform
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.max_samples = max_samples
        self.decode_cache = decode_cache  # images decoded once (data/decoded.py): the same tensors, bit for bit
        self._datasets: dict[tuple[str, str], Dataset] = {}

    def dataset(self, task: str, split: str) -> Dataset:
        key = (task, split)
        if key not in self._datasets:
            from ..data.decoded import load_images

            spec = get_task(task)
            transform = None if spec.tensor_native else self.transform
            self._datasets[key] = capped(load_images(task, split, self.data_location, transform, self.decode_cache), self.max_samples)
        return self._datasets[key]

    def loader(self, task: str, split: str) -> DataLoader:
        from ..data.loaders import make_loader

        # Tensor-native tasks are already in memory: worker processes would only add start-up and IPC.
        workers = 0 if get_task(task).tensor_native else self.num_workers
        return make_loader(self.dataset(task, split), self.batch_size, shuffle=False, num_workers=workers)

    def size(self, task: str, split: str) -> int:
        return len(self.dataset(task, split))  # type: ignore[arg-type]
