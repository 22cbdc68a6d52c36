"""Combine task vectors straight from their checkpoints, one tensor at a time.

Summing N task vectors holds theta_0, the result and one tensor of one checkpoint, never N models
(the files are read by the suite's one reader, task_arithmetic/weights_reader.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from ..errors import UserError
from ..io import metadata_path, read_json
from ..weights_reader import SafetensorsReader
from .task_vector import TaskVector, check_not_swapped, check_same_architecture, check_same_layout


@dataclass
class WeightsFile:
    """A weights file read tensor by tensor, with its metadata JSON."""

    path: Path
    reader: SafetensorsReader
    metadata: dict

    @classmethod
    def open(cls, path: Path) -> "WeightsFile":
        path = Path(path)
        meta_file = metadata_path(path)
        return cls(path, SafetensorsReader(path), read_json(meta_file) if meta_file.is_file() else {})

    def tensor(self, key: str, device: str | torch.device) -> torch.Tensor:
        return self.reader[key].to(device)


def _check_against_base(base: WeightsFile, other: WeightsFile) -> None:
    check_not_swapped(base.metadata, other.metadata, f"pretrained={base.path}", f"the checkpoint {other.path}")
    check_same_architecture(base.metadata, other.metadata, str(base.path), str(other.path))
    check_same_layout(base.reader, other.reader, str(base.path), str(other.path))


def _load_float(base: WeightsFile, device: str | torch.device) -> dict[str, torch.Tensor]:
    return {key: base.tensor(key, device).float() for key in base.reader.float_keys()}


def sum_checkpoints(
    finetuned: Sequence[Path], pretrained: Path, coefs: Sequence[float] | None = None, device: str | torch.device = "cpu"
) -> TaskVector:
    """sum_i coef_i * (theta_i - theta_0), streamed from disk.

    One checkpoint is open (memory-mapped) at a time, so memory holds theta_0, the running sum
    and one file, whatever the number of checkpoints.
    """
    if not finetuned:
        raise UserError("no fine-tuned checkpoints to sum; pass at least one task")
    coefs = [1.0] * len(finetuned) if coefs is None else [float(c) for c in coefs]
    if len(coefs) != len(finetuned):
        raise ValueError(f"{len(finetuned)} checkpoints but {len(coefs)} coefficients")
    base = WeightsFile.open(pretrained)
    theta0 = _load_float(base, device)
    total = {key: torch.zeros_like(value) for key, value in theta0.items()}
    for coef, path in zip(coefs, finetuned):
        other = WeightsFile.open(path)
        _check_against_base(base, other)
        for key, value in theta0.items():
            total[key].add_(other.tensor(key, device).float() - value, alpha=coef)
    return TaskVector(total, {"model_name": base.metadata.get("model_name"), "sources": [str(p) for p in finetuned], "coefs": coefs})


def stack_checkpoints(
    finetuned: Sequence[Path], pretrained: Path, keys: Sequence[str], device: str | torch.device = "cpu"
) -> dict[str, torch.Tensor]:
    """{key: [N, *shape]} of the N task vectors, filled file by file (no per-vector copies)."""
    base = WeightsFile.open(pretrained)
    theta0 = {key: base.tensor(key, device).float() for key in keys}
    stacked = {key: torch.empty((len(finetuned), *v.shape), dtype=torch.float32, device=v.device) for key, v in theta0.items()}
    for i, path in enumerate(finetuned):
        other = WeightsFile.open(path)
        _check_against_base(base, other)
        for key, value in theta0.items():
            torch.sub(other.tensor(key, device).float(), value, out=stacked[key][i])
    return stacked
