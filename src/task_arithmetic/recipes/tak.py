"""TAK: a dataless curvature regulariser (Porrello, Buzzega, Dangel et al., ICLR 2026, arXiv 2602.17385).

Linearised fine-tuning of task t with

    beta * [ sum_l tr(B^l tau_l A^l tau_l^T) + s_proj tr(B^p tau_p A^p tau_p^T) + s_full sum_q tau_q^T F^q tau_q ]

a K-FAC approximation of sum_{s != t} lambda_s tau^T G_s tau, with G_s = E_{x in D_s}[J^T J] the
Gauss-Newton matrix of the L2-normalised image embedding of the PRE-TRAINED model on task s: the
function-space drift on other tasks that tau-Jp measures with their inputs at every step, here
from curvature statistics computed once, before training, and cached. Per Linear-like layer l
(attention in/out projections, MLP c_fc/c_proj; weight and bias as one [W | b] block with a
column of ones in A) A^l is the covariance of the layer's inputs and B^l that of the gradients
at its outputs of eps^T f(x), eps ~ N(0, I) (one Monte-Carlo sample: E[eps eps^T] = I is the
squared loss's Hessian), both averaged over tokens and examples. The final projection (proj, as
the Linear proj^T) is a K-FAC block scaled by s_proj; LayerNorm weights, LayerNorm biases and the
class token get full blocks F^q = E[g g^T] of their per-example gradients, scaled by s_full.

Merged factors (the default variant, the form the paper uses so that the cost does not grow with
the number of tasks): A = sum_s lambda_s A_s, B = sum_s B_s, F = sum_s lambda_s F_s, with
lambda_s = |D_s| / sum |D_s| over the penalty tasks (train-split sizes). Variant `per_task`:
sum_s lambda_s tr(B_s tau A_s tau^T) + ..., the unmerged sum (cost linear in the tasks).

Facts from the authors' two official code bases (aimagelab/mammoth; apanariello4/merge-and-rebase,
the open_clip port), the paper's body not having been readable here: no damping (nothing is
inverted); the 1/tokens scaling of both factors; beta 100, s_full 10, s_proj 0.01 are the
open_clip port's configs (mammoth: 500, 10, 0.1). Our choices: the penalty tasks are the
benchmark's other tasks and its control set, as for tau-Jp; the factors use `--tak-examples`
inputs of each (default 256; the code bases use 30 % or all of the train split); the patch
embedding and the positional embedding, which the official code freezes, train here without a
penalty term.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Sized
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence, cast

from ..data.registry import benchmark_tasks, control_task, parse_task_list
from ..io import load_cached_weights, save_weights
from ..lazy import F, nn, torch  # imported on first use: every script's parser reads the plug-ins
from .base import (
    Context,
    Penalty,
    PenaltyInputs,
    PenaltySetup,
    PenaltyTerm,
    Readout,
    Regularizer,
    Settings,
    StepCost,
    finite,
    metric,
    need,
    option,
)
from .basic import Linear
from .identity import Group, Recipe, RunId

if TYPE_CHECKING:
    from torch.utils.data import Dataset

PROJ_SCALE, FULL_SCALE, BETA, EXAMPLES = 0.01, 10.0, 100.0, 256
FACTOR_SEED = 0  # the factors' inputs: one fixed draw, so every run of the model shares the cache
FACTOR_BATCH = 32


@dataclass(frozen=True)
class TakOptions:
    tak_beta: float | None = option("beta, the curvature penalty's strength (default 100)")
    tak_examples: int | None = option("inputs of each penalty task for the curvature factors at theta_0 (default 256)", int)
    tak_proj_scale: float | None = option("scale of the final projection's block (default 0.01)")
    tak_full_scale: float | None = option("scale of the LayerNorm and class-token blocks (default 10)")
    tak_tasks: tuple[str, ...] | None = option("comma-separated; default: the benchmark's other tasks + its control task", tasks=True)


@dataclass(frozen=True)
class TakSettings(Settings):
    tak_beta: float
    tak_examples: int
    tak_proj_scale: float
    tak_full_scale: float
    tak_tasks: tuple[str, ...]


def other_tasks(given: tuple[str, ...] | None, ctx: Context, flag_name: str) -> tuple[str, ...]:
    """The given tasks, or the benchmark's other tasks and its control task (tau-Jp's default)."""
    if given is not None:
        chosen = tuple(dict.fromkeys(parse_task_list(list(given))))
        need(ctx.task not in chosen, f"{flag_name} contains the task being fine-tuned ({ctx.task}); the penalty is about OTHER tasks, so remove it")
        return chosen
    control = control_task(ctx.benchmark)
    chosen = tuple(t for t in benchmark_tasks(ctx.benchmark) if t != ctx.task) + ((control,) if control and control != ctx.task else ())
    need(bool(chosen), f"benchmark {ctx.benchmark} has no task besides {ctx.task} to compute curvature on; pass {flag_name}")
    return chosen


# ----------------------------------------------------------------------------------------------
# probing the pre-trained model: layer inputs and output gradients of eps^T f(x)


@dataclass(frozen=True)
class Site:
    """A Linear-like computation y = x W^T + b of the visual tower."""

    key: str  # the weight (for proj: the raw [width, embed] parameter, used as proj^T)
    bias: str | None


def linear_sites(visual: nn.Module) -> list[Site]:
    """Attention in/out projections (packed q/k/v: one block), every other nn.Linear, and proj."""
    sites, inner = [], set()
    for name, module in visual.named_modules():
        if isinstance(module, nn.MultiheadAttention):
            sites += [Site(f"{name}.in_proj_weight", f"{name}.in_proj_bias" if module.in_proj_bias is not None else None),
                      Site(f"{name}.out_proj.weight", f"{name}.out_proj.bias" if module.out_proj.bias is not None else None)]
            inner.add(id(module.out_proj))
    for name, module in visual.named_modules():
        if isinstance(module, nn.Linear) and id(module) not in inner:
            sites.append(Site(f"{name}.weight", f"{name}.bias" if module.bias is not None else None))
    if isinstance(getattr(visual, "proj", None), torch.Tensor):
        sites.append(Site("proj", None))
    return sites


def norm_params(visual: nn.Module) -> list[str]:
    """LayerNorm weights and biases (separate blocks) and the class token: TAK's full blocks."""
    names = [f"{n}.{p}" for n, m in visual.named_modules() if isinstance(m, nn.LayerNorm) for p in ("weight", "bias") if getattr(m, p) is not None]
    return names + (["class_embedding"] if isinstance(getattr(visual, "class_embedding", None), torch.Tensor) else [])


