"""The tau-Jp paper's four recipes as typed values: what its claims compare (reporting/claims.py)."""

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


PAPER = PaperRecipes(RECIPES["standard"], RECIPES["posthoc"], RECIPES["linear"], RECIPES["tau_jp"])
