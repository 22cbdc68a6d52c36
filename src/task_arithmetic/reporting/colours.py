"""One colour per recipe in every figure: assigned from the recipe registry's order, so standard,
linear, tau-Jp, ... keep their colour across the report's plots, across reports and after a
recipe is added (a new one takes the next colour; the earlier ones keep theirs)."""

from __future__ import annotations

from ..recipes.registry import RECIPES, recipe_of
from .table import RunResults

# matplotlib's tab20 with the paired light shades last: 20 distinguishable colours
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
)
ZERO_SHOT = "#404040"  # theta_0, not a recipe
UNKNOWN = "#a0a0a0"  # a results folder this version cannot name


def recipe_colour(run: RunResults) -> str:
    """The colour of the run's recipe (a tagged or swept run takes its recipe's)."""
    if run.evaluated is None:
        return UNKNOWN
    recipe = recipe_of(run.evaluated)
    if recipe is None:
        return UNKNOWN
    return PALETTE[list(RECIPES).index(recipe.name) % len(PALETTE)]