@dataclass
class Probe:
    """One batch's records: per site, inputs [N, T, in] and output gradients [N, T, out]; per
    LayerNorm, its normalised input and output gradient; the gradient at ln_pre's input."""

    inputs: dict[str, torch.Tensor] = field(default_factory=dict)
    grads: dict[str, torch.Tensor] = field(default_factory=dict)
    norm_in: dict[str, torch.Tensor] = field(default_factory=dict)
    norm_grad: dict[str, torch.Tensor] = field(default_factory=dict)
    tokens_grad: torch.Tensor | None = None  # d/d(ln_pre input) = d/d(class token + patches + positions)
    images: torch.Tensor | None = None


def _as_tokens(x: torch.Tensor) -> torch.Tensor:
    return x if x.ndim == 3 else x.unsqueeze(1)


def _mha_forward(mha: nn.MultiheadAttention, key: str, probe: Probe) -> Callable[..., tuple[torch.Tensor, None]]:
    """Self-attention with the packed in-projection and the out-projection as explicit F.linear
    calls, so their inputs and output gradients can be recorded: open_clip runs
    F.multi_head_attention_forward, where neither projection is a module call a hook could see."""
    def forward(query: torch.Tensor, key_: torch.Tensor, value: torch.Tensor, key_padding_mask: Any = None, need_weights: bool = True,
                attn_mask: torch.Tensor | None = None, average_attn_weights: bool = True, is_causal: bool = False) -> tuple[torch.Tensor, None]:
        x = query if mha.batch_first else query.transpose(0, 1)
        n, length, d = x.shape
        qkv = F.linear(x, mha.in_proj_weight, mha.in_proj_bias)
        probe.inputs[f"{key}.in_proj_weight"] = x.detach()
        qkv.register_hook(lambda g: probe.grads.__setitem__(f"{key}.in_proj_weight", g.detach()))
        q, k, v = qkv.view(n, length, 3, mha.num_heads, d // mha.num_heads).permute(2, 0, 3, 1, 4)
        mask = attn_mask
        if mask is not None and mask.dtype == torch.bool:
            mask = torch.zeros_like(mask, dtype=q.dtype).masked_fill(mask, float("-inf"))
        context = F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2).reshape(n, length, d)
        out = F.linear(context, mha.out_proj.weight, mha.out_proj.bias)
        probe.inputs[f"{key}.out_proj.weight"] = context.detach()
        out.register_hook(lambda g: probe.grads.__setitem__(f"{key}.out_proj.weight", g.detach()))
        return (out if mha.batch_first else out.transpose(0, 1)), None

    return forward


