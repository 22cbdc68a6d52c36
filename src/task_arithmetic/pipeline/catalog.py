"""The study's recipes and evaluations, in one place (what --recipes and --evaluations choose from).

A recipe is what an evaluation reads (a RunRecipe) and the fine-tuning it needs; `name@tag` reads
runs with that tag (e.g. `standard@public`, runs imported by src/import_checkpoints.py), which the
study never trains itself. An evaluation maps a session to (results, settings).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Callable

from ..errors import UserError
from ..evaluation.cli import build_parser
from ..evaluation.registry import EVALUATIONS as REGISTRY
from ..evaluation.session import EvalSession
from ..vectors.runs import RunRecipe


@dataclass(frozen=True)
class Recipe:
    name: str
    evaluated: RunRecipe
    training: tuple[str, str] | None  # (mode, reg) of the runs it reads, when the study makes them


_BASE_RECIPES: dict[str, tuple[RunRecipe, tuple[str, str]]] = {
    "standard": (RunRecipe("standard"), ("standard", "none")),
    "posthoc": (RunRecipe("posthoc"), ("standard", "none")),  # the standard runs, evaluated linearised
    "linear": (RunRecipe("linear"), ("linear", "none")),
    "tau_jp": (RunRecipe("linear", "tau_jp"), ("linear", "tau_jp")),
    # the recipes the field compares with tau-Jp (recipes/); l2_sp matches tau-Jp's ||tau||, so it follows it
    "l2_sp": (RunRecipe("standard", "l2_sp"), ("standard", "l2_sp")),
    "attn_only": (RunRecipe("attn_only"), ("attn_only", "none")),
    "talos": (RunRecipe("talos"), ("talos", "none")),
}
DEFAULT_RECIPES: tuple[str, ...] = ("standard", "posthoc", "linear", "tau_jp")  # the paper's, for any model
FIELD_RECIPES: tuple[str, ...] = ("l2_sp", "attn_only", "talos")
EMBEDDED_RECIPES: tuple[str, ...] = DEFAULT_RECIPES + FIELD_RECIPES  # the embedded study runs the field's beside them
# Recipe options the study sets for a (mode, reg): matched-strength L2-SP reads the tau-Jp runs.
TRAINING_OPTIONS: dict[tuple[str, str], dict[str, object]] = {("standard", "l2_sp"): {"l2_match": "linear-tau_jp"}}


def get_recipe(text: str) -> Recipe:
    name, _, tag = text.partition("@")
    if name not in _BASE_RECIPES:
        raise UserError(f"unknown recipe '{text}'; valid: {', '.join(_BASE_RECIPES)}, each optionally @<tag> for tagged (e.g. imported) runs")
    evaluated, training = _BASE_RECIPES[name]
    if not tag:
        return Recipe(name, evaluated, training)
    return Recipe(text, RunRecipe(evaluated.mode, evaluated.reg, evaluated.variant, tag), None)


@dataclass(frozen=True)
class EvalSettings:
    """The grids every evaluation of one study uses."""

    control: str | None
    alpha_step: float = 0.05  # the coefficient grid 0, step, ..., 1 (the paper's 21 points)
    disentanglement_points: int = 21  # per axis of the (alpha1, alpha2) grid
    adamerging_steps: int = 100  # Adam steps of AdaMerging in the merging x recipe evaluation

    @property
    def alphas(self) -> tuple[float, ...]:
        points = int(round(1 / self.alpha_step))
        return tuple(round(i * self.alpha_step, 4) for i in range(points + 1))


Evaluation = Callable[[EvalSession], tuple[dict, dict]]


def study_arguments(name: str, tasks: list[str], s: EvalSettings) -> argparse.Namespace:
    """The registered evaluation's flags at their defaults, with the study's grids and control
    (what the study runs it with, and what its results are keyed by)."""
    args = build_parser(name).parse_args(["--tasks", ",".join(tasks)])
    for dest, value in (
        ("alpha_step", s.alpha_step), ("grid_points", s.disentanglement_points), ("control", s.control),
        ("adamerging_steps", s.adamerging_steps),
    ):
        if hasattr(args, dest):
            setattr(args, dest, value)
    return args


def _study_runner(name: str) -> Callable[[list[str], EvalSettings], Evaluation]:
    """The registered evaluation at its defaults, with the study's grids and control."""

    def build(tasks: list[str], s: EvalSettings) -> Evaluation:
        args = study_arguments(name, tasks, s)
        return lambda session: REGISTRY[name].run(session, args)

    return build


# name -> builder(tasks, settings) -> Evaluation, from the one registry (evaluation/registry.py), in its order.
EVALUATIONS: dict[str, Callable[[list[str], EvalSettings], Evaluation]] = {name: _study_runner(name) for name in REGISTRY}
# What each evaluation needs beyond one task (checked before any work).
_MIN_TASKS = {"pairs": 2, "disentanglement": 2, "addition": 2, "merging": 2}


def check_evaluations(names: list[str], tasks: list[str], control: str | None) -> None:
    for name in names:
        if name not in EVALUATIONS:
            raise UserError(f"unknown evaluation '{name}'; valid: {', '.join(EVALUATIONS)}")
        needed = _MIN_TASKS.get(name, 1)
        if len(tasks) < needed:
            raise UserError(f"evaluation {name} needs at least {needed} task{'s' if needed > 1 else ''}; add tasks or drop it from --evaluations")
        if name == "negation" and control is None:
            raise UserError("evaluation negation needs a control task (the tasks' benchmark has none); drop it from --evaluations")
