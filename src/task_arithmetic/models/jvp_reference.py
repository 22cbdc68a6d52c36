"""The reference JVP: torch.func.jvp through any module, with kernels that support forward AD.

Both linearize (the dispatcher) and fast_jvp (for what it does not cover) fall back to it.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Mapping, cast

import torch
from torch import nn
from torch.func import functional_call, jvp
from torch.nn.attention import SDPBackend, sdpa_kernel


@contextlib.contextmanager
def forward_ad_safe() -> Iterator[None]:
    """Use kernels that have forward-mode AD formulas.

    The fused SDPA kernels and nn.MultiheadAttention's fast path have none, so open_clip's ViT
    fails under jvp by default; the math SDPA kernel and the slow MHA path work on CPU and CUDA.
    """
    previous = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with sdpa_kernel(SDPBackend.MATH):
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(previous)


def functorch_jvp(
    module: nn.Module, params0: dict[str, torch.Tensor], delta: Mapping[str, torch.Tensor], inputs: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference path: (f(x; theta_0), J_theta0 f(x) . delta) with torch.func.jvp.

    Gradients flow into `delta` (and whatever it was computed from); params0 are constants.
    It always computes in the parameters' dtype, autocast switched off: forward-mode AD under
    autocast was slower than in fp32 (ViT-B-32, batch 8, one CPU thread: 7.1 s against 6.4 s
    here, and 10.8x a plain bf16 step on a Xeon with AMX), so a bf16 run's fallback is fp32.
    """
    names = list(delta)
    fixed = {k: v for k, v in params0.items() if k not in delta}

    def f(*trainable: torch.Tensor) -> torch.Tensor:
        return functional_call(module, {**fixed, **dict(zip(names, trainable))}, (inputs,))

    with forward_ad_safe(), torch.autocast(inputs.device.type, enabled=False):
        # torch.func.jvp's annotation also covers has_aux=True (a 3-tuple); without aux it is (out, tangent).
        return cast(tuple[torch.Tensor, torch.Tensor], jvp(f, tuple(params0[n] for n in names), tuple(delta[n] for n in names)))
