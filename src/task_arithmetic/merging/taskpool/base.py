"""Task pools: evaluate one (merged) encoder on a list of tasks with frozen zero-shot heads."""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from ...evaluation.accuracy import evaluate


class BaseTaskPool(ABC):
    @abstractmethod
    def evaluate(self, model: nn.Module, max_batches: int | None = None) -> dict[str, Any]:
        """{task: {"accuracy", "loss", "n"}, ..., "average": {"accuracy", "loss"}}."""

    def describe(self) -> dict[str, Any]:
        return {"type": type(self).__name__}


def endless_inputs(loader: DataLoader, epochs: int | None = None) -> Iterator[torch.Tensor]:
    """The loader's images, epoch after epoch (AdaMerging's unlabeled test inputs; labels dropped);
    `epochs` stops after that many passes (the data-based merges read at most one)."""
    done = 0
    while epochs is None or done < epochs:
        for images, _labels in loader:
            yield images
        done += 1


def limited(loader: DataLoader, max_batches: int | None) -> Iterable:
    return loader if max_batches is None else itertools.islice(loader, max_batches)


def float_embedder(model: nn.Module, device: torch.device, features: Callable[[torch.Tensor], torch.Tensor] | None = None):
    """images -> float32 features on `device`, feeding the model its own dtype (fp16/bf16 models work)."""
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    run = features or model

    def embed(images: torch.Tensor) -> torch.Tensor:
        return run(images.to(device=device, dtype=dtype)).float()

    return embed


def evaluate_task(embed, head: nn.Module, loader: DataLoader, device: torch.device, max_batches: int | None) -> dict[str, float]:
    return evaluate(embed, head.to(device).float(), limited(loader, max_batches), device)


def summarise(per_task: dict[str, dict[str, float]]) -> dict[str, Any]:
    n = max(len(per_task), 1)
    average = {
        "accuracy": sum(r["accuracy"] for r in per_task.values()) / n,
        "loss": sum(r["loss"] for r in per_task.values()) / n,
    }
    return {**per_task, "average": average}
