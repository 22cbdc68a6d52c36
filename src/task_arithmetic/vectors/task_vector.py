"""Task vectors: tau = theta_ft - theta_0 over the image tower's floating-point weights.

Arithmetic never mutates its operands; every operation returns a new TaskVector. Two vectors
combine only if they come from the same architecture and have the same keys and shapes.

Every constructor takes theta_0 first and the fine-tuned weights second, as task_vectors'
`TaskVector(pretrained_checkpoint, finetuned_checkpoint)` does; keywords are the clearest
(`TaskVector.from_checkpoints(pretrained=..., finetuned=...)`). Files and encoders carry
metadata, so a swapped pair (a fine-tuned run given as theta_0 and theta_0 as the fine-tuned
model), which would silently give -tau, is refused; plain weight dicts take keywords only.
"""

from __future__ import annotations

import copy
import math
import numbers
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, cast

import torch

from ..errors import UserError
from ..io import load_weights
from ..models.linearize import LinearizedModel
from ..state_dicts import layout_difference, shape_of

if TYPE_CHECKING:  # the encoder module pulls in open_clip, which streaming sums do not need
    from ..models.encoder import ImageEncoder

Weights = Mapping[str, torch.Tensor]


def check_same_layout(a: Weights, b: Weights, what_a: str, what_b: str) -> None:
    """Same keys and shapes (state_dicts.layout_difference), or a UserError naming the first difference."""
    diff = layout_difference(a, b)
    if diff is None:
        return
    if diff.missing or diff.unexpected:
        example = (diff.missing or diff.unexpected)[0]
        raise UserError(
            f"{what_a} and {what_b} have different weight keys ({len(diff.missing)} only in the first, {len(diff.unexpected)} only in "
            f"the second, e.g. {example}); both must come from the same architecture"
        )
    key = diff.wrong_shape[0]
    raise UserError(
        f"{what_a} and {what_b} differ in the shape of {key} ({shape_of(a, key)} vs {shape_of(b, key)}); both must come from the same architecture"
    )


def check_same_architecture(meta_a: Mapping[str, Any], meta_b: Mapping[str, Any], what_a: str, what_b: str) -> None:
    name_a, name_b = meta_a.get("model_name"), meta_b.get("model_name")
    if name_a is not None and name_b is not None and name_a != name_b:
        raise UserError(f"{what_a} is a {name_a} and {what_b} a {name_b}; task vectors only combine within one architecture")


def float_keys(weights: Weights) -> list[str]:
    # Integer buffers (counters, index tables) are not moved by fine-tuning and have no direction.
    return [k for k, v in weights.items() if torch.is_floating_point(v)]


def is_finetuned(metadata: Mapping[str, Any]) -> bool:
    """Whether weights' metadata says they are a fine-tuned run (which names its run and task); theta_0's never does."""
    return bool(metadata.get("run") or metadata.get("task"))


def check_not_swapped(pretrained_meta: Mapping[str, Any], finetuned_meta: Mapping[str, Any], what_pretrained: str, what_finetuned: str) -> None:
    """A fine-tuned run given as theta_0, and a non-fine-tuned model as the fine-tuned one: the
    arguments are in the other order (which would silently give -tau)."""
    if is_finetuned(pretrained_meta) and not is_finetuned(finetuned_meta):
        run = f"the run {pretrained_meta.get('run')} of {pretrained_meta.get('task')}"
        raise UserError(
            f"{what_pretrained} is {run}, and {what_finetuned} is not a fine-tuned run: the two look swapped (that would give -tau); "
            "pass theta_0 first and the fine-tuned model second, best by keyword: pretrained=..., finetuned=..."
        )


