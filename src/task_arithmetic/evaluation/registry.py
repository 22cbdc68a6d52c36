"""The one list of evaluations: src/evaluate.py, the study, the results layout and the report
iterate over it in this order. Adding one: a module with its `EVALUATION` (its typed parameters
and result, its runner, headline and report tables) and one entry here."""

from __future__ import annotations

from typing import Any

from . import addition, disentanglement, incremental, merging, negation, pairs, single_task, tau_jp
from .spec import Evaluation

EVALUATIONS: dict[str, Evaluation[Any, Any]] = {
    e.name: e
    for e in (
        single_task.EVALUATION,
        addition.EVALUATION,
        negation.EVALUATION,
        pairs.EVALUATION,
        tau_jp.EVALUATION,
        disentanglement.EVALUATION,
        merging.EVALUATION,
        incremental.EVALUATION,
    )
}


def study_param_values(overrides: dict[str, Any]) -> dict[str, Any]:
    """Every study-level parameter (a field with study=True in some evaluation) at its default,
    then the given overrides: what one study passes to all of its evaluations."""
    values: dict[str, Any] = {}
    for evaluation in EVALUATIONS.values():
        for f in evaluation.study_fields():
            values.setdefault(f.name, f.default)
    unknown = set(overrides) - set(values)
    if unknown:
        raise ValueError(f"not study-level evaluation parameters: {sorted(unknown)}")
    return {**values, **overrides}
