"""The hand-written ViT JVP (fast_jvp) against torch.func and against finite differences."""

from __future__ import annotations

import open_clip
import pytest
import torch
from torch import nn
from torch.func import vmap

from task_arithmetic.models import fast_jvp
from task_arithmetic.models.encoder import build_encoder
from task_arithmetic.models.factory import ModelSpec
from task_arithmetic.models.linearize import LinearizedModel, functorch_jvp

REL64 = 1e-9  # float64: both paths agree to rounding (~1e-15); anything structural is far above
REL32 = 1e-4  # float32 ViT-B-32: measured ~1e-6; a wrong term would be O(1)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm().clamp_min(1e-300)).item()


def _tiny_vit(quick_gelu: bool = False, dtype: torch.dtype = torch.float64) -> nn.Module:
    torch.manual_seed(0)
    model = open_clip.create_model("TinyCLIP", pretrained=None, force_quick_gelu=quick_gelu)
    return model.visual.to(dtype)


def _images(vit: nn.Module, batch: int, dtype: torch.dtype, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    size = vit.image_size[0]
    return torch.randn(batch, 3, size, size, generator=g, dtype=dtype)


def _run(jvp_fn, module: nn.Module, names: list[str], images: torch.Tensor, seed: int = 2):
    """Output, tangent and d(loss)/d(theta) for a loss that uses both the output and the tangent."""
    params0 = {k: v.detach() for k, v in module.named_parameters()}
    g = torch.Generator().manual_seed(seed)
    theta = {k: (params0[k] + 1e-2 * torch.randn(params0[k].shape, generator=g, dtype=params0[k].dtype)).requires_grad_() for k in names}
    delta = {k: theta[k] - params0[k] for k in names}
    out0, tangent = jvp_fn(module, params0, delta, images)
    weights = torch.linspace(-1, 1, tangent.numel(), dtype=tangent.dtype).view_as(tangent)
    loss = tangent.norm(dim=-1).sum() + ((out0 + tangent) * weights).sum()
    loss.backward()
    return out0.detach(), tangent.detach(), {k: theta[k].grad for k in names}


def _compare(module: nn.Module, names: list[str], images: torch.Tensor, tol: float) -> None:
    ref = _run(functorch_jvp, module, names, images)
    fast = _run(fast_jvp.linearized_forward, module, names, images)
    assert _rel(fast[0], ref[0]) < tol
    assert _rel(fast[1], ref[1]) < tol
    for name in names:
        assert _rel(fast[2][name], ref[2][name]) < tol, name


def _subset(module: nn.Module) -> list[str]:
    # Later layers only: upstream tangents are zero, which the fast path skips.
    return [n for n, _ in module.named_parameters() if ".resblocks.1." in n or n.startswith(("ln_post", "proj"))]


@pytest.mark.parametrize("quick_gelu", [False, True])
@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("which", ["all", "subset"])
def test_tiny_vit_matches_torch_func(quick_gelu, training, which):
    vit = _tiny_vit(quick_gelu).train(training)
    assert fast_jvp.supports(vit)
    names = [n for n, _ in vit.named_parameters()] if which == "all" else _subset(vit)
    _compare(vit, names, _images(vit, 3, torch.float64), REL64)


def test_tiny_vit_embedding_only_delta_matches():
    vit = _tiny_vit()
    _compare(vit, ["class_embedding", "positional_embedding", "conv1.weight"], _images(vit, 2, torch.float64), REL64)
    _compare(vit, ["transformer.resblocks.0.attn.in_proj_bias", "ln_pre.bias"], _images(vit, 2, torch.float64), REL64)


@pytest.fixture(scope="module")
def vit_b32() -> nn.Module:
    torch.manual_seed(0)
    return open_clip.create_model("ViT-B-32", pretrained=None).visual


def test_vit_b32_matches_torch_func(vit_b32):
    assert fast_jvp.supports(vit_b32)
    images = _images(vit_b32, 2, torch.float32)
    _compare(vit_b32.train(), [n for n, _ in vit_b32.named_parameters()], images, REL32)
    _compare(vit_b32.eval(), _subset(vit_b32), images[:1], REL32)


def test_image_encoder_wrapper_is_supported_with_prefixed_names():
    encoder = build_encoder(ModelSpec("TinyCLIP")).double()
    assert fast_jvp.supports(encoder)
    names = [n for n, _ in encoder.named_parameters() if "resblocks.0" in n or n.endswith("proj")]
    _compare(encoder, names, _images(encoder.visual, 2, torch.float64), REL64)


def test_linearized_model_at_theta0_is_the_original_module():
    vit = _tiny_vit().eval()
    lin = LinearizedModel(vit)
    assert lin.jvp_fn is fast_jvp.linearized_forward
    images = _images(vit, 4, torch.float64)
    with torch.no_grad():
        expected = vit(images)
    out = lin(images)
    assert torch.allclose(out, expected, rtol=1e-12, atol=1e-12)
    assert lin.tangent(images).abs().max().item() == 0.0


def test_linearised_output_matches_finite_differences():
    vit = _tiny_vit().eval()
    lin = LinearizedModel(vit)
    g = torch.Generator().manual_seed(3)
    direction = {n: torch.randn(p.shape, generator=g, dtype=p.dtype) for n, p in vit.named_parameters()}
    eps = 1e-6
    with torch.no_grad():
        for n, p in lin.trainable.named_parameters():
            p.add_(direction[n], alpha=eps)
    images = _images(vit, 3, torch.float64)
    with torch.no_grad():
        moved = lin.trainable(images)
        base = lin.frozen(images)
    tangent = lin.tangent(images).detach()
    assert _rel(tangent, moved - base) < 1e-4
    # The linear model is first-order exact: its output differs from f(theta) only at O(eps^2).
    assert _rel(lin(images).detach() - base, moved - base) < 1e-4


def test_gradients_reach_trainable_parameters_only():
    vit = _tiny_vit().eval()
    lin = LinearizedModel(vit)
    with torch.no_grad():
        for p in lin.trainable.parameters():
            p.add_(1e-3)
    lin(_images(vit, 2, torch.float64)).pow(2).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in lin.trainable.parameters())
    assert all(p.grad is None for p in lin.frozen.parameters())


