"""The tau-Jp matrix: M[i][j] = mean over x in dataset j of ||J_theta0 f(x) . tau_i||_2.

f is the image embedding before normalisation. Off-diagonal entries measure how much task
vector i moves the features of task j's inputs, the seed paper's interference indicator.
"""

from __future__ import annotations

from typing import Any, Sequence

from .session import EvalSession


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
