"""Combine task vectors straight from their checkpoints, one file at a time.

Summing N task vectors holds theta_0, the result and one memory-mapped checkpoint, never N models.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator, Sequence

import torch
from safetensors import SafetensorError, safe_open

from ..errors import UserError
from ..io import metadata_path, read_json
from .task_vector import TaskVector, check_same_architecture


class WeightsFile:
    """A lazily read weights file: keys, shapes and metadata without loading the tensors."""

    def __init__(self, path: Path, handle):
        self.path = Path(path)
        self._handle = handle
        meta_file = metadata_path(self.path)
        self.metadata = read_json(meta_file) if meta_file.is_file() else {}
        self.dtypes: dict[str, str] = {}
        self.shapes = {k: tuple(handle.get_slice(k).get_shape()) for k in handle.keys()}
        for k in handle.keys():
            self.dtypes[k] = handle.get_slice(k).get_dtype()

    def tensor(self, key: str) -> torch.Tensor:
        return self._handle.get_tensor(key)

    def float_keys(self) -> list[str]:
        # safetensors dtype names: F16, BF16, F32, F64 are the floating ones.
        return [k for k, d in self.dtypes.items() if d.startswith(("F", "BF"))]


@contextlib.contextmanager
def open_weights(paths: Sequence[Path], device: str | torch.device = "cpu") -> Iterator[list[WeightsFile]]:
    with contextlib.ExitStack() as stack:
        files = []
        for path in paths:
            path = Path(path)
            if not path.is_file():
                raise UserError(f"weights file {path} does not exist")
            try:
                handle = stack.enter_context(safe_open(str(path), framework="pt", device=str(device)))
            except (SafetensorError, OSError) as err:
                raise UserError(f"cannot read weights file {path} ({err}); it must be a .safetensors file written by this suite") from err
            files.append(WeightsFile(path, handle))
        yield files


def _check_against_base(base: WeightsFile, other: WeightsFile) -> None:
    check_same_architecture(base.metadata, other.metadata, str(base.path), str(other.path))
    if set(base.shapes) != set(other.shapes):
        diff = sorted(set(base.shapes) ^ set(other.shapes))
        raise UserError(
            f"{other.path} and {base.path} have different weight keys (e.g. {diff[0]}); both must come from the same architecture"
        )
    for key, shape in base.shapes.items():
        if other.shapes[key] != shape:
            raise UserError(
                f"{other.path} and {base.path} differ in the shape of {key} ({other.shapes[key]} vs {shape}); "
                "both must come from the same architecture"
            )


def _load_float(base: WeightsFile) -> dict[str, torch.Tensor]:
    return {key: base.tensor(key).float() for key in base.float_keys()}


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
    with open_weights([pretrained], device) as (base,):
        theta0 = _load_float(base)
    total = {key: torch.zeros_like(value) for key, value in theta0.items()}
    for coef, path in zip(coefs, finetuned):
        with open_weights([path], device) as (other,):
            _check_against_base(base, other)
            for key, value in theta0.items():
                total[key].add_(other.tensor(key).float() - value, alpha=coef)
    return TaskVector(total, {"model_name": base.metadata.get("model_name"), "sources": [str(p) for p in finetuned], "coefs": coefs})


def stack_checkpoints(
    finetuned: Sequence[Path], pretrained: Path, keys: Sequence[str], device: str | torch.device = "cpu"
) -> dict[str, torch.Tensor]:
    """{key: [N, *shape]} of the N task vectors, filled file by file (no per-vector copies)."""
    with open_weights([pretrained], device) as (base,):
        theta0 = {key: base.tensor(key).float() for key in keys}
    stacked = {key: torch.empty((len(finetuned), *v.shape), dtype=torch.float32, device=v.device) for key, v in theta0.items()}
    for i, path in enumerate(finetuned):
        with open_weights([path], device) as (other,):
            _check_against_base(base, other)
            for key, value in theta0.items():
                torch.sub(other.tensor(key).float(), value, out=stacked[key][i])
    return stacked
