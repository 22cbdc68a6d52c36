"""An edit of theta_0: a weighted sum of groups of task vectors.

theta = theta_0 + sum_k coef_k * (sum of tau_t for t in group_k). Grouping matters for direct
evaluation only: a group (e.g. all tasks for addition) is summed once and kept in memory, so a
sweep over coefficients never goes back to disk. The cached path only needs per-task weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

Group = tuple[str, ...]


@dataclass(frozen=True)
class Edit:
    terms: tuple[tuple[Group, float], ...] = ()

    @classmethod
    def zeroshot(cls) -> "Edit":
        return cls(())

    @classmethod
    def scaled(cls, tasks: Iterable[str], coef: float) -> "Edit":
        """coef * (sum of the tasks' vectors): one term, summed once by direct evaluation."""
        group = tuple(sorted(tasks))
        return cls(((group, float(coef)),)) if coef != 0 and group else cls(())

    @classmethod
    def per_task_coefs(cls, coefs: Mapping[str, float]) -> "Edit":
        return cls(tuple(((task,), float(c)) for task, c in sorted(coefs.items()) if c != 0))

    def __add__(self, other: "Edit") -> "Edit":
        return Edit(self.terms + other.terms)

    def per_task(self) -> dict[str, float]:
        coefs: dict[str, float] = {}
        for group, coef in self.terms:
            for task in group:
                coefs[task] = coefs.get(task, 0.0) + coef
        return {t: c for t, c in coefs.items() if c != 0}

    def tasks(self) -> set[str]:
        return {t for group, _ in self.terms for t in group}

    def key(self) -> tuple[tuple[str, float], ...]:
        """Equal for edits that give the same weights (memoisation key)."""
        return tuple(sorted((t, round(c, 12)) for t, c in self.per_task().items()))

    def describe(self) -> str:
        if not self.terms:
            return "theta_0"
        return " + ".join(f"{c:g}*({'+'.join(g)})" for g, c in self.terms)
