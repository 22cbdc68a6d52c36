"""Addition of every pair of tasks (28 pairs for the 8-task benchmark)."""

from __future__ import annotations

import itertools
from typing import Any, Sequence

from ..errors import UserError
from .addition import sweep
from .selection import ALPHA_GRID
from .session import EvalSession


def pair_name(a: str, b: str) -> str:
    return f"{a}+{b}"


def evaluate_pairs(session: EvalSession, alphas: Sequence[float] = ALPHA_GRID) -> dict[str, Any]:
    if len(session.tasks) < 2:
        raise UserError("pairs need at least two tasks; pass two or more in --tasks")
    pairs = {}
    for a, b in itertools.combinations(session.tasks, 2):
        result = sweep(session, [a, b], alphas)
        pairs[pair_name(a, b)] = {
            "tasks": [a, b],
            "val_curve": result["val_curve"],
            "chosen_alpha": result["chosen_alpha"],
            "tuned": result["tuned"],
            "one_shot": result["one_shot"],
        }
    return {"alphas": list(alphas), "pairs": pairs}
