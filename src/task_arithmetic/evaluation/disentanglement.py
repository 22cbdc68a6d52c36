"""Weight disentanglement (Ortiz-Jimenez et al. 2023) of a task pair over an (alpha1, alpha2) grid.

xi(a1, a2) = sum over t in {1, 2} of E_{x in D_t}[ 1(pred(theta_0 + a_t tau_t; x) != pred(theta_0 + a1 tau1 + a2 tau2; x)) ]

each task's data read through its own head; 0 means adding the other vector never changes the
task's predictions (perfect disentanglement), the maximum is 2.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Sequence

from ..data.registry import get_task
from ..errors import UserError
from ..flags import check_float, check_int, int_in, positive_float
from ..lazy import torch  # imported on first use: the registry is read by every script's --help
from .data import EVAL_SPLITS
from .edits import Edit
from .selection import symmetric_grid
from .spec import Evaluation, Row, param

if TYPE_CHECKING:  # the session imports torch: the registry is read by every script's --help
    from .session import EvalSession

GRID_LIMIT = 3.0
GRID_POINTS = 21


@dataclass(frozen=True)
class DisentanglementParams:
    pairs: str | None = param(None, "pairs as A+B,C+D, or 'all' (default: the first two tasks)")
    grid_limit: float = param(GRID_LIMIT, "coefficients span [-limit, limit]", positive_float)
    grid_points: int = param(GRID_POINTS, "grid points per axis (>= 2: the ends -limit and limit)", int_in(2), study=True)
    split: str = param("test", "which split's predictions", choices=EVAL_SPLITS)


@dataclass(frozen=True)
class PairGrid:
    tasks: list[str]
    xi: list[list[float]]  # [i][j]: alpha1 = alphas[i], alpha2 = alphas[j]
    per_task: dict[str, list[list[float]]]  # each task's disagreement term


@dataclass(frozen=True)
class DisentanglementResult:
    SCHEMA: ClassVar[int] = 2
    split: str
    alphas: list[float]
    definition: str
    pairs: dict[str, PairGrid]


def evaluate_pair_disentanglement(session: EvalSession, pair: Sequence[str], alphas: Sequence[float], split: str) -> PairGrid:
    first, second = pair
    # the single-task edits are the grid's axes (same memo keys), so this is every point needed
    session.prefetch([(Edit.per_task_coefs({first: a1, second: a2}), d, split) for a1 in alphas for a2 in alphas for d in pair])
    singles = {task: [session.predictions(Edit.scaled([task], a), task, split) for a in alphas] for task in (first, second)}
    terms: dict[str, list[list[float]]] = {first: [], second: []}
    xi = []
    for i, a1 in enumerate(alphas):
        row = []
        for task in terms:
            terms[task].append([])
        for j, a2 in enumerate(alphas):
            both = Edit.per_task_coefs({first: a1, second: a2})
            d1 = _disagreement(session.predictions(both, first, split), singles[first][i])
            d2 = _disagreement(session.predictions(both, second, split), singles[second][j])
            terms[first][-1].append(d1)
            terms[second][-1].append(d2)
            row.append(d1 + d2)
        xi.append(row)
    return PairGrid([first, second], xi, terms)


def _disagreement(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a != b).float().mean().item()


def evaluate_disentanglement(
    session: EvalSession, pairs: Sequence[Sequence[str]], alphas: Sequence[float] = symmetric_grid(GRID_LIMIT, GRID_POINTS), split: str = "test"
) -> DisentanglementResult:
    return DisentanglementResult(
        split, list(alphas), "xi = sum over the two tasks of the prediction disagreement between the joint edit and the task's own edit",
        {f"{a}+{b}": evaluate_pair_disentanglement(session, (a, b), alphas, split) for a, b in pairs},
    )


def parse_pairs(text: str | None, tasks: Sequence[str]) -> list[tuple[str, str]]:
    if text is None:
        if len(tasks) < 2:
            raise UserError("disentanglement needs two tasks; pass at least two in --tasks")
        return [(tasks[0], tasks[1])]
    if text == "all":
        return list(itertools.combinations(tasks, 2))
    pairs = []
    for item in text.split(","):
        names = [get_task(n.strip()).name for n in item.split("+")]
        if len(names) != 2 or names[0] == names[1] or any(n not in tasks for n in names):
            raise UserError(f"--pairs item '{item}' must be two different evaluated tasks joined by '+' ({', '.join(tasks)})")
        pairs.append((names[0], names[1]))
    return pairs


def _resolve(params: DisentanglementParams, tasks: Sequence[str]) -> DisentanglementParams:
    """The pairs made explicit; the grid checked, as the study sets it without the flags' types."""
    check_float("--grid-limit", params.grid_limit, 0.0, lo_open=True)
    check_int("--grid-points (the disentanglement grid's points per axis)", params.grid_points, 2)
    pairs = ",".join(f"{a}+{b}" for a, b in parse_pairs(params.pairs, tasks))
    return dataclasses.replace(params, pairs=pairs)


def _run(session: EvalSession, params: DisentanglementParams) -> DisentanglementResult:
    alphas = symmetric_grid(params.grid_limit, params.grid_points)
    return evaluate_disentanglement(session, parse_pairs(params.pairs, session.tasks), alphas, params.split)


def _headline(r: DisentanglementResult) -> str:
    parts = []
    for name, pair in r.pairs.items():
        flat = [v for row in pair.xi for v in row]
        parts.append(f"{name}: mean xi {sum(flat) / len(flat):.3f}")
    return "; ".join(parts)


def rows(r: DisentanglementResult) -> list[Row]:
    """Each grid point (alpha1, alpha2) of each pair: xi (task None) and each task's own term."""
    out = []
    for name, grid in r.pairs.items():
        for i, a1 in enumerate(r.alphas):
            for j, a2 in enumerate(r.alphas):
                point = f"{name} ({a1:g}, {a2:g})"
                out.append(Row("disagreement", grid.xi[i][j], None, r.split, point))
                out += [Row("disagreement", terms[i][j], task, r.split, point) for task, terms in grid.per_task.items()]
    return out


EVALUATION: Evaluation[DisentanglementParams, DisentanglementResult] = Evaluation(
    "disentanglement", "prediction disagreement over an (alpha1, alpha2) grid for a task pair",
    DisentanglementParams, DisentanglementResult, run=_run, headline=_headline, min_tasks=2, resolve=_resolve, rows=rows,
)
