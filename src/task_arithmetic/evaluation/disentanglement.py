"""Weight disentanglement (Ortiz-Jimenez et al. 2023) of a task pair over an (alpha1, alpha2) grid.

xi(a1, a2) = sum over t in {1, 2} of E_{x in D_t}[ 1(pred(theta_0 + a_t tau_t; x) != pred(theta_0 + a1 tau1 + a2 tau2; x)) ]

each task's data read through its own head; 0 means adding the other vector never changes the
task's predictions (perfect disentanglement), the maximum is 2.
"""

from __future__ import annotations

import argparse
import itertools
from typing import Any, Sequence

import torch

from ..data.registry import get_task
from ..errors import UserError
from ..flags import check_float, check_int, int_in, positive_float
from .data import EVAL_SPLITS
from .edits import Edit
from .selection import symmetric_grid
from .session import EvalSession
from .spec import Evaluation

GRID_LIMIT = 3.0
GRID_POINTS = 21


def evaluate_pair_disentanglement(session: EvalSession, pair: Sequence[str], alphas: Sequence[float], split: str) -> dict[str, Any]:
    first, second = pair
    # the single-task edits are the grid's axes (same memo keys), so this is every point needed
    session.prefetch([(Edit.per_task_coefs({first: a1, second: a2}), d, split) for a1 in alphas for a2 in alphas for d in pair])
    singles = {
        task: [session.predictions(Edit.scaled([task], a), task, split) for a in alphas] for task in (first, second)
    }
    terms = {first: [], second: []}
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
    return {"tasks": [first, second], "xi": xi, "per_task": terms}


def _disagreement(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a != b).float().mean().item()


def evaluate_disentanglement(
    session: EvalSession,
    pairs: Sequence[Sequence[str]],
    alphas: Sequence[float] = symmetric_grid(GRID_LIMIT, GRID_POINTS),
    split: str = "test",
) -> dict[str, Any]:
    return {
        "split": split,
        "alphas": list(alphas),
        "definition": "xi = sum over the two tasks of the prediction disagreement between the joint edit and the task's own edit",
        "pairs": {f"{a}+{b}": evaluate_pair_disentanglement(session, (a, b), alphas, split) for a, b in pairs},
    }


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pairs", default=None, help="pairs as A+B,C+D, or 'all' (default: the first two tasks)")
    p.add_argument("--grid-limit", type=positive_float, default=GRID_LIMIT, help="coefficients span [-limit, limit]")
    p.add_argument("--grid-points", type=int_in(2), default=GRID_POINTS, help="points per axis (>= 2)")
    p.add_argument("--split", choices=EVAL_SPLITS, default="test")


def _pairs(text: str | None, tasks: Sequence[str]) -> list[tuple[str, str]]:
    if text is None:
        if len(tasks) < 2:
            raise UserError("disentanglement needs two tasks; pass at least two in --tasks")
        return [(tasks[0], tasks[1])]
    if text == "all":
        return list(itertools.combinations(tasks, 2))
    pairs = []
    for item in text.split(","):
        names = [get_task(n.strip()).name for n in item.split("+")]
        if len(names) != 2 or any(n not in tasks for n in names):
            raise UserError(f"--pairs item '{item}' must be two of the evaluated tasks joined by '+' ({', '.join(tasks)})")
        pairs.append((names[0], names[1]))
    return pairs


def _settings(args: argparse.Namespace, tasks: Sequence[str]) -> dict[str, Any]:
    # the study sets these without the flags' types: the same checks, as one line each
    check_float("--grid-limit", args.grid_limit, 0.0, lo_open=True)
    check_int("--grid-points (the disentanglement grid's points per axis)", args.grid_points, 2)
    return {"pairs": [list(p) for p in _pairs(args.pairs, tasks)], "grid_limit": args.grid_limit, "grid_points": args.grid_points, "split": args.split}


def _run(session: EvalSession, args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    _settings(args, session.tasks)
    alphas = symmetric_grid(args.grid_limit, args.grid_points)
    pairs = _pairs(args.pairs, session.tasks)
    results = evaluate_disentanglement(session, pairs, alphas, args.split)
    return results, {"pairs": pairs, "alphas": list(alphas), "split": args.split}


def _headline(results: dict[str, Any]) -> str:
    parts = []
    for name, pair in results["pairs"].items():
        flat = [v for row in pair["xi"] for v in row]
        parts.append(f"{name}: mean xi {sum(flat) / len(flat):.3f}")
    return "; ".join(parts)


EVALUATION = Evaluation(
    "disentanglement", "prediction disagreement over an (alpha1, alpha2) grid for a task pair",
    run=_run, headline=_headline, add_arguments=_add_arguments, settings=_settings,
)
