"""Fine-tuning recipes as plug-ins, their registry, and the typed identities built from it.

A recipe is a training mode (how theta trains and is read out) plus a regulariser (a term of the
objective); see base.py for the interface, identity.py for run identities and study recipes,
registry.py for the list of plug-in modules (adding a recipe: one module here, one line there).
"""

from __future__ import annotations

from .base import Mode, Plugin, Readout, Regularizer
from .identity import EvaluatedRun, Group, Recipe, RecipeContext, RunId
from .registry import MODES, PLUGINS, RECIPES, REGULARIZERS, recipe, recipes_in

__all__ = [
    "MODES", "PLUGINS", "RECIPES", "REGULARIZERS", "EvaluatedRun", "Group", "Mode", "Plugin", "Readout", "Recipe",
    "RecipeContext", "Regularizer", "RunId", "recipe", "recipes_in",
]
