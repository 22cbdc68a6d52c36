"""What an evaluation's report tables are made of: one run's typed results, a table, cell helpers.

A leaf module: the evaluation modules build their report tables from these, and collect.py
imports the evaluation registry, so nothing here may import an evaluation module at run time.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, TypeVar

from ..recipes import EvaluatedRun
from ..recipes.registry import recipe_of

if TYPE_CHECKING:
    from ..evaluation.spec import Evaluation

R = TypeVar("R")


@dataclass
class RunResults:
    """Every evaluation result of one results folder (a run as evaluated), typed."""

    name: str  # the results folder: results/<model_id>/<name>/
    evaluated: EvaluatedRun | None  # None: a folder name this version cannot parse
    results: dict[str, Any] = field(default_factory=dict)  # evaluation name -> its typed result
    payloads: dict[str, dict[str, Any]] = field(default_factory=dict)  # evaluation name -> the file's other fields (settings, params, ...)

    def get(self, evaluation: "Evaluation[Any, R]") -> R | None:
        return self.results.get(evaluation.name)

    @property
    def settings(self) -> dict[str, Any]:
        """The run-level settings the first result records (model, tasks, vectors, ...)."""
        return next((p.get("settings", {}) for p in self.payloads.values()), {})

    @property
    def label(self) -> str:
        return describe(self.name, self.evaluated)


def describe(name: str, evaluated: EvaluatedRun | None = None) -> str:
    """`<name> (<what it is>)`: the registered recipe's summary, else the plug-ins'."""
    if evaluated is None:
        return name
    recipe = recipe_of(evaluated)
    what = recipe.summary if recipe is not None else evaluated.describe()
    return f"{name} ({what})"


def pct_cell(value: float | None) -> float | None:
    """A fraction as a table cell's percentage: a number (rounded, so the CSV stays short), not
    the text of spec.pct that headlines print."""
    return None if value is None else round(100.0 * value, 2)


@dataclass
class Table:
    name: str
    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    float_format: str = "{:.1f}"  # percentages; the tau-Jp matrices use significant digits

    def markdown(self) -> str:
        def cell(v: Any) -> str:
            if v is None:
                return "–"
            if isinstance(v, float):
                return self.float_format.format(v)
            return str(v)

        lines = [f"### {self.title}", "", "| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in self.rows]
        return "\n".join(lines) + "\n"

    def csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(self.columns)
        writer.writerows([["" if v is None else v for v in row] for row in self.rows])
        return buffer.getvalue()


def task_columns(task_lists: Iterable[Iterable[str]]) -> list[str]:
    """Every task any run evaluated, first-seen order: runs may cover different task lists."""
    tasks: list[str] = []
    for listed in task_lists:
        for t in listed:
            if t not in tasks:
                tasks.append(t)
    return tasks
