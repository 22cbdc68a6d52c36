"""The tau-Jp matrix: M[i][j] = mean over x in dataset j of ||J_theta0 f(x) . tau_i||_2.

f is the image embedding before normalisation. Off-diagonal entries measure how much task
vector i moves the features of task j's inputs, the seed paper's interference indicator.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Mapping, Sequence

from ..data.registry import control_for, get_task
from ..reporting.table import RunResults, Table
from .data import EVAL_SPLITS
from .spec import Evaluation, Row, param

if TYPE_CHECKING:  # the session imports torch: the registry is read by every script's --help
    from .session import EvalSession


@dataclass(frozen=True)
class TauJpParams:
    split: str = param("test", "which split's inputs x_j", choices=EVAL_SPLITS)
    control: str | None = param(None, "extra dataset column (default: the benchmark's control task, if any)", study=True)


@dataclass(frozen=True)
class TauJpResult:
    SCHEMA: ClassVar[int] = 2
    split: str
    vectors: list[str]  # rows: task vectors tau_i
    datasets: list[str]  # columns: datasets x_j (the tasks, then the control)
    matrix: list[list[float]]
    diagonal_mean: float | None
    off_diagonal_mean: float | None  # over the tasks' own datasets (the control column aside)

    def entry(self, vector: str, dataset: str) -> float:
        return self.matrix[self.vectors.index(vector)][self.datasets.index(dataset)]


def evaluate_tau_jp(session: EvalSession, datasets: Sequence[str] | None = None, split: str = "test") -> TauJpResult:
    datasets = list(datasets) if datasets is not None else list(session.tasks)
    matrix = [[session.tangent_norm_mean(vector, dataset, split) for dataset in datasets] for vector in session.tasks]
    off_diagonal = [matrix[i][j] for i, v in enumerate(session.tasks) for j, d in enumerate(datasets) if d != v and d in session.tasks]
    diagonal = [matrix[i][datasets.index(v)] for i, v in enumerate(session.tasks) if v in datasets]
    return TauJpResult(
        split, list(session.tasks), datasets, matrix,
        sum(diagonal) / len(diagonal) if diagonal else None,
        sum(off_diagonal) / len(off_diagonal) if off_diagonal else None,
    )


def _resolve(params: TauJpParams, tasks: Sequence[str]) -> TauJpParams:
    control = params.control or control_for(tasks)
    return dataclasses.replace(params, control=get_task(control).name if control else None)


def _run(session: EvalSession, params: TauJpParams) -> TauJpResult:
    extra = [params.control] if params.control else []
    return evaluate_tau_jp(session, list(session.tasks) + [d for d in extra if d not in session.tasks], params.split)


def _headline(r: TauJpResult) -> str:
    return f"diagonal mean {r.diagonal_mean or 0:.4g}, off-diagonal mean {r.off_diagonal_mean or 0:.4g}"


def report(runs: Mapping[str, RunResults]) -> list[Table]:
    """One matrix per run: the runs may have different vectors and datasets."""
    tables = []
    for name, run in runs.items():
        result = run.get(EVALUATION)
        if result is None:
            continue
        table = Table(f"tau_jp_{name}", f"τJp matrix of {run.label}: mean ‖J f(x_j)·τ_i‖ on {result.split} (rows τ_i, columns x_j)",
                      ["vector", *result.datasets], float_format="{:.4g}")
        for vector, values in zip(result.vectors, result.matrix):
            table.rows.append([vector, *[round(v, 6) for v in values]])
        tables.append(table)
    return tables


def rows(r: TauJpResult) -> list[Row]:
    """Entry (i, j) as metric tau_jp on task j (the dataset), point "tau <i>" (the task vector)."""
    out = [Row(EVALUATION.name, value, dataset, r.split, f"tau {vector}") for vector, row in zip(r.vectors, r.matrix) for dataset, value in zip(r.datasets, row)]
    for metric, value in (("tau_jp_diagonal_mean", r.diagonal_mean), ("tau_jp_off_diagonal_mean", r.off_diagonal_mean)):
        if value is not None:
            out.append(Row(metric, value, None, r.split))
    return out


EVALUATION: Evaluation[TauJpParams, TauJpResult] = Evaluation(
    "tau_jp", "the tau-Jp matrix: mean ||J_theta0 f(x_j) . tau_i|| for every task vector i and dataset j",
    TauJpParams, TauJpResult, run=_run, headline=_headline, report=report, resolve=_resolve, rows=rows,
)
