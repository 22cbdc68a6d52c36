"""The one registry of fine-tuning plug-ins and, through them, of the study's recipes.

Adding a recipe is one plug-in module in this folder and one line in PLUGIN_MODULES: each module
lists its plug-ins in a module-level `PLUGINS` tuple, and each plug-in brings its study recipes
(`Plugin.recipes()`). Training (src/finetune.py), every script's run flags, the evaluations, the
model pools, the study, its cost plan, the Slurm graph, the report and the claims read the tables
below. The order of PLUGIN_MODULES is the order of --help, of the study and of the report's rows.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import UserError
from . import identity
from .base import Mode, Plugin, Regularizer
from .identity import Group, Recipe, try_parse

PLUGIN_MODULES: tuple[str, ...] = (
    "basic",
    "tau_jp",
    "l2_sp",
    "attn_only",
    "talos",
    "tak",
    "diag_ggn",
    "orthoreg",
)

NO_REGULARIZER = "none"  # the regulariser that adds nothing (`--reg none`)


def _load() -> tuple[Plugin[Any, Any], ...]:
    plugins: list[Plugin[Any, Any]] = []
    for module in PLUGIN_MODULES:
        plugins += importlib.import_module(f"{__package__}.{module}").PLUGINS
    return tuple(plugins)


PLUGINS: tuple[Plugin[Any, Any], ...] = _load()
MODES: dict[str, Mode[Any, Any]] = {p.name: p for p in PLUGINS if isinstance(p, Mode)}
REGULARIZERS: dict[str, Regularizer[Any, Any]] = {p.name: p for p in PLUGINS if isinstance(p, Regularizer)}
identity.bind(identity.Names(MODES, REGULARIZERS, NO_REGULARIZER))  # before any recipe builds a RunId
RECIPES: dict[str, Recipe] = {r.name: r for p in PLUGINS for r in p.recipes()}


def default_mode_name() -> str:
    """The first registered mode: plain fine-tuning, which post-hoc linearisation reads by default."""
    return next(iter(MODES))


def all_variants() -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for r in REGULARIZERS.values() for v in r.variants))


def recipe(text: str) -> Recipe:
    """A study recipe by name; `name@tag` for the recipe on tagged (e.g. imported) runs, which the
    study reads but never trains; `name~option=value` for a point of a sweep of one of its plug-ins'
    options (runs of its own); or any run or results folder name (e.g. linear-tau_jp_strict,
    posthoc-l2_sp), which the study trains (unless post hoc, which reads the run it linearises)."""
    base, tilde, point = text.partition("~")
    if tilde:
        option, _, value = point.partition("=")
        try:
            number = float(value)
        except ValueError:
            raise UserError(f"recipe '{text}': a sweep point is <recipe>~<option>=<number>, got '{point}'") from None
        return recipe(base).swept(option, number)
    name, at, tag = text.partition("@")
    if name not in RECIPES and not at:
        evaluated = try_parse(name)
        if evaluated is not None:  # the registered recipe of that run if there is one (its study options too)
            known = next((r for r in RECIPES.values() if r.evaluated == evaluated), None)
            return known or Recipe(name, evaluated.run, evaluated.readout, Group.EXPERIMENT, evaluated.describe())
    if name not in RECIPES:
        raise UserError(f"unknown recipe '{text}'; valid: {', '.join(RECIPES)} (each optionally @<tag> for tagged, e.g. imported, runs), "
                        "or a run name such as linear-tau_jp_strict")
    if at and not tag:
        raise UserError(f"recipe '{text}' has an empty tag; write {name}@<tag>")
    return RECIPES[name].tagged(tag) if at else RECIPES[name]


def recipes_in(*groups: Group) -> tuple[str, ...]:
    """The recipes of these groups, in registry order."""
    return tuple(name for name, r in RECIPES.items() if r.group in groups)


def recipe_of(evaluated: Any) -> Recipe | None:
    """The registered (untagged) recipe that evaluates runs this way, if any (for reports)."""
    untagged = type(evaluated)(evaluated.run.untagged(), evaluated.readout)
    return next((r for r in RECIPES.values() if r.evaluated == untagged), None)
