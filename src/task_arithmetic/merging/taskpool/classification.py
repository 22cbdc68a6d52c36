"""Evaluate an open_clip image encoder on registered tasks with the suite's cached zero-shot heads."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from ...data.loaders import make_loader
from ...data.registry import parse_task_list
from ...data.splits import SPLITS, load_dataset
from ...errors import UserError
from ...models.factory import ModelSpec
from ...models.pretrained import task_head
from ...paths import DEFAULT_CHECKPOINT_ROOT, DEFAULT_DATA_LOCATION, Layout
from ...runtime import pick_device
from ..adamerging import TestTimeData, TestTimeTask
from .base import BaseTaskPool, endless_inputs, evaluate_task, float_embedder, summarise


class ClassificationTaskPool(BaseTaskPool):
    """`model`/`pretrained` name the CLIP whose text tower built the heads (the merged models' base)."""

    def __init__(
        self,
        tasks: str | Sequence[str],
        model: str,
        pretrained: str | None = None,
        cache_dir: str | None = None,
        split: str = "test",
        batch_size: int = 128,
        num_workers: int = 0,
        data_location: str | Path | None = None,
        checkpoint_root: str | Path | None = None,
        device: str = "auto",
        max_samples: int | None = None,
    ):
        if split not in SPLITS:
            raise UserError(f"unknown split '{split}'; valid splits: {', '.join(SPLITS)}")
        self.tasks = parse_task_list(tasks)
        self.spec = ModelSpec(model, pretrained, cache_dir)
        self.split = split
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.data_location = Path(data_location) if data_location else DEFAULT_DATA_LOCATION
        self.layout = Layout(Path(checkpoint_root) if checkpoint_root else DEFAULT_CHECKPOINT_ROOT)
        self.device = device
        self.max_samples = int(max_samples) if max_samples else None  # the evaluations' fixed random subset of each split

    def evaluate(self, model: nn.Module, max_batches: int | None = None) -> dict[str, Any]:
        device = pick_device(self.device)
        model = model.to(device).eval()
        embed = float_embedder(model, device)
        transform = getattr(model, "val_preprocess", None)
        results = {}
        for task in self.tasks:
            head = task_head(self.spec, task, self.layout, self.data_location, device)
            dataset = self._limit(load_dataset(task, self.split, self.data_location, transform))
            loader = make_loader(dataset, self.batch_size, num_workers=self.num_workers)
            results[task] = evaluate_task(embed, head, loader, device, max_batches)
        return summarise(results)

    def test_time_data(
        self, model: nn.Module, batch_size: int, num_workers: int = 0, seed: int = 0, split: str | None = None, epochs: int | None = None
    ) -> TestTimeData:
        """Shuffled unlabeled batches of each task's split (or `split`: the data-based merges read
        train or val) and its frozen head, preprocessed as evaluate() preprocesses them for `model`;
        endless unless `epochs` is given (AdaMerging cycles, the data-based merges read one pass)."""
        if split is not None and split not in SPLITS:
            raise UserError(f"unknown split '{split}'; valid splits: {', '.join(SPLITS)}")
        device = pick_device(self.device)
        transform = getattr(model, "val_preprocess", None)
        tasks = {}
        for task in self.tasks:
            head = task_head(self.spec, task, self.layout, self.data_location, device).float().requires_grad_(False)
            dataset = self._limit(load_dataset(task, split or self.split, self.data_location, transform))
            loader = make_loader(dataset, batch_size, shuffle=True, seed=seed, num_workers=num_workers)
            tasks[task] = TestTimeTask(head, endless_inputs(loader, epochs))
        return TestTimeData(features=lambda call, images: call(images).float(), tasks=tasks, device=device)

    def _limit(self, dataset):
        from ...evaluation.data import capped  # the evaluations' own fixed subset

        return capped(dataset, self.max_samples)

    def describe(self) -> dict[str, Any]:
        from ...data.fingerprints import fingerprints_or_reason  # which examples each task's parts held

        return {**super().describe(), "tasks": self.tasks, "split": self.split, "heads_of": self.spec.model_id,
                "data_fingerprints": fingerprints_or_reason(self.tasks, self.data_location)}
