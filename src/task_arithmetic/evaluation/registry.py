"""The one list of evaluations: src/evaluate.py, the study, the results layout and the report
iterate over it in this order. Adding one: a module with its `EVALUATION` (which also carries its
report tables, `report`) and one entry here."""

from __future__ import annotations

from . import addition, disentanglement, merging, negation, pairs, single_task, tau_jp
from .spec import Evaluation

EVALUATIONS: dict[str, Evaluation] = {
    e.name: e
    for e in (
        single_task.EVALUATION,
        addition.EVALUATION,
        negation.EVALUATION,
        pairs.EVALUATION,
        tau_jp.EVALUATION,
        disentanglement.EVALUATION,
        merging.EVALUATION,
    )
}
