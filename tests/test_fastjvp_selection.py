"""Choosing between the fast ViT JVP and the torch.func fallback."""

from __future__ import annotations

import pytest
import torch
from open_clip.transformer import VisionTransformer
from torch import nn

from task_arithmetic.models import fast_jvp
from task_arithmetic.models.linearize import LinearizedModel, functorch_jvp, select_jvp


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 7), nn.GELU(), nn.Linear(7, 3)).double()


def _vision(**overrides) -> nn.Module:
    """A small open_clip VisionTransformer built directly (no text tower), default structure + overrides."""
    torch.manual_seed(0)
    kwargs = dict(image_size=32, patch_size=8, width=64, layers=2, heads=2, mlp_ratio=4.0, output_dim=32)
    return VisionTransformer(**{**kwargs, **overrides})


def test_plain_mlp_falls_back_to_torch_func():
    mlp = _mlp()
    assert not fast_jvp.supports(mlp)
    assert select_jvp(mlp) is functorch_jvp
    lin = LinearizedModel(mlp)
    assert lin.jvp_fn is functorch_jvp
    with torch.no_grad():
        for p in lin.trainable.parameters():
            p.add_(0.1)
    x = torch.randn(4, 5, dtype=torch.float64)
    w1, b1, w2, b2 = (p.detach() for p in lin.frozen.parameters())
    d1, d2, d3, d4 = (torch.full_like(p, 0.1) for p in (w1, b1, w2, b2))
    # Hand-derived JVP of the two-layer MLP at theta_0.
    h = x @ w1.t() + b1
    h_t = x @ d1.t() + d2
    gelu_slope = torch.func.jvp(nn.functional.gelu, (h,), (torch.ones_like(h),))[1]
    expected = nn.functional.gelu(h) @ w2.t() + b2 + (gelu_slope * h_t) @ w2.t() + nn.functional.gelu(h) @ d3.t() + d4
    assert torch.allclose(lin(x), expected, rtol=1e-10, atol=1e-12)


def test_linearized_forward_itself_falls_back_for_unsupported_modules():
    mlp = _mlp()
    params0 = {k: v.detach() for k, v in mlp.named_parameters()}
    delta = {k: torch.ones_like(v) for k, v in params0.items()}
    x = torch.randn(3, 5, dtype=torch.float64)
    got = fast_jvp.linearized_forward(mlp, params0, delta, x)
    ref = functorch_jvp(mlp, params0, delta, x)
    assert torch.equal(got[0], ref[0]) and torch.equal(got[1], ref[1])


@pytest.mark.parametrize(
    "overrides",
    [{"ls_init_value": 0.1}, {"patch_dropout": 0.5}, {"output_tokens": True}, {"pool_type": "avg"}, {"attentional_pool": True, "attn_pooler_heads": 2}],
    ids=["layerscale", "patch-dropout", "output-tokens", "avg-pool", "attentional-pool"],
)
def test_structures_it_does_not_reproduce_are_refused(overrides):
    assert fast_jvp.supports(_vision())
    assert not fast_jvp.supports(_vision(**overrides))


def test_hooks_and_attention_dropout_are_refused():
    vit = _vision()
    vit.transformer.resblocks[0].attn.dropout = 0.1
    assert not fast_jvp.supports(vit)
    vit = _vision()
    vit.transformer.resblocks[1].mlp.register_forward_hook(lambda *a: None)
    assert not fast_jvp.supports(vit)
    assert select_jvp(vit) is functorch_jvp


def test_vit_without_ln_pre_is_supported_and_correct():
    vit = _vision(no_ln_pre=True).double()
    assert fast_jvp.supports(vit)
    params0 = {k: v.detach() for k, v in vit.named_parameters()}
    delta = {k: 1e-2 * torch.randn_like(v) for k, v in params0.items()}
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    got = fast_jvp.linearized_forward(vit, params0, delta, x)
    ref = functorch_jvp(vit, params0, delta, x)
    assert torch.allclose(got[0], ref[0], rtol=1e-10) and torch.allclose(got[1], ref[1], rtol=1e-9, atol=1e-12)


def test_select_jvp_picks_fast_path_for_vit():
    assert select_jvp(_vision()) is fast_jvp.linearized_forward
