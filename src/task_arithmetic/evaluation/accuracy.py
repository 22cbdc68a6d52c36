"""The one accuracy loop: an embedding function, a frozen head, a loader."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

from ..lazy import F, torch  # imported on first use: the registry is read by every script's --help

EmbedFn = Callable[["torch.Tensor"], "torch.Tensor"]


def collect_logits(embed: EmbedFn, head: torch.nn.Module, loader: Iterable[Any], device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    all_logits, all_labels = [], []
    with torch.inference_mode():
        for images, labels in loader:
            all_logits.append(head(embed(images.to(device))).float().cpu())
            all_labels.append(torch.as_tensor(labels))
    return torch.cat(all_logits), torch.cat(all_labels)


@dataclass(frozen=True)
class Metrics:
    accuracy: float
    loss: float
    n: int


def accuracy_from_logits(logits: torch.Tensor, labels: torch.Tensor) -> Metrics:
    return Metrics((logits.argmax(dim=-1) == labels).float().mean().item(), F.cross_entropy(logits, labels).item(), int(labels.numel()))


def evaluate(embed: EmbedFn, head: torch.nn.Module, loader: Iterable[Any], device: torch.device | str = "cpu") -> dict[str, float]:
    """{accuracy, loss, n} as a plain dict (the merging task pools' result format)."""
    m = accuracy_from_logits(*collect_logits(embed, head, loader, device))
    return {"accuracy": m.accuracy, "loss": m.loss, "n": m.n}