@contextlib.contextmanager
def probing(visual: nn.Module) -> Iterator[Probe]:
    """Record what one forward and one backward of the visual tower see (hooks removed on exit)."""
    probe = Probe()
    handles, patched = [], []
    modules = dict(visual.named_modules())

    def keep(store: dict[str, torch.Tensor], key: str) -> Callable[[torch.Tensor], None]:
        return lambda g: store.__setitem__(key, g.detach())

    try:
        for name, module in modules.items():
            if isinstance(module, nn.MultiheadAttention):
                module.forward = _mha_forward(module, name, probe)
                patched.append(module)
            elif isinstance(module, nn.Linear) and not name.endswith("out_proj"):
                def on_linear(m: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor, key: str = f"{name}.weight") -> None:
                    probe.inputs[key] = _as_tokens(inp[0].detach())
                    out.register_hook(lambda g: probe.grads.__setitem__(key, _as_tokens(g.detach())))
                handles.append(module.register_forward_hook(on_linear))
            elif isinstance(module, nn.LayerNorm):
                def on_norm(m: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor, key: str = name) -> None:
                    normalized = F.layer_norm(inp[0].detach().float(), m.normalized_shape, eps=m.eps)
                    probe.norm_in[key] = _as_tokens(normalized)
                    out.register_hook(lambda g: probe.norm_grad.__setitem__(key, _as_tokens(g.detach().float())))
                handles.append(module.register_forward_hook(on_norm))
        if "ln_pre" in modules:
            def on_tokens(m: nn.Module, inp: tuple[torch.Tensor, ...]) -> None:
                inp[0].register_hook(lambda g: setattr(probe, "tokens_grad", g.detach()))
            handles.append(modules["ln_pre"].register_forward_pre_hook(on_tokens))
        if isinstance(getattr(visual, "proj", None), torch.Tensor) and "ln_post" in modules:
            def on_pooled(m: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
                pooled = out if out.ndim == 2 else visual._global_pool(out)[0]
                probe.inputs["proj"] = pooled.detach().unsqueeze(1)

            def on_output(m: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
                out.register_hook(keep(probe.grads, "proj"))
            handles += [modules["ln_post"].register_forward_hook(on_pooled), visual.register_forward_hook(on_output)]
        yield probe
    finally:
        for handle in handles:
            handle.remove()
        for module in patched:
            del module.forward  # the class's own forward again
    if "proj" in probe.grads:
        probe.grads["proj"] = probe.grads["proj"].unsqueeze(1)


def probe_batches(theta0: nn.Module, dataset: Dataset, examples: int, device: torch.device) -> Iterator[Probe]:
    """One forward and one backward of eps^T normalize(f(x)) per batch of a fixed draw of
    `examples` inputs, at theta_0, in eval mode, parameters untouched (an input leaf carries the graph)."""
    pick = torch.randperm(len(cast(Sized, dataset)), generator=torch.Generator().manual_seed(FACTOR_SEED))[:examples].sort().values
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, pick.tolist()), batch_size=FACTOR_BATCH, shuffle=False)
    noise = torch.Generator().manual_seed(FACTOR_SEED + 1)
    theta0.eval()
    for batch in loader:
        images = batch[0].to(device).requires_grad_(True)
        with probing(theta0) as probe:
            embedding = F.normalize(theta0(images), dim=-1)
            eps = torch.randn(embedding.shape, generator=noise).to(embedding)
            (embedding * eps).sum().backward()
        probe.images = images.detach()
        yield probe


