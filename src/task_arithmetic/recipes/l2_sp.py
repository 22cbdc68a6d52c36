"""L2 towards the pre-trained weights ("L2-SP", Li et al., ICML 2018): coef * ||theta - theta_0||^2.

The control experiment for tau-Jp: does tau-Jp do more than keep the task vector small?

Matched strength (`--l2-match RUN`, e.g. `--l2-match linear-tau_jp`): the coefficient is chosen
during training so that ||tau|| ends where the finished run RUN of the same model and task ended.
After every optimiser step the coefficient is multiplied by exp(gain * (||tau|| / target - 1)):
it shrinks while tau is shorter than the target and grows once tau overshoots, so the norm
settles at the target as the learning rate decays. Its value is part of the resumable state; the
final coefficient and the reached ||tau|| / target are recorded in the run's metadata. Without
--l2-match the coefficient is fixed at --l2-coef.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from ..lazy import torch  # imported on first use: every script's parser reads the plug-ins
from .base import Context, Penalty, PenaltyInputs, PenaltySetup, PenaltyTerm, Readout, Regularizer, Settings, finite, metric, need, option
from .basic import Linear, Standard
from .identity import Group, Recipe, RecipeContext, RunId, try_parse
from .tau_jp import TauJp

DEFAULT_COEF = 0.1  # our choice (the same starting value as tau-Jp's coefficient); no CLIP default exists
DEFAULT_GAIN = 0.05  # per optimiser step
LOG_COEF_RANGE = 20.0  # the adapted coefficient stays within exp(+-20) of the starting one


@dataclass(frozen=True)
class L2SPOptions:
    l2_coef: float | None = option("coefficient of ||theta - theta_0||^2 (default 0.1; the starting value with --l2-match)")
    l2_match: str | None = option("adapt the coefficient so ||tau|| matches this finished run's (e.g. linear-tau_jp)", str)
    l2_match_gain: float | None = option("per-step gain of the matching controller (default 0.05)")


@dataclass(frozen=True)
class L2SPSettings(Settings):
    l2_coef: float
    l2_match: str | None  # None: fixed coefficient
    l2_match_gain: float


class L2SPPenalty(Penalty):
    metrics = ("tau_norm",)

    def __init__(self, coef: float, params0: dict[str, torch.Tensor], target: float | None, gain: float):
        self.start, self.coef, self.params0, self.target, self.gain = coef, coef, params0, target, gain
        self.last_norm = 0.0

    def term(self, trainee: Any, tangent: torch.Tensor | None, inputs: PenaltyInputs | None, world: int) -> PenaltyTerm:
        squares = [((p - self.params0[n]) ** 2).sum() for n, p in trainee.visual.named_parameters() if p.requires_grad]
        sq = torch.stack(squares).sum()
        # Every process holds the same theta and adds the whole term: averaging gradients over
        # processes then leaves it unscaled.
        return PenaltyTerm(self.coef * sq, {"tau_norm": metric(sq.detach().sqrt())})

    def record(self, means: dict[str, float]) -> dict[str, float]:
        norm = means["tau_norm"]
        out = {"tau_norm": norm, "l2_coef": self.coef, "penalty": self.coef * norm**2}
        if self.target is not None:
            out["tau_norm_target"] = self.target
        return out

    def after_step(self, means: dict[str, float]) -> None:
        self.last_norm = means["tau_norm"]
        if self.target is None:
            return
        log_coef = math.log(self.coef) + self.gain * (self.last_norm / self.target - 1.0)
        low, high = math.log(self.start) - LOG_COEF_RANGE, math.log(self.start) + LOG_COEF_RANGE
        self.coef = math.exp(min(max(log_coef, low), high))

    def state(self) -> dict[str, float]:
        return {"l2_coef": self.coef, "tau_norm": self.last_norm}

    def load_state(self, state: dict[str, float]) -> None:
        self.coef, self.last_norm = float(state["l2_coef"]), float(state["tau_norm"])

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"l2_coef_final": self.coef, "tau_norm_final": self.last_norm}
        if self.target is not None:
            out.update(tau_norm_target=self.target, tau_norm_ratio=self.last_norm / self.target)
        return out


class L2SP(Regularizer[L2SPOptions, L2SPSettings]):
    name = "l2_sp"
    summary = "L2 to θ0"
    options = L2SPOptions
    default_mode = "standard"
    needs_theta0 = True

    def recipes(self) -> tuple[Recipe, ...]:
        # the control for "is tau-Jp more than keeping tau small": ||tau|| matched to tau-Jp's runs
        return (Recipe("l2_sp", RunId(Standard(), self), Readout.NONLINEAR, Group.FIELD, "L2 to θ0, ‖τ‖ matched to τJp's",
                       study_options=_match_tau_jp, requires=(RunId(Linear(), TauJp()),)),)

    def resolve(self, options: L2SPOptions, ctx: Context) -> L2SPSettings:
        coef = options.l2_coef if options.l2_coef is not None else ctx.default("l2_coef", DEFAULT_COEF)
        gain = options.l2_match_gain if options.l2_match_gain is not None else DEFAULT_GAIN
        finite(coef, "l2_coef")
        finite(gain, "l2_match_gain")
        if options.l2_match is not None:
            matched = try_parse(options.l2_match)
            need(matched is not None and not matched.posthoc, f"--l2-match '{options.l2_match}' must be a run folder name such as linear-tau_jp")
            need(coef > 0, "--l2-match adapts the coefficient multiplicatively, so --l2-coef must be > 0")
        elif options.l2_match_gain is not None:
            need(False, "--l2-match-gain only applies with --l2-match RUN; add --l2-match or drop --l2-match-gain")
        return L2SPSettings(l2_coef=float(coef), l2_match=options.l2_match, l2_match_gain=float(gain))

    def references(self, settings: L2SPSettings) -> tuple[RunId, ...]:
        return (RunId.parse(settings.l2_match),) if settings.l2_match else ()

    def build(self, settings: L2SPSettings, setup: PenaltySetup) -> Penalty:
        params0 = dict(setup.theta0)
        target = None
        if settings.l2_match:
            target = setup.references[RunId.parse(settings.l2_match)].norm()
            need(target > 0, f"the run {settings.l2_match} has a zero task vector; there is no norm to match")
        return L2SPPenalty(settings.l2_coef, params0, target, settings.l2_match_gain)


def _match_tau_jp(ctx: RecipeContext) -> Mapping[str, Any]:
    return {"l2_match": RunId(Linear(), TauJp()).name}


PLUGINS = (L2SP(),)