def test_vmap_over_task_vectors_matches_one_by_one():
    vit = _tiny_vit().eval()
    params0 = {k: v.detach() for k, v in vit.named_parameters()}
    g = torch.Generator().manual_seed(4)
    stacked = {k: 1e-2 * torch.randn((3, *v.shape), generator=g, dtype=v.dtype) for k, v in params0.items()}
    images = _images(vit, 2, torch.float64)
    with torch.inference_mode():
        out0, tangents = vmap(lambda d: fast_jvp.linearized_forward(vit, params0, d, images), out_dims=(0, 0))(stacked)
        for i in range(3):
            ref0, ref_t = functorch_jvp(vit, params0, {k: v[i] for k, v in stacked.items()}, images)
            assert _rel(tangents[i], ref_t) < REL64
            assert _rel(out0[i], ref0) < REL64


def test_bf16_autocast_runs_and_stays_close():
    vit = _tiny_vit(dtype=torch.float32).eval()
    params0 = {k: v.detach() for k, v in vit.named_parameters()}
    delta = {k: 1e-2 * torch.randn_like(v) for k, v in params0.items()}
    images = _images(vit, 2, torch.float32)
    ref0, ref_t = fast_jvp.linearized_forward(vit, params0, delta, images)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out0, tangent = fast_jvp.linearized_forward(vit, params0, delta, images)
    assert out0.dtype == torch.bfloat16 and tangent.dtype == torch.bfloat16
    assert _rel(out0.float(), ref0) < 5e-2 and _rel(tangent.float(), ref_t) < 5e-2


def test_unknown_delta_key_is_rejected():
    vit = _tiny_vit()
    params0 = dict(vit.named_parameters())
    with pytest.raises(KeyError, match="not parameters"):
        fast_jvp.linearized_forward(vit, params0, {"no.such.weight": torch.zeros(1)}, _images(vit, 1, torch.float64))
