"""The tau-Jp paper's recipes as typed values: what its claims compare (reporting/claims.py, reporting/analyses/)."""

from __future__ import annotations

from dataclasses import dataclass

from .identity import Recipe
from .registry import RECIPES


@dataclass(frozen=True)
class PaperRecipes:
    standard: Recipe  # non-linear fine-tuning
    posthoc: Recipe  # its task vectors read out linearised
    linear: Recipe  # linearised fine-tuning
    tau_jp: Recipe  # linearised fine-tuning with the tau-Jp regulariser (the paper's method)
    tau_jp_incremental: Recipe  # the same, learning the tasks in order with only the earlier ones known
    tau_jp_from: Recipe  # tau-Jp switched on from existing fine-tuned models
    tau_jp_paired: Recipe  # tau-Jp against exactly one partner task: the intervention on tau-Jp


PAPER = PaperRecipes(RECIPES["standard"], RECIPES["posthoc"], RECIPES["linear"], RECIPES["tau_jp"], RECIPES["tau_jp_continual"],
                     RECIPES["tau_jp_from"], RECIPES["tau_jp_paired"])
