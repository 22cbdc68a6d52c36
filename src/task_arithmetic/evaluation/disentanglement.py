"""Weight disentanglement (Ortiz-Jimenez et al. 2023) of a task pair over an (alpha1, alpha2) grid.

xi(a1, a2) = sum over t in {1, 2} of E_{x in D_t}[ 1(pred(theta_0 + a_t tau_t; x) != pred(theta_0 + a1 tau1 + a2 tau2; x)) ]

each task's data read through its own head; 0 means adding the other vector never changes the
task's predictions (perfect disentanglement), the maximum is 2.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from .edits import Edit
from .selection import symmetric_grid
from .session import EvalSession

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
