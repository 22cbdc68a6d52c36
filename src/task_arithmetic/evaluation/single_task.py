"""Zero-shot and single-task fine-tuned accuracy on each task's Val held-out part and test set,
and each task vector's size relative to theta_0."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Mapping

from ..reporting.table import RunResults, Table, pct_cell, task_columns
from .accuracy import Metrics
from .data import EVAL_SPLITS
from .edits import Edit
from .spec import Evaluation, NoParams, Row, pct

if TYPE_CHECKING:  # the session imports torch: the registry is read by every script's --help
    from .session import EvalSession


@dataclass(frozen=True)
class Averages:
    zeroshot_val_avg: float
    zeroshot_test_avg: float
    finetuned_val_avg: float
    finetuned_test_avg: float


@dataclass(frozen=True)
class SingleTaskResult:
    SCHEMA: ClassVar[int] = 2
    zeroshot: dict[str, dict[str, Metrics]]  # task -> split -> metrics
    finetuned: dict[str, dict[str, Metrics]]
    summary: Averages
    relative_norm: dict[str, float]  # ||tau_t|| / ||theta_0||


def evaluate_single_task(session: EvalSession) -> SingleTaskResult:
    session.prefetch(
        [(Edit.zeroshot(), t, split) for t in session.tasks for split in EVAL_SPLITS]
        + [(Edit.scaled([t], 1.0), t, split) for t in session.tasks for split in EVAL_SPLITS]
    )
    zeroshot = {t: {split: session.metrics(Edit.zeroshot(), t, split) for split in EVAL_SPLITS} for t in session.tasks}
    finetuned = {t: {split: session.metrics(Edit.scaled([t], 1.0), t, split) for split in EVAL_SPLITS} for t in session.tasks}

    def avg(table: dict[str, dict[str, Metrics]], split: str) -> float:
        return sum(table[t][split].accuracy for t in session.tasks) / len(session.tasks)

    summary = Averages(avg(zeroshot, "val"), avg(zeroshot, "test"), avg(finetuned, "val"), avg(finetuned, "test"))
    return SingleTaskResult(zeroshot, finetuned, summary, session.relative_norms())


def _headline(r: SingleTaskResult) -> str:
    return f"zero-shot test {pct(r.summary.zeroshot_test_avg)}, fine-tuned test {pct(r.summary.finetuned_test_avg)}"


def rows(r: SingleTaskResult) -> list[Row]:
    out = [Row(metric, getattr(m, metric), t, split, point)
           for point, table in (("zeroshot", r.zeroshot), ("finetuned", r.finetuned))
           for t, splits in table.items() for split, m in splits.items() for metric in ("accuracy", "loss")]
    s = r.summary
    out += [Row("accuracy", s.zeroshot_val_avg, None, "val", "zeroshot"), Row("accuracy", s.zeroshot_test_avg, None, "test", "zeroshot"),
            Row("accuracy", s.finetuned_val_avg, None, "val", "finetuned"), Row("accuracy", s.finetuned_test_avg, None, "test", "finetuned")]
    return out + [Row("relative_norm", v, t, None, "finetuned") for t, v in r.relative_norm.items()]


def report(runs: Mapping[str, RunResults]) -> list[Table]:
    found = {name: r for name, run in runs.items() if (r := run.get(EVALUATION)) is not None}
    if not found:
        return []
    tasks = task_columns(r.finetuned for r in found.values())
    table = Table("single_task", "Single-task accuracy (test %)", ["model", "avg", *tasks])

    def row(label: str, per_task: dict[str, dict[str, Metrics]]) -> list[object]:
        values = [per_task[t]["test"].accuracy if t in per_task else None for t in tasks]
        present = [v for v in values if v is not None]
        return [label, pct_cell(sum(present) / len(present)) if present else None, *[pct_cell(v) for v in values]]

    table.rows.append(row("zero-shot", next(iter(found.values())).zeroshot))
    for name, result in found.items():
        table.rows.append(row(f"{runs[name].label} fine-tuned", result.finetuned))
    norms = Table("task_vector_norms", "Task-vector size: ‖τ‖ / ‖θ0‖ (%)", ["model", "min", "max", *tasks])
    for name, result in found.items():
        present = [result.relative_norm[t] for t in tasks if t in result.relative_norm]
        if present:
            norms.rows.append([runs[name].label, pct_cell(min(present)), pct_cell(max(present)), *[pct_cell(result.relative_norm.get(t)) for t in tasks]])
    return [table, norms] if norms.rows else [table]


EVALUATION: Evaluation[NoParams, SingleTaskResult] = Evaluation(
    "single_task", "zero-shot and fine-tuned accuracy on each task's Val part and test set",
    NoParams, SingleTaskResult, run=lambda session, params: evaluate_single_task(session), headline=_headline, report=report, rows=rows,
)
