"""OrthoReg (Liu et al., CVPR 2026, arXiv 2604.17078): keep each weight update close to orthogonal.

    lambda * sum_l || G_l - I ||_F,   G_l = dW_l^T dW_l (or dW_l dW_l^T, the smaller side),  dW_l = W_l - W_l,0

over the tuned 2-D weight matrices of the image encoder (attention in-projections with q/k/v
packed as one matrix, out-projections, MLP matrices, the positional embedding and the final
projection; the patch embedding is 4-D and biases, LayerNorms and the class token are 1-D, so
they carry no term). A plug-in for any mode: with attention-only fine-tuning only the attention
projections train, and so only they carry terms.

As printed, the term is lambda sum_l ||dW^T dW - I||_F^2, which also pulls every update column to
unit norm. The authors' code (lshangge/OrthoReg, the first author's repositories; RL-MIND/OrthoReg
could not be read here) computes the Frobenius norm NOT squared, on the smaller Gram: that is
`--orthoreg-form code`, the default, since it produced the reported numbers; `--orthoreg-form
paper` is the printed one. Near dW = 0 either form's gradient grows the update (-2 dW / sqrt(k),
resp. -4 dW): an anti-weight-decay until the columns approach unit norm. lambda: the README's
example uses 10 (ViT-B/32, lr 1e-5); the paper chooses it on validation in [0.1, 100].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..lazy import torch  # imported on first use: every script's parser reads the plug-ins
from .attn_only import AttnOnly
from .base import Context, Penalty, PenaltyInputs, PenaltySetup, PenaltyTerm, Readout, Regularizer, Settings, finite, metric, need, option
from .basic import Standard
from .identity import Group, Recipe, RunId

LAMBDA = 10.0
FORMS = ("code", "paper")


@dataclass(frozen=True)
class OrthoRegOptions:
    orthoreg_lambda: float | None = option("lambda, the orthogonality penalty's strength (default 10)")
    orthoreg_form: str | None = option("code (||G - I||_F on the smaller Gram, the authors' code; default) or paper (squared, columns)", str)


@dataclass(frozen=True)
class OrthoRegSettings(Settings):
    orthoreg_lambda: float
    orthoreg_form: str


def orthogonality(delta: torch.Tensor, form: str) -> torch.Tensor:
    """One matrix's term: ||G - I||_F with G the smaller Gram (code), or ||dW^T dW - I_cols||_F^2
    (paper), the latter through the smaller Gram: ||D^T D - I_c||^2 = ||G||^2 - 2 ||D||^2 + c."""
    rows, cols = delta.shape
    gram = delta.T @ delta if rows >= cols else delta @ delta.T
    if form == "code":
        return torch.linalg.matrix_norm(gram - torch.eye(gram.shape[0], dtype=delta.dtype, device=delta.device))
    return (gram * gram).sum() - 2 * (delta * delta).sum() + cols


class OrthoRegPenalty(Penalty):
    metrics = ("orthogonality",)

    def __init__(self, settings: OrthoRegSettings, theta0: dict[str, torch.Tensor]):
        self.settings, self.theta0 = settings, theta0

    def term(self, trainee: Any, tangent: torch.Tensor | None, inputs: PenaltyInputs | None, world: int) -> PenaltyTerm:
        terms = [orthogonality(p - self.theta0[n], self.settings.orthoreg_form) for n, p in trainee.visual.named_parameters() if p.requires_grad and p.ndim == 2]
        value = torch.stack(terms).sum() if terms else torch.zeros((), device=trainee.device)
        # the whole term on every process, as L2-SP: averaged gradients leave it unscaled
        return PenaltyTerm(self.settings.orthoreg_lambda * value, {"orthogonality": metric(value)})

    def record(self, means: dict[str, float]) -> dict[str, float]:
        return {"orthogonality": means["orthogonality"], "penalty": self.settings.orthoreg_lambda * means["orthogonality"]}


class OrthoReg(Regularizer[OrthoRegOptions, OrthoRegSettings]):
    name = "orthoreg"
    summary = "OrthoReg"
    options = OrthoRegOptions
    default_mode = "standard"
    needs_theta0 = True

    def recipes(self) -> tuple[Recipe, ...]:
        return (
            Recipe("orthoreg", RunId(Standard(), self), Readout.NONLINEAR, Group.FIELD, "non-linear FT + OrthoReg"),
            Recipe("attn_only_orthoreg", RunId(AttnOnly(), self), Readout.NONLINEAR, Group.FIELD, "attention-only FT + OrthoReg"),
        )

    def resolve(self, options: OrthoRegOptions, ctx: Context) -> OrthoRegSettings:
        lam = options.orthoreg_lambda if options.orthoreg_lambda is not None else ctx.default("orthoreg_lambda", LAMBDA)
        form = options.orthoreg_form if options.orthoreg_form is not None else FORMS[0]
        finite(lam, "orthoreg_lambda")
        need(form in FORMS, f"--orthoreg-form must be one of {', '.join(FORMS)}, got {form}")
        return OrthoRegSettings(float(lam), form)

    def build(self, settings: OrthoRegSettings, setup: PenaltySetup) -> Penalty:
        return OrthoRegPenalty(settings, dict(setup.theta0))


PLUGINS = (OrthoReg(),)
