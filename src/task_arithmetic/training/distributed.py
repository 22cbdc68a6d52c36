"""Data-parallel training under torchrun: gloo on CPU, NCCL on GPU; rank 0 alone writes files.

Gradients are averaged with one all-reduce per optimiser step, after all micro-batches, instead of
wrapping the model in DistributedDataParallel: the tau-Jp penalty reaches the weights through
the frozen copy's JVP rather than the module's forward, which DDP's hooks do not expect, and one
reduction per step is what DDP's no_sync accumulation would do anyway.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.distributed as dist
from torch import nn
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

from ..errors import UserError
from ..runtime import pick_device


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def init_distributed(device_request: str) -> tuple[DistContext, torch.device]:
    """Join the torchrun process group when launched by torchrun; a single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(), pick_device(device_request)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_request)
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise UserError(f"torchrun started {world} processes but only {torch.cuda.device_count()} GPUs are visible; lower --nproc_per_node")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
    return DistContext(rank=rank, world=world, local_rank=local_rank), device


def shutdown(ctx: DistContext) -> None:
    if ctx.active and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.active:
        dist.barrier()


def average_gradients(params: Sequence[nn.Parameter], ctx: DistContext) -> None:
    """Average .grad over processes in one flat all-reduce (missing grads count as zeros)."""
    if not ctx.active:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = _flatten_dense_tensors(grads)
    dist.all_reduce(flat)
    flat /= ctx.world
    for p, reduced in zip(params, _unflatten_dense_tensors(flat, grads)):
        if p.grad is None:
            p.grad = reduced.clone()
        else:
            p.grad.copy_(reduced)


def sum_over_processes(values: torch.Tensor, ctx: DistContext, device: torch.device) -> torch.Tensor:
    """Element-wise sum of a small CPU tensor over processes (on the backend's device)."""
    if not ctx.active:
        return values
    on_device = values.to(device)
    dist.all_reduce(on_device)
    return on_device.cpu()