class TaskVector:
    """A direction in weight space, keyed like the visual tower's state_dict."""

    def __init__(self, tensors: Weights, metadata: Mapping[str, Any] | None = None):
        if isinstance(tensors, (str, Path)):
            raise UserError(
                f"TaskVector({str(tensors)!r}, ...) takes a dict of tensors; to build tau from checkpoints use "
                "TaskVector.from_checkpoints(pretrained=..., finetuned=...)"
            )
        self.tensors: dict[str, torch.Tensor] = dict(tensors)
        self.metadata: dict[str, Any] = dict(metadata or {})

    # construction -------------------------------------------------------------------------
    @classmethod
    def from_weights(cls, *, pretrained: Weights, finetuned: Weights, metadata: Mapping[str, Any] | None = None) -> "TaskVector":
        """finetuned - pretrained over the floating-point entries (keywords only: weight dicts carry no
        metadata that could tell a swapped pair)."""
        check_same_layout(pretrained, finetuned, "the pre-trained weights", "the fine-tuned weights")
        with torch.no_grad():
            tensors = {k: finetuned[k].detach().float() - pretrained[k].detach().float() for k in float_keys(pretrained)}
        return cls(tensors, metadata)

    @classmethod
    def from_checkpoints(cls, pretrained: Path | str | Weights, finetuned: Path | str, device: str | torch.device = "cpu") -> "TaskVector":
        """tau of a saved fine-tuned run (standard, or the trainable copy of a linear run): theta_0
        (a weights file, or its weights already in memory) first, the run's file second."""
        if isinstance(finetuned, Mapping):
            raise UserError("from_checkpoints takes theta_0 first and the fine-tuned run's file second (pretrained=..., finetuned=...); "
                            "the fine-tuned argument is a dict of weights here, so the two look swapped")
        ft, ft_meta = load_weights(Path(finetuned), device)
        if isinstance(pretrained, (str, Path)):
            base, base_meta = load_weights(Path(pretrained), device)
            check_not_swapped(base_meta, ft_meta, f"pretrained={pretrained}", f"finetuned={finetuned}")
            check_same_architecture(base_meta, ft_meta, str(pretrained), str(finetuned))
            what = str(pretrained)
        else:
            base, what = {k: v.to(device) for k, v in pretrained.items()}, "the pre-trained weights"
        check_same_layout(base, ft, what, str(finetuned))
        return cls.from_weights(pretrained=base, finetuned=ft, metadata=_vector_metadata(ft_meta, Path(finetuned)))

    @classmethod
    def from_encoders(cls, pretrained: "ImageEncoder", finetuned: "ImageEncoder") -> "TaskVector":
        """tau of two encoders in memory: theta_0 first, the fine-tuned one second."""
        check_not_swapped(pretrained.metadata, finetuned.metadata, "the pre-trained encoder", "the fine-tuned encoder")
        check_same_architecture(pretrained.metadata, finetuned.metadata, "the pre-trained encoder", "the fine-tuned encoder")
        return cls.from_weights(pretrained=pretrained.weights(), finetuned=finetuned.weights(), metadata=_vector_metadata(finetuned.metadata, None))

    # bookkeeping ---------------------------------------------------------------------------
    @property
    def model_name(self) -> str | None:
        return self.metadata.get("model_name")

    def keys(self) -> list[str]:
        return list(self.tensors)

    def to(self, device: str | torch.device) -> "TaskVector":
        return TaskVector({k: v.to(device) for k, v in self.tensors.items()}, self.metadata)

    def _check_compatible(self, other: "TaskVector") -> None:
        check_same_architecture(self.metadata, other.metadata, "the first task vector", "the second task vector")
        check_same_layout(self.tensors, other.tensors, "the first task vector", "the second task vector")

    def _combined_metadata(self, other: "TaskVector") -> dict[str, Any]:
        return {"model_name": self.model_name or other.model_name}

    # arithmetic ----------------------------------------------------------------------------
    def __add__(self, other: object) -> "TaskVector":
        if isinstance(other, numbers.Number) and other == 0:
            return TaskVector(self.tensors, self.metadata)
        if not isinstance(other, TaskVector):
            return NotImplemented
        self._check_compatible(other)
        return TaskVector({k: v + other.tensors[k] for k, v in self.tensors.items()}, self._combined_metadata(other))

    def __radd__(self, other: object) -> "TaskVector":
        # sum([...]) starts from 0
        return self.__add__(other)

    def __sub__(self, other: object) -> "TaskVector":
        if not isinstance(other, TaskVector):
            return NotImplemented
        self._check_compatible(other)
        return TaskVector({k: v - other.tensors[k] for k, v in self.tensors.items()}, self._combined_metadata(other))

    def __neg__(self) -> "TaskVector":
        return TaskVector({k: -v for k, v in self.tensors.items()}, {"model_name": self.model_name})

    def __mul__(self, scalar: object) -> "TaskVector":
        if isinstance(scalar, torch.Tensor) and scalar.numel() == 1:
            scalar = scalar.item()
        if not isinstance(scalar, numbers.Real) or isinstance(scalar, bool):
            return NotImplemented
        return TaskVector({k: v * float(scalar) for k, v in self.tensors.items()}, {"model_name": self.model_name})

    __rmul__ = __mul__

    def dot(self, other: "TaskVector") -> float:
        self._check_compatible(other)
        return float(sum((v.double() * other.tensors[k].double()).sum() for k, v in self.tensors.items()))

    def norm(self) -> float:
        return math.sqrt(sum(float(v.double().pow(2).sum()) for v in self.tensors.values()))

    def cosine_similarity(self, other: "TaskVector") -> float:
        denominator = self.norm() * other.norm()
        if denominator == 0.0:
            raise UserError("cosine similarity of a zero task vector is undefined; check that fine-tuning changed the weights")
        return self.dot(other) / denominator

    # application ---------------------------------------------------------------------------
    def added_to(self, pretrained: Weights, coef: float = 1.0) -> dict[str, torch.Tensor]:
        """theta_0 + coef * tau as a new weight dict (integer buffers copied from theta_0)."""
        check_same_layout({k: pretrained[k] for k in float_keys(pretrained)}, self.tensors, "the pre-trained weights", "the task vector")
        with torch.no_grad():
            return {
                k: (v + coef * self.tensors[k].to(v.device, v.dtype)) if k in self.tensors else v.clone()
                for k, v in pretrained.items()
            }

    def apply_to(self, pretrained: "ImageEncoder", coef: float = 1.0) -> "ImageEncoder":
        """A NEW encoder with weights theta_0 + coef * tau; `pretrained` is left untouched."""
        check_same_architecture(pretrained.metadata, self.metadata, "the pre-trained encoder", "the task vector")
        edited = copy.deepcopy(pretrained)
        edited.visual.load_state_dict(self.added_to(pretrained.weights(), coef))
        return edited

    def apply_linearized(self, pretrained: "ImageEncoder", coef: float = 1.0) -> LinearizedModel:
        """A NEW linearised model around theta_0 with theta - theta_0 = coef * tau (linear / post-hoc)."""
        check_same_architecture(pretrained.metadata, self.metadata, "the pre-trained encoder", "the task vector")
        model = LinearizedModel(copy.deepcopy(pretrained.visual))
        model.trainable.load_state_dict(self.added_to(pretrained.weights(), coef))
        # LinearizedModel moves only parameters that require grad; a frozen source must not
        # silently turn the edit into theta_0.
        for p in model.trainable.parameters():
            p.requires_grad_(True)
        return model


def _vector_metadata(meta: Mapping[str, Any], path: Path | None) -> dict[str, Any]:
    keep = ("model_name", "model_id", "task", "mode", "reg", "variant", "run", "seed", "steps", "code_revision")
    out = {k: meta[k] for k in keep if k in meta}
    if path is not None:
        out["source"] = str(path)
    return out


def combine(vectors: Iterable[TaskVector], coefs: Iterable[float] | None = None) -> TaskVector:
    """sum_i coef_i * tau_i of vectors already in memory (see streaming.sum_checkpoints for disk)."""
    vectors = list(vectors)
    coefs = [1.0] * len(vectors) if coefs is None else list(coefs)
    if len(coefs) != len(vectors):
        raise ValueError(f"{len(vectors)} vectors but {len(coefs)} coefficients")
    if not vectors:
        raise UserError("no task vectors to combine; pass at least one task")
    return cast(TaskVector, sum((c * v for c, v in zip(coefs, vectors)), start=0))  # 0 + TaskVector is a TaskVector (vectors is not empty)
