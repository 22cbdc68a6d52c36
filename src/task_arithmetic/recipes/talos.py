"""TaLoS: task-localised sparse fine-tuning ("Efficient Model Editing with Task-Localized Sparse
Fine-tuning", Iurada et al., ICLR 2025).

Before training, at theta_0, every weight entry gets a sensitivity score on the task's own data:
the diagonal of the empirical Fisher information, the mean over calibration batches of the
squared gradient of the task's cross-entropy. Only the fraction `--talos-keep` of entries with the
LOWEST scores (one global ranking over the encoder) is fine-tuned, with standard (non-linear)
fine-tuning; the rest stays exactly at theta_0. Entries that barely move the task's loss at
theta_0 are those whose change least alters the function elsewhere, which is what keeps the task
vectors from interfering.

Our choices, from the paper's description (not its code): the empirical Fisher with the true
labels; one calibration round over `--talos-batches` batches of the run's batch size, drawn from
the train split with a fixed seed (every process scores the same batches, so every process holds
the same mask); ties at the threshold are broken by position (exactly `keep` of the entries
train). Masked entries get zero gradient before clipping, and are reset to theta_0 after each
AdamW step so decoupled weight decay cannot move them either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..lazy import F, torch  # imported on first use: every script's parser reads the plug-ins
from .base import CalibrationBatches, Context, Mode, Readout, Settings, UpdateRule, need, option
from .basic import NoRegularizer
from .identity import Group, Recipe, RunId

DEFAULT_KEEP = 0.1  # our choice: the paper trains a small fraction of the weights (check its table)
DEFAULT_BATCHES = 8


@dataclass(frozen=True)
class TalosOptions:
    talos_keep: float | None = option("fraction of weight entries that train, lowest sensitivity first (default 0.1)")
    talos_batches: int | None = option("calibration batches for the sensitivity scores (default 8)", int)


@dataclass(frozen=True)
class TalosSettings(Settings):
    talos_keep: float
    talos_batches: int


def sensitivity(trainee: Any, batches: CalibrationBatches, n: int) -> dict[str, torch.Tensor]:
    """Mean squared gradient of the task's loss per weight entry (diagonal empirical Fisher)."""
    params = {name: p for name, p in trainee.visual.named_parameters() if p.requires_grad}
    scores = {name: torch.zeros_like(p) for name, p in params.items()}
    seen = 0
    for images, labels in batches(n):
        images, labels = images.to(trainee.device), torch.as_tensor(labels).to(trainee.device)
        # per-example squared gradients would cost a backward each; the batch gradient's square
        # is the usual, cheaper estimate of the same diagonal
        grads = torch.autograd.grad(F.cross_entropy(trainee.head(trainee.visual(images)), labels), list(params.values()))
        for name, g in zip(params, grads):
            scores[name] += g.detach() ** 2
        seen += 1
    return {name: s / max(seen, 1) for name, s in scores.items()}


def lowest_mask(scores: dict[str, torch.Tensor], keep: float) -> dict[str, torch.Tensor]:
    """True for the `keep` fraction of entries with the lowest score, over all tensors at once."""
    flat = torch.cat([s.flatten() for s in scores.values()])
    k = max(1, int(round(keep * flat.numel())))
    chosen = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    chosen[torch.argsort(flat, stable=True)[:k]] = True
    masks, offset = {}, 0
    for name, s in scores.items():
        masks[name] = chosen[offset : offset + s.numel()].view_as(s)
        offset += s.numel()
    return masks


class SparseUpdates(UpdateRule):
    """Keeps every entry outside the mask at theta_0."""

    def __init__(self, trainee: Any, masks: dict[str, torch.Tensor]):
        named = dict(trainee.visual.named_parameters())
        self.items = [(named[n], m, named[n].detach().clone()) for n, m in masks.items() if not bool(m.all())]
        for name, mask in masks.items():
            if not bool(mask.any()):
                named[name].requires_grad_(False)  # nothing of it trains: AdamW need not see it
        self.kept, self.total = int(sum(int(m.sum()) for m in masks.values())), int(sum(m.numel() for m in masks.values()))

    def after_backward(self) -> None:
        for p, mask, _ in self.items:
            if p.grad is not None:
                p.grad.mul_(mask)

    def after_step(self) -> None:
        with torch.no_grad():
            for p, mask, p0 in self.items:
                p.copy_(torch.where(mask, p, p0))

    def summary(self) -> dict[str, Any]:
        return {"trainable_entries": self.kept, "total_entries": self.total}


class Talos(Mode[TalosOptions, TalosSettings]):
    name = "talos"
    summary = "TaLoS sparse FT"
    options = TalosOptions

    def recipes(self) -> tuple[Recipe, ...]:
        return (Recipe("talos", RunId(self, NoRegularizer()), Readout.NONLINEAR, Group.FIELD, "TaLoS sparse FT (10 % of the weights)"),)

    def resolve(self, options: TalosOptions, ctx: Context) -> TalosSettings:
        keep = options.talos_keep if options.talos_keep is not None else ctx.default("talos_keep", DEFAULT_KEEP)
        batches = options.talos_batches if options.talos_batches is not None else DEFAULT_BATCHES
        need(0 < keep <= 1, f"--talos-keep must be a fraction in (0, 1], got {keep}")
        need(batches >= 1, f"--talos-batches must be >= 1, got {batches}")
        return TalosSettings(talos_keep=float(keep), talos_batches=int(batches))

    def prepare(self, trainee: Any, settings: TalosSettings, calibration: CalibrationBatches) -> UpdateRule:
        was_training = trainee.visual.training
        trainee.visual.eval()  # scores of theta_0 as a function, not of one dropout draw
        scores = sensitivity(trainee, calibration, settings.talos_batches)
        trainee.visual.train(was_training)
        return SparseUpdates(trainee, lowest_mask(scores, settings.talos_keep))


PLUGINS = (Talos(),)
