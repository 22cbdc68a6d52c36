"""Numeric precision of training and evaluation: one setting, `--precision fp32|tf32|bf16|auto`.

  fp32  every product in float32 (TF32 switched off on CUDA, convolutions included);
  tf32  float32 tensors, CUDA matrix products and convolutions on TF32 tensor cores
        (10-bit mantissa inputs, float32 accumulation); CUDA only;
  bf16  torch.autocast in bfloat16 around the forward pass, the head, the loss and the tau-Jp
        penalty's JVP (the fast JVP computes in the autocast dtype); master weights, gradients
        and the optimiser state stay float32. On CUDA the float32 products left outside autocast
        (the optimiser, the cast-back) use TF32.
  auto  bf16 on a CUDA device, fp32 on the CPU.

Why bf16 is the CUDA default: a GPU's bf16 tensor cores run several times faster than its
float32 units and halve the activations' memory (ViT-L-14), while the weights, their updates and
every stored result stay float32; measured on the embedded study, it moves no figure by more than
the spread between fine-tuning seeds (README, "Precision"). The CPU keeps fp32 because many CPUs
have no bf16 units (there autocast is slower, not faster) and the tests' reference numbers are fp32.

The precision changes the trained weights, so it is a training setting (a resumed run must
match it) and it is recorded in every model's and result's metadata.
"""

from __future__ import annotations

import contextlib
import enum
from typing import Iterator

from .errors import UserError
from .lazy import torch  # imported on first use: every parser reads PRECISION_CHOICES


class Precision(str, enum.Enum):
    FP32 = "fp32"
    TF32 = "tf32"
    BF16 = "bf16"

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return torch.bfloat16 if self is Precision.BF16 else None


PRECISION_CHOICES = ("auto", *(p.value for p in Precision))


def _is_cuda(device: str | torch.device) -> bool:
    if isinstance(device, torch.device):
        return device.type == "cuda"
    if device == "auto":
        return torch.cuda.is_available()
    return device.startswith("cuda")


def resolve_precision(requested: str | Precision, device: str | torch.device) -> Precision:
    """The concrete precision for `device` ("auto": bf16 on CUDA, fp32 on the CPU); a UserError
    for a name that is not one or for TF32 off CUDA."""
    if isinstance(requested, Precision):
        precision = requested
    elif requested == "auto":
        return Precision.BF16 if _is_cuda(device) else Precision.FP32
    else:
        try:
            precision = Precision(requested)
        except ValueError:
            raise UserError(f"unknown --precision '{requested}'; choose one of {', '.join(PRECISION_CHOICES)}") from None
    if precision is Precision.TF32 and not _is_cuda(device):
        raise UserError("--precision tf32 needs a CUDA device (TF32 is a GPU tensor-core format); use fp32 or bf16 on the CPU")
    return precision


def set_matmul_precision(precision: Precision) -> None:
    """The process-wide TF32 switches, set when a run or an evaluation starts (never at import).

    fp32 turns TF32 off for convolutions too (cuDNN's default is on), so fp32 means float32."""
    tf32 = precision is not Precision.FP32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32


@contextlib.contextmanager
def autocast(precision: Precision, device: torch.device) -> Iterator[None]:
    """torch.autocast in the precision's dtype on `device` (nothing for fp32 and tf32)."""
    dtype = precision.autocast_dtype
    if dtype is None:
        yield
        return
    with torch.autocast(device.type, dtype=dtype):
        yield