def with_ones(x: torch.Tensor, bias: bool) -> torch.Tensor:
    return torch.cat([x, torch.ones_like(x[..., :1])], dim=-1) if bias else x


def norm_grads(probe: Probe) -> dict[str, torch.Tensor]:
    """Per-example gradients [N, d] of each LayerNorm weight and bias and of the class token."""
    out = {}
    for key, delta in probe.norm_grad.items():
        out[f"{key}.weight"] = (delta * probe.norm_in[key]).sum(dim=1)
        out[f"{key}.bias"] = delta.sum(dim=1)
    if probe.tokens_grad is not None:
        out["class_embedding"] = probe.tokens_grad[:, 0].float()
    return out


# ----------------------------------------------------------------------------------------------
# factors: one task's, cached; merged over tasks


Factors = dict[str, "torch.Tensor"]  # "A.<site>", "B.<site>", "F.<param>" -> matrix


def task_factors(theta0: nn.Module, dataset: Dataset, examples: int, device: torch.device) -> Factors:
    """A, B per Linear-like site and F per norm parameter of one task, each an average over examples."""
    sites, norms = linear_sites(theta0), set(norm_params(theta0))
    params = dict(theta0.named_parameters())
    sums: Factors = {}
    seen = 0
    for probe in probe_batches(theta0, dataset, examples, device):
        n = probe.images.shape[0]  # type: ignore[union-attr]
        seen += n
        for site in sites:
            bias = site.bias is not None and site.bias in params
            a = with_ones(probe.inputs[site.key].float(), bias).flatten(0, 1)
            g = probe.grads[site.key].float().flatten(0, 1)
            tokens = probe.inputs[site.key].shape[1]
            sums[f"A.{site.key}"] = sums.get(f"A.{site.key}", 0) + a.T @ a / tokens
            sums[f"B.{site.key}"] = sums.get(f"B.{site.key}", 0) + g.T @ g / tokens
        for key, grad in norm_grads(probe).items():
            if key in norms:
                sums[f"F.{key}"] = sums.get(f"F.{key}", 0) + grad.T @ grad
    return {k: (v / seen).cpu() for k, v in sums.items()}


def cached_factors(setup: PenaltySetup, task: str, dataset: Dataset, examples: int, theta0: nn.Module) -> Factors:
    """The task's factors from the model's cache, computed (and saved atomically) on first use."""
    recipe = {"kind": "tak_kfac", "task": task, "examples": examples, "seed": FACTOR_SEED, "version": 1}
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
    path = setup.cache / "curvature" / f"{task}-kfac-{digest}.safetensors"
    if path.is_file():
        found = load_cached_weights(path)
        if found is not None:
            return found[0]
    factors = task_factors(theta0, dataset, examples, next(theta0.parameters()).device)
    if setup.rank == 0:
        save_weights(path, factors, {**recipe, "num_examples": min(examples, len(cast(Sized, dataset)))})
    return factors


def merge(per_task: Sequence[Factors], weights: Sequence[float]) -> Factors:
    """A and F weighted by lambda_s, B summed: the Kronecker heuristic's merged factors."""
    return {k: sum((1.0 if k.startswith("B.") else w) * f[k] for f, w in zip(per_task, weights)) for k in per_task[0]}


