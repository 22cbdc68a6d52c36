"""Addition of every pair of tasks (28 pairs for the 8-task benchmark)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Mapping, Sequence

from ..reporting.table import RunResults, Table, pct_cell
from .addition import Chosen, CurvePoint, chosen_rows, curve_rows, sweep
from .selection import ALPHA_GRID, alpha_grid, mean
from .spec import Evaluation, Row, alpha_step_param, pct

if TYPE_CHECKING:  # the session imports torch: the registry is read by every script's --help
    from .session import EvalSession


@dataclass(frozen=True)
class PairsParams:
    alpha_step: float = alpha_step_param()


@dataclass(frozen=True)
class PairResult:
    tasks: list[str]
    val_curve: list[CurvePoint]
    chosen_alpha: float
    tuned: Chosen
    one_shot: Chosen


@dataclass(frozen=True)
class PairsResult:
    SCHEMA: ClassVar[int] = 2
    alphas: list[float]
    pairs: dict[str, PairResult]  # "A+B" -> its addition


def pair_name(a: str, b: str) -> str:
    return f"{a}+{b}"


def evaluate_pairs(session: EvalSession, alphas: Sequence[float] = ALPHA_GRID) -> PairsResult:
    pairs = {}
    for a, b in itertools.combinations(session.tasks, 2):
        r = sweep(session, [a, b], alphas)
        pairs[pair_name(a, b)] = PairResult([a, b], r.val_curve, r.chosen_alpha, r.tuned, r.one_shot)
    return PairsResult(list(alphas), pairs)


def _headline(r: PairsResult) -> str:
    return f"{len(r.pairs)} pairs, mean tuned normalised test accuracy {pct(mean([p.tuned.test.avg_normalized for p in r.pairs.values()]))}"


def report(runs: Mapping[str, RunResults]) -> list[Table]:
    found = {name: r for name, run in runs.items() if (r := run.get(EVALUATION)) is not None}
    if not found:
        return []
    table = Table("pairs", "Pairwise addition (mean normalised test accuracy % over pairs)",
                  ["method", "pairs", "tuned norm", "one-shot norm", "worst pair (tuned)"])
    for name, result in found.items():
        tuned = {p: v.tuned.test.avg_normalized for p, v in result.pairs.items()}
        one_shot = [v.one_shot.test.avg_normalized for v in result.pairs.values()]
        scored = {p: v for p, v in tuned.items() if v is not None}  # None: both fine-tuned accuracies were 0
        worst = min(scored, key=lambda p: scored[p]) if scored else None
        table.rows.append([runs[name].label, len(result.pairs), pct_cell(mean(list(tuned.values()))), pct_cell(mean(one_shot)),
                           "–" if worst is None else f"{worst} ({100 * scored[worst]:.1f})"])
    return [table]


def rows(r: PairsResult) -> list[Row]:
    return [row for name, p in r.pairs.items()
            for row in curve_rows(p.val_curve, f"{name} val_curve") + chosen_rows(p.tuned, f"{name} tuned") + chosen_rows(p.one_shot, f"{name} one_shot")]


EVALUATION: Evaluation[PairsParams, PairsResult] = Evaluation(
    "pairs", "task addition for every pair of tasks", PairsParams, PairsResult,
    run=lambda session, params: evaluate_pairs(session, alpha_grid(params.alpha_step)), headline=_headline, report=report, min_tasks=2, rows=rows,
)
