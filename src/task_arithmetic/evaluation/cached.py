"""Evaluation of linear / post-hoc edits from the tangent cache: no network pass per edit."""

from __future__ import annotations

from typing import Mapping

import torch

from ..models.heads import ClassificationHead
from .data import DataBank
from .edits import Edit
from .tangent_cache import FeatureCache, TangentCacheStore


class CachedEvaluator:
    def __init__(self, store: TangentCacheStore, heads: Mapping[str, ClassificationHead], bank: DataBank):
        self.store = store
        self.heads = heads
        self.bank = bank

    def cache(self, dataset: str, split: str) -> FeatureCache:
        suffix = f"-max{self.bank.max_samples}" if self.bank.max_samples is not None else ""
        return self.store.get(dataset, split, lambda: self.bank.loader(dataset, split), self.bank.size(dataset, split), suffix)

    @torch.inference_mode()
    def logits(self, edit: Edit, dataset: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        cache = self.cache(dataset, split)
        features = cache.embed(edit.per_task())
        return self.heads[dataset](features).float().cpu(), cache.labels.cpu()

    @torch.inference_mode()
    def tangent_norm_mean(self, task: str, dataset: str, split: str) -> float:
        return self.cache(dataset, split).tangents[task].norm(dim=-1).mean().item()
