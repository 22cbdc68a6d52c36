"""Training and penalty batches whose content is a pure function of (seed, position).

Resuming therefore needs only the step count: the epoch's order comes from a
DistributedSampler seeded by (seed, epoch), augmentations are seeded per sample, and the
penalty batches of each task come from an endless sequence of seeded permutations.
"""

from __future__ import annotations

import math
import os
import random
import signal
from dataclasses import dataclass
from typing import Iterator, Sequence, Sized, cast

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from ..runtime import usable_cores
from ..stop_signals import STOP_SIGNALS

_MIX = 0x9E3779B97F4A7C15  # odd 64-bit constant: spreads nearby integers far apart


def mix_seed(*parts: int) -> int:
    value = 0
    for part in parts:
        value = ((value ^ (part & 0xFFFFFFFFFFFFFFFF)) * _MIX + 0x632BE59BD9B4E019) & 0xFFFFFFFFFFFFFFFF
    return value >> 1  # torch.manual_seed wants a non-negative int64


class SeededSamples(Dataset):
    """Looks up (index, seed) keys with the RNGs seeded per sample.

    Random augmentations then depend only on the key, not on which worker loads the sample or
    whether the run was resumed half-way through an epoch.
    """

    def __init__(self, dataset: Dataset, reseed: bool = True):
        self.dataset = dataset
        # Forking the RNGs per sample costs as much as a tiny model's step; datasets without
        # random augmentation (tensor-native tasks) skip it and load identically.
        self.reseed = reseed

    def __len__(self) -> int:
        return size(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        index, seed = key
        if not self.reseed:
            return self.dataset[index]
        py_state = random.getstate()
        random.seed(seed)
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                return self.dataset[index]
        finally:
            random.setstate(py_state)


def size(dataset: Dataset) -> int:
    """len() of a map-style dataset (torch's Dataset type does not declare __len__)."""
    return len(cast(Sized, dataset))


def subsample(dataset: Dataset, max_samples: int | None) -> Dataset:
    """A fixed random subset (the same for every seed), for quick runs."""
    n = size(dataset)
    if max_samples is None or max_samples >= n:
        return dataset
    keep = torch.randperm(n, generator=torch.Generator().manual_seed(0))[:max_samples].sort().values
    return Subset(dataset, keep.tolist())


@dataclass(frozen=True)
class EpochPlan:
    """How one process walks through the training set: per-process batches of `local_batch`."""

    dataset_size: int
    global_batch: int
    rank: int
    world: int
    seed: int

    @property
    def local_batch(self) -> int:
        return self.global_batch // self.world

    @property
    def local_size(self) -> int:
        # DistributedSampler pads every process to the same number of samples.
        return math.ceil(self.dataset_size / self.world)

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.local_size / self.local_batch)

    def local_indices(self, dataset: Dataset, epoch: int) -> list[int]:
        sampler: DistributedSampler[int] = DistributedSampler(dataset, num_replicas=self.world, rank=self.rank, shuffle=True, seed=self.seed)
        sampler.set_epoch(epoch)
        return list(sampler)

    def batches(self, dataset: Dataset, epoch: int, start_batch: int) -> list[list[tuple[int, int]]]:
        """This process's batches of (index, augmentation seed) keys, from batch `start_batch` on."""
        indices = self.local_indices(dataset, epoch)
        keys = [(i, mix_seed(self.seed, epoch, i)) for i in indices]
        b = self.local_batch
        return [keys[s : s + b] for s in range(start_batch * b, len(keys), b)]


MAX_AUTO_WORKERS = 8


def loader_workers(requested: int | None, device: torch.device, tensor_native: bool) -> int:
    """Data-loading processes per training process: `requested`, or a choice for the setting.

    Decoding and augmenting JPEGs on the main thread starves a GPU; on a CPU, workers only take
    cores from the model, and in-memory tensor tasks have nothing to decode.
    """
    if requested is not None:
        return requested
    if device.type != "cuda" or tensor_native:
        return 0
    per_process = usable_cores() // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))  # torchrun's processes on this node
    return max(0, min(MAX_AUTO_WORKERS, per_process - 1))


def ignore_stop_signals(worker_id: int) -> None:
    """worker_init_fn: Slurm signals every process of a job step, workers included. Only the main
    process acts on a stop (it finishes the step and saves); a worker killed by the signal would
    crash it mid-step instead, losing the state it was about to save."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def epoch_loader(
    dataset: Dataset, plan: EpochPlan, epoch: int, start_batch: int, num_workers: int, pin_memory: bool, reseed: bool = True
) -> DataLoader:
    return DataLoader(
        SeededSamples(dataset, reseed),
        batch_sampler=plan.batches(dataset, epoch, start_batch),
        num_workers=num_workers,
        pin_memory=pin_memory,
        worker_init_fn=ignore_stop_signals,
    )


class _EndlessBatches:
    """Index batches of one penalty task from draw `start` on: this process's share of each."""

    def __init__(self, size: int, batch: int, seed: int, start: int, rank: int, world: int):
        self.size, self.batch, self.seed, self.start, self.rank, self.world = size, batch, seed, start, rank, world
        self._perm_round = -1
        self._perm: list[int] = []

    def _position(self, p: int) -> int:
        round_, offset = divmod(p, self.size)
        if round_ != self._perm_round:
            generator = torch.Generator().manual_seed(mix_seed(self.seed, round_))
            self._perm = torch.randperm(self.size, generator=generator).tolist()
            self._perm_round = round_
        return self._perm[offset]

    def global_draw(self, draw: int) -> list[int]:
        return [self._position(p) for p in range(draw * self.batch, (draw + 1) * self.batch)]

    def __iter__(self) -> Iterator[list[int]]:
        draw = self.start
        while True:
            yield self.global_draw(draw)[self.rank :: self.world]
            draw += 1


class PenaltyStream:
    """Endless deterministic batches of one task's inputs (labels dropped) for the tau-Jp penalty.

    Every process draws the same global batch of `batch` inputs and keeps every world-th one, so
    the penalty over all processes is the penalty of the global batch.
    """

    def __init__(self, dataset: Dataset, batch: int, seed: int, start_draw: int, rank: int, world: int, num_workers: int):
        self.batch = batch
        self.local_count = len(range(rank, batch, world))
        self._indices = _EndlessBatches(size(dataset), batch, seed, start_draw, rank, world)
        self._loader = DataLoader(
            dataset, batch_sampler=self._indices, num_workers=num_workers, worker_init_fn=ignore_stop_signals
        ) if self.local_count else None
        self._iterator = iter(self._loader) if self._loader is not None else None

    def next_inputs(self) -> torch.Tensor | None:
        if self._iterator is None:
            return None
        inputs, *_ = next(self._iterator)
        return inputs


def draws_before(step: int, slot: int, period: int) -> int:
    """How many of the steps 0..step-1 have `step % period == slot` (round-robin position)."""
    return max(0, (step - slot + period - 1) // period)


def stack_nonempty(parts: Sequence[torch.Tensor | None]) -> torch.Tensor | None:
    present = [p for p in parts if p is not None]
    return torch.cat(present) if present else None
