"""The CUDA paths: the fast JVP on a GPU (fp32 against torch.func, bf16 autocast against fp32),
pinned-memory loading. Marked `cuda`; skipped where there is no GPU (CI). benchmarks/gpu_check.sh
runs `pytest -m cuda` on a GPU machine; with TA_TEST_DEVICE=cpu (its --device cpu dry run) the
same checks run on the CPU. Each test records its measured errors (junit properties), which the
GPU check copies into its results table.
"""

from __future__ import annotations

import os

import open_clip
import pytest
import torch
from torch import nn

from task_arithmetic.models import fast_jvp
from task_arithmetic.models.linearize import functorch_jvp

DEVICE = torch.device(os.environ.get("TA_TEST_DEVICE", "cuda"))
pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(DEVICE.type == "cuda" and not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

REL64 = 1e-9  # as on the CPU (test_fastjvp_correctness): both paths agree to rounding
REL32 = 1e-4  # fp32 with TF32 off; the CPU measures ~1e-6, a wrong term is O(1)
# bf16 keeps 8 bits of mantissa (relative step 2^-8 = 4e-3 per rounding); through 12 residual
# blocks the measured CPU error is ~1e-2. 5e-2 passes bf16 noise and fails a dropped term.
REL_BF16 = 5e-2


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-300)).item()


@pytest.fixture(autouse=True)
def exact_fp32():
    """Plain fp32 matrix products and convolutions: TF32 (cuDNN's default) would swamp REL32."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _vit(name: str, dtype: torch.dtype) -> nn.Module:
    torch.manual_seed(0)
    return open_clip.create_model(name, pretrained=None).visual.to(DEVICE, dtype)


def _case(vit: nn.Module, batch: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    params0 = {k: v.detach() for k, v in vit.named_parameters()}
    delta = {k: (1e-2 * torch.randn(v.shape, generator=g, dtype=v.dtype)).to(DEVICE) for k, v in params0.items()}
    size = vit.image_size[0]
    images = torch.randn(batch, 3, size, size, generator=g, dtype=next(iter(params0.values())).dtype).to(DEVICE)
    return params0, delta, images


def _gradients(jvp_fn, vit: nn.Module, params0: dict, delta: dict, images: torch.Tensor):
    """Output, tangent and the gradient of a loss that uses both, with respect to delta."""
    leaves = {k: v.clone().requires_grad_() for k, v in delta.items()}
    out0, tangent = jvp_fn(vit, params0, leaves, images)
    weights = torch.linspace(-1, 1, tangent.numel(), device=DEVICE, dtype=tangent.dtype).view_as(tangent)
    (tangent.norm(dim=-1).sum() + ((out0 + tangent) * weights).sum()).backward()
    return out0.detach(), tangent.detach(), {k: v.grad for k, v in leaves.items()}


def _worst(fast, ref) -> dict[str, float]:
    grads = max(_rel(fast[2][k], ref[2][k]) for k in ref[2])
    return {"output": _rel(fast[0], ref[0]), "tangent": _rel(fast[1], ref[1]), "gradient": grads}


def test_fast_jvp_fp32_matches_torch_func_on_vit_b32(record_property):
    vit = _vit("ViT-B-32", torch.float32).train()
    assert fast_jvp.supports(vit)
    params0, delta, images = _case(vit, 4)
    errors = _worst(_gradients(fast_jvp.linearized_forward, vit, params0, delta, images), _gradients(functorch_jvp, vit, params0, delta, images))
    for what, value in errors.items():
        record_property(f"rel_err_{what}", f"{value:.2e}")
    assert max(errors.values()) < REL32, errors


def test_fast_jvp_fp64_matches_torch_func_on_tiny_vit(record_property):
    vit = _vit("TinyCLIP", torch.float64).train()
    params0, delta, images = _case(vit, 3)
    errors = _worst(_gradients(fast_jvp.linearized_forward, vit, params0, delta, images), _gradients(functorch_jvp, vit, params0, delta, images))
    record_property("rel_err_max", f"{max(errors.values()):.2e}")
    assert max(errors.values()) < REL64, errors


def test_fast_jvp_bf16_autocast_stays_close_to_fp32_on_vit_b32(record_property):
    vit = _vit("ViT-B-32", torch.float32).eval()
    params0, delta, images = _case(vit, 8)
    ref = _gradients(fast_jvp.linearized_forward, vit, params0, delta, images)
    with torch.autocast(DEVICE.type, dtype=torch.bfloat16):
        low = _gradients(fast_jvp.linearized_forward, vit, params0, delta, images)
    assert low[0].dtype == torch.bfloat16 and low[1].dtype == torch.bfloat16
    errors = _worst(low, ref)
    for what, value in errors.items():
        record_property(f"rel_err_{what}", f"{value:.2e}")
    assert errors["output"] < REL_BF16 and errors["tangent"] < REL_BF16, errors
    assert all(torch.isfinite(g).all() for g in low[2].values())


def test_training_loader_pins_memory_on_cuda():
    from torch.utils.data import TensorDataset

    from task_arithmetic.data.sampling import EpochPlan, epoch_loader

    data = TensorDataset(torch.randn(12, 3, 8, 8), torch.arange(12))
    plan = EpochPlan(dataset_size=12, global_batch=4, rank=0, world=1, seed=0)
    pin = DEVICE.type == "cuda"  # what the training loop passes
    images, labels = next(iter(epoch_loader(data, plan, 0, 0, num_workers=1, pin_memory=pin, reseed=False)))
    assert images.shape == (4, 3, 8, 8) and images.is_pinned() == pin
    moved = images.to(DEVICE, non_blocking=True)
    assert torch.equal(moved.cpu(), images)
