"""Evaluation of linear / post-hoc edits from the tangent cache: no network pass per edit.

Each query asks the cache for just the directions it reads (tangent_cache.directions_of), and
`prefetch` gathers what a whole evaluation will read on each dataset, so the JVPs of one dataset
run in one pass over its data.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Mapping

import torch

from ..models.heads import ClassificationHead
from .data import DataBank
from .edits import Edit
from .tangent_cache import Direction, FeatureCache, TangentCacheStore, directions_of


class CachedEvaluator:
    def __init__(self, store: TangentCacheStore, heads: Mapping[str, ClassificationHead], bank: DataBank):
        self.store = store
        self.heads = heads
        self.bank = bank

    def cache(self, dataset: str, split: str, directions: Iterable[Direction] = ()) -> FeatureCache:
        directions = list(directions)
        if any(len(d.tasks) == 1 and d.tasks[0] != dataset for d in directions):
            # One task's tangent on another task's data (pairs, the grid, the tau-Jp matrix, the
            # control): every task's is built with it in the same pass over the data, whose primal
            # pass they share; whichever of those evaluations comes next reads them from the cache.
            directions += [Direction((t,)) for t in self.store.checkpoints]
        suffix = f"-max{self.bank.max_samples}" if self.bank.max_samples is not None else ""
        return self.store.get(dataset, split, lambda: self.bank.loader(dataset, split), self.bank.size(dataset, split), suffix, directions)

    def prefetch(self, queries: Iterable[tuple[Edit, str, str]]) -> None:
        """Build every tangent these (edit, dataset, split) points read, one pass per dataset."""
        needed: dict[tuple[str, str], set[Direction]] = defaultdict(set)
        for edit, dataset, split in queries:
            needed[(dataset, split)].update(directions_of(edit))
        for (dataset, split), directions in needed.items():
            self.cache(dataset, split, sorted(directions))

    def prefetch_tangents(self, tasks: Iterable[str], datasets: Iterable[str], split: str) -> None:
        """Each task's own tangent on each dataset (the tau-Jp matrix), one pass per dataset."""
        directions = [Direction((t,)) for t in tasks]
        for dataset in datasets:
            self.cache(dataset, split, directions)

    @torch.inference_mode()
    def logits(self, edit: Edit, dataset: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        parts = directions_of(edit)
        cache = self.cache(dataset, split, parts)
        features = cache.embed({d.name: coef for d, coef in parts.items()})
        return self.heads[dataset](features).float().cpu(), cache.labels.cpu()

    @torch.inference_mode()
    def tangent_norm_mean(self, task: str, dataset: str, split: str) -> float:
        return self.cache(dataset, split, [Direction((task,))]).tangents[task].norm(dim=-1).mean().item()
