"""The tau-Jp matrix: M[i][j] = mean over x in dataset j of ||J_theta0 f(x) . tau_i||_2.

f is the image embedding before normalisation. Off-diagonal entries measure how much task
vector i moves the features of task j's inputs, the seed paper's interference indicator.
"""

from __future__ import annotations

import argparse
from typing import Any, Sequence

from ..data.registry import get_task
from ..reporting.table import RunResults, Table, describe
from .data import EVAL_SPLITS
from .session import EvalSession, default_control
from .spec import Evaluation


def evaluate_tau_jp(session: EvalSession, datasets: Sequence[str] | None = None, split: str = "test") -> dict[str, Any]:
    datasets = list(datasets) if datasets is not None else list(session.tasks)
    matrix = [[session.tangent_norm_mean(vector, dataset, split) for dataset in datasets] for vector in session.tasks]
    off_diagonal = [matrix[i][j] for i, v in enumerate(session.tasks) for j, d in enumerate(datasets) if d != v and d in session.tasks]
    diagonal = [matrix[i][datasets.index(v)] for i, v in enumerate(session.tasks) if v in datasets]
    return {
        "split": split,
        "vectors": list(session.tasks),
        "datasets": datasets,
        "matrix": matrix,
        "diagonal_mean": sum(diagonal) / len(diagonal) if diagonal else None,
        "off_diagonal_mean": sum(off_diagonal) / len(off_diagonal) if off_diagonal else None,
    }


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--split", choices=EVAL_SPLITS, default="test")
    p.add_argument("--control", default=None, help="extra dataset column (default: the benchmark's control task, if any)")


def _run(session: EvalSession, args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    control = args.control or default_control(session.tasks)
    datasets = list(session.tasks) + ([get_task(control).name] if control else [])
    return evaluate_tau_jp(session, datasets, args.split), {"split": args.split, "datasets": datasets}


def _headline(results: dict[str, Any]) -> str:
    return f"diagonal mean {results['diagonal_mean']:.4g}, off-diagonal mean {results['off_diagonal_mean'] or 0:.4g}"


def report(runs: dict[str, RunResults]) -> list[Table]:
    """One matrix per run: the runs may have different vectors and datasets."""
    tables = []
    for name, run in runs.items():
        result = run.results("tau_jp")
        if not result:
            continue
        table = Table(f"tau_jp_{name}", f"τJp matrix of {describe(name)}: mean ‖J f(x_j)·τ_i‖ on {result['split']} (rows τ_i, columns x_j)",
                      ["vector", *result["datasets"]], float_format="{:.4g}")
        for vector, values in zip(result["vectors"], result["matrix"]):
            table.rows.append([vector, *[round(v, 6) for v in values]])
        tables.append(table)
    return tables


EVALUATION = Evaluation(
    "tau_jp", "the tau-Jp matrix: mean ||J_theta0 f(x_j) . tau_i|| for every task vector i and dataset j",
    run=_run, headline=_headline, add_arguments=_add_arguments, report=report,
)
