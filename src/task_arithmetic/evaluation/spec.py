"""What an evaluation declares, to be run by src/evaluate.py, the study, the results layout and
the report: its typed parameters (whose fields are its flags) and its typed result.

An evaluation is one module ending with its `EVALUATION` and one entry in registry.py. Its
parameters are a frozen dataclass whose fields, declared with `param(...)`, become its flags in
src/evaluate.py; fields marked `study=True` are also study-level settings (one flag of
src/run_study.py for every evaluation that has a field of that name, and a preset's value).
Its result is a frozen dataclass with a `SCHEMA` version, written as JSON and read back typed by
the report, the claims, the plots and the seeds summary; a file of another schema is stale.
Its numbers also become long-format rows (`rows`: one `Row` per number, with the task, split and
point of the protocol it belongs to; reporting/tidy.py adds the model, run, seed and evaluation).
An evaluation without its own `rows` gets `flat_rows`, a generic reading of its JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Generic, Iterable, Mapping, Protocol, Sequence, TypeVar

from .. import typed_json
from ..errors import UserError
from ..flags import alpha_step, finite_float, int_in

if TYPE_CHECKING:
    from ..reporting.table import RunResults, Table
    from .session import EvalSession


class Result(Protocol):
    SCHEMA: ClassVar[int]


P = TypeVar("P")
R = TypeVar("R")


def param(default: Any, help: str, parse: Callable[[str], Any] | None = None, study: bool = False, choices: tuple[str, ...] | None = None) -> Any:
    """A field of an evaluation's parameters: its default, its flag's help and parser; `study`:
    also a study-level setting (src/run_study.py --<name>, a preset's eval_params)."""
    return dataclasses.field(default=default, metadata={"help": help, "parse": parse, "study": study, "choices": choices})


def alpha_step_param() -> Any:
    """The coefficient grid's step: one study-level setting shared by every evaluation that sweeps a
    coefficient (addition, negation, pairs, incremental, merging), so it is declared once."""
    return param(0.05, "coefficient grid 0, step, ..., 1 (0.05: the paper's 21 points)", alpha_step, study=True)


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


@dataclass(frozen=True)
class Row:
    """One number of a result in long format (tidy data: one observation per row)."""

    metric: str  # what is measured: accuracy, normalized_accuracy, tau_jp, disagreement, ...
    value: float
    task: str | None = None  # the task (dataset) it is measured on; None: an average over the tasks
    split: str | None = None  # "val" or "test"; None where the number is not measured on one split
    point: str | None = None  # where in the protocol: zeroshot, finetuned, tuned, one_shot, val_curve, "A+B tuned", ...
    alpha: float | None = None  # the task-vector coefficient at that point, where there is one


SPLIT_KEYS = frozenset({"train", "val", "test"})


def flat_rows(data: Any, tasks: Iterable[str] = (), path: tuple[str, ...] = (), task: str | None = None, split: str | None = None,
              alpha: float | None = None) -> list[Row]:
    """Every number of a result's JSON (typed_json.dump) as a Row: a key naming a task fills the task,
    val/test/train the split, an `alpha` field the coefficient; the other keys make the metric's
    name (dotted). What an evaluation without its own emitter gets."""
    names = frozenset(tasks)
    rows: list[Row] = []
    if isinstance(data, bool) or data is None or isinstance(data, str):
        return rows
    if isinstance(data, (int, float)):
        return [Row(".".join(path) or "value", float(data), task, split, None, alpha)]
    if isinstance(data, list):
        for i, item in enumerate(data):
            here = item.get("alpha") if isinstance(item, dict) and isinstance(item.get("alpha"), (int, float)) else alpha
            rows += flat_rows(item, names, path if here is not alpha else (*path, str(i)), task, split, here)
        return rows
    if isinstance(data, dict):
        for key, value in data.items():
            if key in names:
                rows += flat_rows(value, names, path, key, split, alpha)
            elif key in SPLIT_KEYS:
                rows += flat_rows(value, names, path, task, key, alpha)
            elif key != "alpha":
                rows += flat_rows(value, names, (*path, key), task, split, alpha)
    return rows


@dataclass(frozen=True)
class NoParams:
    """Parameters of an evaluation that takes none."""


@dataclass(frozen=True)
class Evaluation(Generic[P, R]):
    name: str  # results/<model_id>/<run>/<name>.json
    summary: str  # one line: --help and the list of src/evaluate.py
    params: type[P]  # its parameters (a frozen dataclass of `param` fields)
    result: type[R]  # its result (a frozen dataclass with SCHEMA)
    run: Callable[["EvalSession", P], R]
    headline: Callable[[R], str]  # the numbers a user looks at first
    # its report tables from every run's results ([] where no run has them), beside the runner
    # that writes those results: the report (reporting/build.py) just iterates the registry
    report: Callable[[Mapping[str, "RunResults"]], list["Table"]] | None = None
    min_tasks: int = 1  # checked before any work
    needs_control: bool = False  # reads the benchmark's control task
    # its parameters for these tasks with every default that depends on them made explicit (the
    # control, the pairs) and every value that makes no sense refused (one UserError line):
    # what its results are keyed by, and what it runs with
    resolve: Callable[[P, Sequence[str]], P] | None = None
    # its numbers as long-format rows (None: flat_rows, a generic reading of its JSON)
    rows: Callable[[R], Iterable[Row]] | None = None

    # -- parameters ---------------------------------------------------------------------------
    def fields(self) -> tuple[dataclasses.Field[Any], ...]:
        return dataclasses.fields(self.params)  # type: ignore[arg-type]

    def study_fields(self) -> tuple[dataclasses.Field[Any], ...]:
        return tuple(f for f in self.fields() if f.metadata.get("study"))

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        if not self.fields():
            return
        group = parser.add_argument_group(f"{self.name} settings")
        for f in self.fields():
            add_param_argument(group, f)

    def params_from(self, values: Mapping[str, Any]) -> P:
        """Its parameters from values by field name (others ignored; missing ones default)."""
        return self.params(**{f.name: values[f.name] for f in self.fields() if f.name in values and values[f.name] is not None})

    def resolved(self, params: P, tasks: Sequence[str]) -> P:
        if len(tasks) < self.min_tasks:
            raise UserError(f"evaluation {self.name} needs at least {self.min_tasks} tasks; pass more tasks")
        return self.resolve(params, tasks) if self.resolve is not None else params

    # -- results ------------------------------------------------------------------------------
    def tidy(self, result: R, tasks: Iterable[str] = ()) -> list[Row]:
        """The result's numbers as rows; `tasks` (the run's tasks and control) lets the generic reading find them."""
        if self.rows is not None:
            return list(self.rows(result))
        return flat_rows(typed_json.dump(result), tasks)

    @property
    def schema(self) -> int:
        return int(getattr(self.result, "SCHEMA"))

    def load_result(self, data: Any) -> R:
        try:
            return typed_json.load(self.result, data, self.name)
        except typed_json.SchemaError as err:
            raise UserError(f"results of {self.name} do not match its schema ({err}); re-run the evaluation") from err


def add_param_argument(parser: Any, f: dataclasses.Field[Any]) -> None:
    # numbers go through the one finiteness and range check of every flag (flags.py)
    parse = f.metadata.get("parse") or {float: finite_float, int: int_in()}.get(type(f.default), str)
    shown = "" if f.default is None else f" (default {f.default})"  # a None default is explained by the help itself
    parser.add_argument(flag(f.name), dest=f.name, type=parse, default=None, choices=f.metadata.get("choices"), help=f"{f.metadata.get('help', '')}{shown}")


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"
