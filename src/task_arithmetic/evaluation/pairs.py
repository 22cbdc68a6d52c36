"""Addition of every pair of tasks (28 pairs for the 8-task benchmark)."""

from __future__ import annotations

import argparse
import itertools
from typing import Any, Sequence

from ..errors import UserError
from ..reporting.table import RunResults, Table, describe, pct_cell, with_results
from .addition import sweep
from .selection import ALPHA_GRID, alpha_grid, mean
from .session import EvalSession
from .spec import Evaluation, add_alpha_step, pct


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


def _run(session: EvalSession, args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    alphas = alpha_grid(args.alpha_step)
    return evaluate_pairs(session, alphas), {"alphas": list(alphas)}


def _headline(results: dict[str, Any]) -> str:
    norms = [p["tuned"]["test"]["avg_normalized"] for p in results["pairs"].values()]
    return f"{len(norms)} pairs, mean tuned normalised test accuracy {pct(mean(norms))}"


def report(runs: dict[str, RunResults]) -> list[Table]:
    with_pairs = with_results(runs, "pairs")
    if not with_pairs:
        return []
    table = Table("pairs", "Pairwise addition (mean normalised test accuracy % over pairs)",
                  ["method", "pairs", "tuned norm", "one-shot norm", "worst pair (tuned)"])
    for name, run in with_pairs.items():
        pairs = run.results("pairs")["pairs"]
        tuned = {p: v["tuned"]["test"]["avg_normalized"] for p, v in pairs.items()}
        one_shot = [v["one_shot"]["test"]["avg_normalized"] for v in pairs.values()]
        scored = [p for p in tuned if tuned[p] is not None]  # None: both fine-tuned accuracies were 0
        worst = min(scored, key=lambda p: tuned[p]) if scored else None
        table.rows.append([describe(name), len(pairs), pct_cell(mean(list(tuned.values()))), pct_cell(mean(one_shot)), "–" if worst is None else f"{worst} ({100 * tuned[worst]:.1f})"])
    return [table]


EVALUATION = Evaluation("pairs", "task addition for every pair of tasks", run=_run, headline=_headline, add_arguments=add_alpha_step, report=report)
