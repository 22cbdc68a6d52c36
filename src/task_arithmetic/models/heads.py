"""Zero-shot classification heads built from CLIP's text tower and the task's prompt templates.

Per class: encode every template, L2-normalise each, average, L2-normalise again; the stacked
class vectors times logit_scale.exp() are a bias-free linear layer over normalised image features.
Heads are frozen and cached on disk, keyed by model, weights and task.
"""

from __future__ import annotations

import hashlib
import json
from typing import Iterator, Protocol, Sequence

import open_clip
import torch
import torch.nn.functional as F
from torch import nn

from ..io import load_cached_weights, save_weights
from ..paths import Layout
from .factory import ModelSpec, OpenClipModel, check_cache_source, create_clip

HEAD_FORMAT = "zeroshot_head"


class ClassificationHead(nn.Module):
    """Logits = normalise(features) @ weight.T; the weight already carries the logit scale."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.weight = nn.Parameter(weight.clone(), requires_grad=False)

    @property
    def num_classes(self) -> int:
        return self.weight.shape[0]

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(features, dim=-1) @ self.weight.t()


class TextEncoder(Protocol):
    """What zeroshot_weights reads: an open_clip model, or an adapter with the same members (merging/taskpool/hf_clip.py)."""

    @property
    def logit_scale(self) -> torch.Tensor: ...

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor: ...

    def parameters(self) -> Iterator[nn.Parameter]: ...


@torch.no_grad()
def zeroshot_weights(
    clip_model: TextEncoder, tokenizer, classnames: Sequence[str], templates: Sequence[str], batch_size: int = 256
) -> torch.Tensor:
    device = next(clip_model.parameters()).device
    class_vectors = []
    for name in classnames:
        prompts = [template.format(name) for template in templates]
        chunks = [
            clip_model.encode_text(tokenizer(prompts[i : i + batch_size]).to(device))
            for i in range(0, len(prompts), batch_size)
        ]
        per_template = F.normalize(torch.cat(chunks).float(), dim=-1)
        class_vectors.append(F.normalize(per_template.mean(dim=0), dim=-1))
    return torch.stack(class_vectors) * clip_model.logit_scale.exp().float()


def _prompt_digest(classnames: Sequence[str], templates: Sequence[str]) -> str:
    return hashlib.sha256(json.dumps([list(classnames), list(templates)]).encode()).hexdigest()[:16]


def get_head(
    spec: ModelSpec,
    task: str,
    classnames: Sequence[str],
    templates: Sequence[str],
    layout: Layout,
    device: str | torch.device = "cpu",
    clip_model: OpenClipModel | None = None,
) -> ClassificationHead:
    """Load the cached head for (model, task) or build and cache it. Rebuilt if the prompts changed."""
    path = layout.head(spec.model_id, task)
    digest = _prompt_digest(classnames, templates)
    cached = load_cached_weights(path) if path.is_file() else None
    if cached is not None:
        tensors, meta = cached
        check_cache_source(meta, spec, path)
        if meta.get("prompt_digest") == digest:
            return ClassificationHead(tensors["weight"]).to(device)
    if clip_model is None:
        clip_model, _, _ = create_clip(spec, device)
    weight = zeroshot_weights(clip_model, open_clip.get_tokenizer(spec.name), classnames, templates)
    save_weights(
        path,
        {"weight": weight},
        {**spec.metadata(), "format": HEAD_FORMAT, "task": task, "prompt_digest": digest, "num_classes": len(classnames)},
    )
    return ClassificationHead(weight).to(device)
