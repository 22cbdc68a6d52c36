"""Diagonal GGN: TAK's cheaper baseline (same paper, arXiv 2602.17385) - the same quadratic
penalty of the task vector with the DIAGONAL of the other tasks' Gauss-Newton matrices.

    beta * sum_p sum_i D_{p,i} tau_{p,i}^2,    D = sum_{s != t} lambda_s diag(E_{x in D_s}[J^T J])

with J the Jacobian of the pre-trained model's L2-normalised embedding, estimated with one
Monte-Carlo probe per input (the squared per-example gradients of eps^T f(x)) on the same fixed
draw of inputs as TAK's factors (tak.py, whose probes this reuses), lambda_s proportional to the
train-split sizes. The diagonal covers every parameter, the patch embedding and the positional
embedding included. A diagonal merges exactly over tasks: one D, whatever their number.

Only the estimator exists in the authors' code (mammoth's fisher_diag.py, never called there);
the penalty form and beta (TAK's default, 100) are ours by analogy, stated as such.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sized
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from ..io import load_cached_weights, save_weights
from ..lazy import F, nn, torch  # imported on first use: every script's parser reads the plug-ins
from .base import Context, Penalty, PenaltyInputs, PenaltySetup, PenaltyTerm, Readout, Regularizer, Settings, StepCost, finite, metric, need, option
from .basic import Linear
from .identity import Group, Recipe, RunId
from .tak import BETA, EXAMPLES, FACTOR_SEED, _theta0_module, linear_sites, norm_grads, other_tasks, probe_batches, with_ones

if TYPE_CHECKING:
    from torch.utils.data import Dataset


@dataclass(frozen=True)
class DiagGGNOptions:
    diag_ggn_beta: float | None = option("beta, the diagonal curvature penalty's strength (default 100, TAK's)")
    diag_ggn_examples: int | None = option("inputs of each penalty task for the diagonal at theta_0 (default 256)", int)
    diag_ggn_tasks: tuple[str, ...] | None = option("comma-separated; default: the benchmark's other tasks + its control task", tasks=True)


@dataclass(frozen=True)
class DiagGGNSettings(Settings):
    diag_ggn_beta: float
    diag_ggn_examples: int
    diag_ggn_tasks: tuple[str, ...]


def task_diagonal(theta0: nn.Module, dataset: Dataset, examples: int, device: torch.device) -> dict[str, torch.Tensor]:
    """E_n[g_n * g_n] per parameter, g_n the per-example gradient of the probe eps_n^T f(x_n)."""
    params = dict(theta0.named_parameters())
    sums: dict[str, torch.Tensor] = {}
    seen = 0

    def add(key: str, per_example: torch.Tensor) -> None:
        sums[key] = sums.get(key, 0) + (per_example.float() ** 2).sum(dim=0)

    for probe in probe_batches(theta0, dataset, examples, device):
        assert probe.images is not None
        seen += probe.images.shape[0]
        for site in linear_sites(theta0):
            bias = site.bias is not None and site.bias in params
            grad = torch.einsum("nto,nti->noi", probe.grads[site.key].float(), with_ones(probe.inputs[site.key].float(), bias))
            weight = grad[..., :-1] if bias else grad
            add(site.key, weight.transpose(1, 2) if site.key == "proj" else weight)
            if bias:
                add(site.bias, grad[..., -1])  # type: ignore[arg-type]
        for key, grad in norm_grads(probe).items():
            if key in params:
                add(key, grad)
        tokens = probe.tokens_grad
        if tokens is not None and "positional_embedding" in params:
            add("positional_embedding", tokens)
        conv = getattr(theta0, "conv1", None)
        if tokens is not None and isinstance(conv, nn.Conv2d) and conv.kernel_size == conv.stride and "conv1.weight" in params:
            patches = F.unfold(probe.images, conv.kernel_size, stride=conv.stride).transpose(1, 2)  # [N, patches, 3*k*k]
            grad = torch.einsum("npo,npi->noi", tokens[:, 1:].float(), patches.float())
            add("conv1.weight", grad.reshape(grad.shape[0], *conv.weight.shape))
    return {k: (v / seen).cpu() for k, v in sums.items()}


class DiagGGNPenalty(Penalty):
    metrics = ("curvature",)

    def __init__(self, beta: float, theta0: dict[str, torch.Tensor], diagonal: dict[str, torch.Tensor]):
        self.beta, self.theta0, self.diagonal = beta, theta0, diagonal

    def term(self, trainee: Any, tangent: torch.Tensor | None, inputs: PenaltyInputs | None, world: int) -> PenaltyTerm:
        value = torch.zeros((), device=trainee.device)
        for name, p in trainee.visual.named_parameters():
            if name in self.diagonal:
                value = value + (self.diagonal[name].to(p.device) * (p - self.theta0[name]) ** 2).sum()
        return PenaltyTerm(self.beta * value, {"curvature": metric(value)})  # the whole term on every process, as L2-SP

    def record(self, means: dict[str, float]) -> dict[str, float]:
        return {"curvature": means["curvature"], "penalty": self.beta * means["curvature"]}


class DiagGGN(Regularizer[DiagGGNOptions, DiagGGNSettings]):
    name = "diag_ggn"
    summary = "diagonal GGN curvature reg."
    options = DiagGGNOptions
    default_mode = "linear"  # as TAK
    needs_theta0 = True

    def recipes(self) -> tuple[Recipe, ...]:
        return (Recipe("diag_ggn", RunId(Linear(), self), Readout.LINEARIZED, Group.FIELD, "diagonal GGN (linear FT + diagonal curvature reg.)"),)

    def resolve(self, options: DiagGGNOptions, ctx: Context) -> DiagGGNSettings:
        beta = options.diag_ggn_beta if options.diag_ggn_beta is not None else ctx.default("diag_ggn_beta", BETA)
        examples = options.diag_ggn_examples if options.diag_ggn_examples is not None else EXAMPLES
        finite(beta, "diag_ggn_beta")
        need(examples >= 1, f"--diag-ggn-examples must be >= 1, got {examples}")
        return DiagGGNSettings(float(beta), int(examples), other_tasks(options.diag_ggn_tasks, ctx, "--diag-ggn-tasks"))

    def data_tasks(self, settings: DiagGGNSettings) -> tuple[str, ...]:
        return settings.diag_ggn_tasks

    def setup_cost(self, settings: DiagGGNSettings) -> StepCost:
        return StepCost(plain=settings.diag_ggn_examples * len(settings.diag_ggn_tasks))

    def build(self, settings: DiagGGNSettings, setup: PenaltySetup) -> Penalty:
        theta0 = _theta0_module(setup)
        sizes = [float(len(cast(Sized, ds))) for ds in setup.datasets]
        diagonal: dict[str, torch.Tensor] = {}
        for task, dataset, n in zip(settings.diag_ggn_tasks, setup.datasets, sizes):
            for key, value in _cached(setup, task, dataset, settings.diag_ggn_examples, theta0).items():
                diagonal[key] = diagonal.get(key, 0) + (n / sum(sizes)) * value  # exact merge: lambda_s D_s
        return DiagGGNPenalty(settings.diag_ggn_beta, dict(setup.theta0), diagonal)


def _cached(setup: PenaltySetup, task: str, dataset: Dataset, examples: int, theta0: nn.Module) -> dict[str, torch.Tensor]:
    recipe = {"kind": "diag_ggn", "task": task, "examples": examples, "seed": FACTOR_SEED, "version": 1}
    path = setup.cache / "curvature" / f"{task}-diag-{hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]}.safetensors"
    if path.is_file():
        found = load_cached_weights(path)
        if found is not None:
            return found[0]
    diagonal = task_diagonal(theta0, dataset, examples, next(theta0.parameters()).device)
    if setup.rank == 0:
        save_weights(path, diagonal, {**recipe, "num_examples": min(examples, len(cast(Sized, dataset)))})
    return diagonal


PLUGINS = (DiagGGN(),)
