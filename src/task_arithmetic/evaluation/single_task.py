"""Zero-shot and single-task fine-tuned accuracy on each task's Val held-out part and test set."""

from __future__ import annotations

from typing import Any

from ..reporting.table import RunResults, Table, describe, pct_cell, task_columns, with_results
from .data import EVAL_SPLITS
from .edits import Edit
from .session import EvalSession
from .spec import Evaluation, pct


def evaluate_single_task(session: EvalSession) -> dict[str, Any]:
    zeroshot: dict[str, dict] = {}
    finetuned: dict[str, dict] = {}
    session.prefetch(
        [(Edit.zeroshot(), t, split) for t in session.tasks for split in EVAL_SPLITS]
        + [(Edit.scaled([t], 1.0), t, split) for t in session.tasks for split in EVAL_SPLITS]
    )
    for task in session.tasks:
        zeroshot[task] = {split: session.metrics(Edit.zeroshot(), task, split) for split in EVAL_SPLITS}
        finetuned[task] = {split: session.metrics(Edit.scaled([task], 1.0), task, split) for split in EVAL_SPLITS}
    summary = {
        f"{which}_{split}_avg": sum(table[t][split]["accuracy"] for t in session.tasks) / len(session.tasks)
        for which, table in (("zeroshot", zeroshot), ("finetuned", finetuned))
        for split in EVAL_SPLITS
    }
    return {"zeroshot": zeroshot, "finetuned": finetuned, "summary": summary, "relative_norm": session.relative_norms()}


def _headline(results: dict[str, Any]) -> str:
    s = results["summary"]
    return f"zero-shot test {pct(s['zeroshot_test_avg'])}, fine-tuned test {pct(s['finetuned_test_avg'])}"


def report(runs: dict[str, RunResults]) -> list[Table]:
    with_single = with_results(runs, "single_task")
    if not with_single:
        return []
    tasks = task_columns(with_single, "single_task")
    table = Table("single_task", "Single-task accuracy (test %)", ["model", "avg", *tasks])

    def row(label: str, per_task: dict) -> list[Any]:
        values = [per_task[t]["test"]["accuracy"] if t in per_task else None for t in tasks]
        present = [v for v in values if v is not None]
        return [label, pct_cell(sum(present) / len(present)) if present else None, *[pct_cell(v) for v in values]]

    table.rows.append(row("zero-shot", next(iter(with_single.values())).results("single_task")["zeroshot"]))
    for name, run in with_single.items():
        table.rows.append(row(f"{describe(name)} fine-tuned", run.results("single_task")["finetuned"]))
    norms = Table("task_vector_norms", "Task-vector size: ‖τ‖ / ‖θ0‖ (%)", ["model", "min", "max", *tasks])
    for name, run in with_single.items():
        relative = run.results("single_task").get("relative_norm")  # absent from results of older versions
        if relative:
            present = [relative[t] for t in tasks if t in relative]
            norms.rows.append([describe(name), pct_cell(min(present)), pct_cell(max(present)), *[pct_cell(relative.get(t)) for t in tasks]])
    return [table, norms] if norms.rows else [table]


EVALUATION = Evaluation(
    "single_task", "zero-shot and fine-tuned accuracy on each task's Val part and test set",
    run=lambda session, args: (evaluate_single_task(session), {}), headline=_headline, report=report,
)
