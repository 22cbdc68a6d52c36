"""The study's recipes and evaluations, in one place (what --recipes and --evaluations choose from).

A recipe is what an evaluation reads (a RunRecipe) and the fine-tuning it needs; `name@tag` reads
runs with that tag (e.g. `standard@public`, runs imported by src/import_checkpoints.py), which the
study never trains itself. An evaluation maps a session to (results, settings).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..errors import UserError
from ..evaluation.addition import evaluate_addition
from ..evaluation.disentanglement import GRID_LIMIT, evaluate_disentanglement
from ..evaluation.negation import evaluate_negation
from ..evaluation.pairs import evaluate_pairs
from ..evaluation.selection import symmetric_grid
from ..evaluation.session import EvalSession
from ..evaluation.single_task import evaluate_single_task
from ..evaluation.tau_jp import evaluate_tau_jp
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
}
DEFAULT_RECIPES: tuple[str, ...] = ("standard", "posthoc", "linear", "tau_jp")


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


def _single_task(tasks, s):
    return lambda session: (evaluate_single_task(session), {})


def _addition(tasks, s):
    return lambda session: (evaluate_addition(session, s.alphas), {"alphas": list(s.alphas)})


def _negation(tasks, s):
    return lambda session: (evaluate_negation(session, s.control, s.alphas), {"control": s.control, "alphas": list(s.alphas)})


def _pairs(tasks, s):
    return lambda session: (evaluate_pairs(session, s.alphas), {"alphas": list(s.alphas)})


def _tau_jp(tasks, s):
    datasets = list(tasks) + ([s.control] if s.control else [])
    return lambda session: (evaluate_tau_jp(session, datasets, "test"), {"split": "test", "datasets": datasets})


def _disentanglement(tasks, s):
    grid, pair = symmetric_grid(GRID_LIMIT, s.disentanglement_points), (tasks[0], tasks[1])
    return lambda session: (
        evaluate_disentanglement(session, [pair], grid, "test"),
        {"pairs": [pair], "alphas": list(grid), "split": "test"},
    )


def _merging(tasks, s):
    from ..evaluation.merging import session_merging

    return lambda session: session_merging(session, s.alphas, s.adamerging_steps)


# name -> builder(tasks, settings) -> Evaluation; the order is the order they run in.
EVALUATIONS: dict[str, Callable[[list[str], EvalSettings], Evaluation]] = {
    "single_task": _single_task,
    "addition": _addition,
    "negation": _negation,
    "pairs": _pairs,
    "tau_jp": _tau_jp,
    "disentanglement": _disentanglement,
    "merging": _merging,
}
# What each evaluation needs beyond one task (checked before any work).
_MIN_TASKS = {"pairs": 2, "disentanglement": 2, "addition": 2, "merging": 2}


def check_evaluations(names: list[str], tasks: list[str], control: str | None) -> None:
    for name in names:
        if name not in EVALUATIONS:
            raise UserError(f"unknown evaluation '{name}'; valid: {', '.join(EVALUATIONS)}")
        if len(tasks) < _MIN_TASKS.get(name, 1):
            raise UserError(f"evaluation {name} needs at least {_MIN_TASKS[name]} tasks; add tasks or drop it from --evaluations")
        if name == "negation" and control is None:
            raise UserError("evaluation negation needs a control task (the tasks' benchmark has none); drop it from --evaluations")
