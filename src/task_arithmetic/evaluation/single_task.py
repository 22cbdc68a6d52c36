"""Zero-shot and single-task fine-tuned accuracy on each task's Val held-out part and test set."""

from __future__ import annotations

from typing import Any

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
    return {"zeroshot": zeroshot, "finetuned": finetuned, "summary": summary}


def _headline(results: dict[str, Any]) -> str:
    s = results["summary"]
    return f"zero-shot test {pct(s['zeroshot_test_avg'])}, fine-tuned test {pct(s['finetuned_test_avg'])}"


EVALUATION = Evaluation(
    "single_task", "zero-shot and fine-tuned accuracy on each task's Val part and test set",
    run=lambda session, args: (evaluate_single_task(session), {}), headline=_headline,
)