def quadratic(delta: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """tr(B D A D^T) = vec(D)^T (B kron A) vec(D), in two matrix products."""
    return ((b @ delta) * (delta @ a)).sum()


def site_delta(params: dict[str, torch.Tensor], theta0: dict[str, torch.Tensor], site: Site, a_size: int) -> torch.Tensor:
    """[dW | db] of a site (proj as the Linear proj^T)."""
    delta = params[site.key] - theta0[site.key]
    delta = delta.T if site.key == "proj" else delta
    if a_size == delta.shape[1] + 1:  # the bias column
        bias = params[site.bias] - theta0[site.bias] if site.bias is not None else torch.zeros_like(delta[:, 0])
        delta = torch.cat([delta, bias.unsqueeze(1)], dim=1)
    return delta


def curvature(visual: nn.Module, theta0: dict[str, torch.Tensor], factors: Factors, proj_scale: float, full_scale: float) -> torch.Tensor:
    """sum over sites of tr(B D A D^T) (proj scaled) + full_scale * sum of d^T F d over norm params."""
    params = dict(visual.named_parameters())
    total = torch.zeros((), device=next(visual.parameters()).device)
    for site in linear_sites(visual):
        a, b = factors[f"A.{site.key}"].to(total.device), factors[f"B.{site.key}"].to(total.device)
        value = quadratic(site_delta(params, theta0, site, a.shape[0]), a, b)
        total = total + (proj_scale * value if site.key == "proj" else value)
    for key in norm_params(visual):
        d = (params[key] - theta0[key]).reshape(-1)
        total = total + full_scale * (d @ (factors[f"F.{key}"].to(total.device) @ d))
    return total


class TakPenalty(Penalty):
    metrics = ("curvature",)

    def __init__(self, settings: TakSettings, theta0: dict[str, torch.Tensor], factors: Sequence[Factors], weights: Sequence[float]):
        self.settings, self.theta0, self.factors, self.weights = settings, theta0, list(factors), list(weights)

    def term(self, trainee: Any, tangent: torch.Tensor | None, inputs: PenaltyInputs | None, world: int) -> PenaltyTerm:
        s = self.settings
        # every process holds the same theta and adds the whole term (as L2-SP): averaged gradients leave it unscaled
        value = sum(w * curvature(trainee.visual, self.theta0, f, s.tak_proj_scale, s.tak_full_scale) for f, w in zip(self.factors, self.weights))
        assert isinstance(value, torch.Tensor)
        return PenaltyTerm(s.tak_beta * value, {"curvature": metric(value)})

    def record(self, means: dict[str, float]) -> dict[str, float]:
        return {"curvature": means["curvature"], "penalty": self.settings.tak_beta * means["curvature"]}


class Tak(Regularizer[TakOptions, TakSettings]):
    name = "tak"
    summary = "TAK curvature reg."
    options = TakOptions
    variants = ("merged", "per_task")
    default_mode = "linear"  # as the paper does
    needs_theta0 = True

    def recipes(self) -> tuple[Recipe, ...]:
        return (Recipe("tak", RunId(Linear(), self), Readout.LINEARIZED, Group.FIELD, "TAK (linear FT + K-FAC curvature reg.)"),)

    def resolve(self, options: TakOptions, ctx: Context) -> TakSettings:
        beta = options.tak_beta if options.tak_beta is not None else ctx.default("tak_beta", BETA)
        examples = options.tak_examples if options.tak_examples is not None else EXAMPLES
        proj = options.tak_proj_scale if options.tak_proj_scale is not None else PROJ_SCALE
        full = options.tak_full_scale if options.tak_full_scale is not None else FULL_SCALE
        for value, name in ((beta, "tak_beta"), (proj, "tak_proj_scale"), (full, "tak_full_scale")):
            finite(value, name)
        need(examples >= 1, f"--tak-examples must be >= 1, got {examples}")
        return TakSettings(float(beta), int(examples), float(proj), float(full), other_tasks(options.tak_tasks, ctx, "--tak-tasks"))

    def data_tasks(self, settings: TakSettings) -> tuple[str, ...]:
        return settings.tak_tasks

    def setup_cost(self, settings: TakSettings) -> StepCost:
        return StepCost(plain=settings.tak_examples * len(settings.tak_tasks))  # one forward + backward per factor input

    def build(self, settings: TakSettings, setup: PenaltySetup) -> Penalty:
        theta0 = _theta0_module(setup)
        per_task = [cached_factors(setup, task, ds, settings.tak_examples, theta0) for task, ds in zip(settings.tak_tasks, setup.datasets)]
        sizes = [float(len(cast(Sized, ds))) for ds in setup.datasets]
        weights = [n / sum(sizes) for n in sizes]  # lambda_s, proportional to each task's data
        if setup.variant == "merged":
            per_task, weights = [merge(per_task, weights)], [1.0]
        return TakPenalty(settings, dict(setup.theta0), per_task, weights)


def _theta0_module(setup: PenaltySetup) -> nn.Module:
    """A copy of the encoder at theta_0 to probe (the trainee's own weights move)."""
    import copy

    module = copy.deepcopy(setup.trainee.visual)
    module.load_state_dict({**module.state_dict(), **setup.theta0})
    return module.requires_grad_(False)


PLUGINS = (Tak(),)
