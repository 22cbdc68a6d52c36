"""Incremental task addition: tasks arrive in the study's order; after every stage k, the k task
vectors learned so far are added (theta_0 + alpha * sum_{t <= k} tau_t), alpha chosen on the Val
parts of those k tasks as task addition chooses it, and at alpha = 1. The curve of normalised
accuracy against k is the paper's incremental-learning experiment, for any recipe: incremental
tau-Jp (recipe tau_jp_continual, whose task k knew only tasks 1..k-1 and the control set) beside
the recipes that knew every task (reporting/analyses/incremental.py draws and checks it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Mapping

from ..reporting.table import RunResults, Table, pct_cell
from .addition import Chosen, chosen_rows, sweep
from .selection import alpha_grid
from .spec import Evaluation, Row, alpha_step_param, pct

if TYPE_CHECKING:  # the session imports torch: the registry is read by every script's --help
    from .session import EvalSession


@dataclass(frozen=True)
class IncrementalParams:
    alpha_step: float = alpha_step_param()


@dataclass(frozen=True)
class Stage:
    k: int
    tasks: list[str]  # the first k tasks of the order
    tuned: Chosen
    one_shot: Chosen


@dataclass(frozen=True)
class IncrementalResult:
    SCHEMA: ClassVar[int] = 1
    order: list[str]
    alphas: list[float]
    stages: list[Stage]


def evaluate_incremental(session: EvalSession, alphas: tuple[float, ...]) -> IncrementalResult:
    stages = []
    for k in range(1, len(session.tasks) + 1):
        tasks = list(session.tasks[:k])
        result = sweep(session, tasks, alphas)
        stages.append(Stage(k, tasks, result.tuned, result.one_shot))
    return IncrementalResult(list(session.tasks), list(alphas), stages)


def _headline(r: IncrementalResult) -> str:
    return "; ".join(f"k={s.k}: {pct(s.tuned.test.avg_normalized)}" for s in r.stages)


def report(runs: Mapping[str, RunResults]) -> list[Table]:
    found = {name: r for name, run in runs.items() if (r := run.get(EVALUATION)) is not None}
    if not found:
        return []
    stages = max(len(r.stages) for r in found.values())
    table = Table("incremental", "Incremental addition: normalised test accuracy % after each stage k (tuned α / α = 1)",
                  ["method", *[f"k={k}" for k in range(1, stages + 1)]])
    for name, result in found.items():
        cells: list[object] = [runs[name].label]
        for s in result.stages:
            tuned, one_shot = pct_cell(s.tuned.test.avg_normalized), pct_cell(s.one_shot.test.avg_normalized)
            cells.append(f"{'–' if tuned is None else f'{tuned:.1f}'} / {'–' if one_shot is None else f'{one_shot:.1f}'}")
        table.rows.append(cells)
    return [table]


def rows(r: IncrementalResult) -> list[Row]:
    return [row for s in r.stages for row in chosen_rows(s.tuned, f"k={s.k} tuned") + chosen_rows(s.one_shot, f"k={s.k} one_shot")]


EVALUATION: Evaluation[IncrementalParams, IncrementalResult] = Evaluation(
    "incremental", "add the first k task vectors of the task order, for every k (alpha chosen on Val, and alpha = 1)",
    IncrementalParams, IncrementalResult, run=lambda session, params: evaluate_incremental(session, alpha_grid(params.alpha_step)),
    headline=_headline, report=report, min_tasks=2, rows=rows,
)
