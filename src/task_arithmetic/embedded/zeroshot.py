"""Zero-shot accuracy of a (pretrained) TinyCLIP on the embedded tasks: the pretraining's check-up."""

from __future__ import annotations

from collections.abc import Sized
from pathlib import Path
from typing import cast

import open_clip
import torch
from torch.utils.data import Subset

from ..data.loaders import make_loader
from ..data.registry import get_task
from ..data.splits import load_dataset
from ..evaluation.accuracy import evaluate
from ..models.factory import OpenClipModel
from ..models.heads import ClassificationHead, zeroshot_weights


@torch.no_grad()
def zeroshot_accuracy(
    clip_model: OpenClipModel, task: str, data_location: Path, split: str = "test", limit: int | None = None, device: str | torch.device = "cpu"
) -> float:
    """Accuracy of the prompt-built head over the image tower's features, on up to `limit` examples."""
    spec = get_task(task)
    head = ClassificationHead(zeroshot_weights(clip_model, open_clip.get_tokenizer("TinyCLIP"), spec.load_classnames(Path(data_location)), spec.templates)).to(device)
    dataset = load_dataset(spec.name, split, Path(data_location))
    if limit is not None and limit < len(cast(Sized, dataset)):
        dataset = Subset(dataset, range(limit))
    return evaluate(clip_model.visual, head, make_loader(dataset, batch_size=256), device)["accuracy"]
