"""The one registry of tasks. Real datasets and the embedded benchmark's tasks register here,
so every script accepts any of them by name.

A task belongs to one home benchmark (e.g. "real8", "embedded"); each benchmark has a control
task used for negation and as extra tau-Jp penalty data. Larger suites that reuse other
benchmarks' tasks (real14 = real8 + six, real20 = real14 + six) are registered as an ordered task
list with their control (`register_benchmark`); a task keeps the smallest suite as its home.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from ..errors import UserError

if TYPE_CHECKING:  # torch is imported by the loaders, when a split is read
    from torch.utils.data import Dataset

# (data_location, split in {"train", "test"}, transform or None) -> Dataset of (image, label)
SplitLoader = Callable[[Path, str, "Callable | None"], "Dataset"]


@dataclass(frozen=True)
class TaskSpec:
    name: str
    benchmark: str
    templates: tuple[str, ...]  # format strings with one "{}" for the class name
    load_split: SplitLoader
    load_classnames: Callable[[Path], list[str]]
    expected_layout: str  # shown when the data is missing
    is_control: bool = False
    # Tensors-ready tasks (the embedded ones) ignore the PIL transform.
    tensor_native: bool = False
    defaults: dict = field(default_factory=dict)  # per-task training defaults, e.g. {"epochs": 35}


@dataclass(frozen=True)
class BenchmarkSpec:
    """A suite named by its task list, in the literature's order, and its control task."""

    name: str
    tasks: tuple[str, ...]
    control: str | None = None


_TASKS: dict[str, TaskSpec] = {}
_BENCHMARKS: dict[str, BenchmarkSpec] = {}
_BENCHMARK_LOADERS: dict[str, Callable[[], None]] = {}
_BENCHMARK_NAMES: dict[str, Callable[[], Sequence[str]]] = {}  # a suite's task names, known before its loader runs (--help)


def register_task(spec: TaskSpec) -> None:
    _TASKS[spec.name] = spec


def register_benchmark(spec: BenchmarkSpec) -> None:
    _BENCHMARKS[spec.name] = spec


def register_benchmark_loader(benchmark: str, loader: Callable[[], None], once: bool = True, names: Callable[[], Sequence[str]] | None = None) -> None:
    """A function that imports/registers a benchmark's tasks lazily (keeps imports light).

    once: it runs at the first lookup only (marked first, since registering may look tasks up
    again; unmarked if it fails, so the error shows again on the next lookup).
    names: the suite's task names (its control last) without running the loader, for --help.
    """
    if names is not None:
        _BENCHMARK_NAMES[benchmark] = names
    if not once:
        _BENCHMARK_LOADERS[benchmark] = loader
        return
    done = False

    def load_once() -> None:
        nonlocal done
        if done:
            return
        done = True
        try:
            loader()
        except BaseException:
            done = False
            raise

    _BENCHMARK_LOADERS[benchmark] = load_once


def _builtin_plugins() -> None:
    """The suites built on top of this layer (the embedded benchmark) register themselves here,
    before the registry is first read: no caller has to set them up."""
    from ..plugins import register_builtin_tasks

    register_builtin_tasks()


def _load_all() -> None:
    _builtin_plugins()
    for loader in list(_BENCHMARK_LOADERS.values()):
        loader()


def suite_listing() -> dict[str, tuple[str, ...]]:
    """Each suite's task names (control last), without loading any dataset code: what --help lists."""
    _builtin_plugins()
    return {name: tuple(names()) for name, names in _BENCHMARK_NAMES.items()}


def base_task_name(name: str) -> str:
    """`CarsVal` names the same data as `Cars` (the held-out split); accept both spellings."""
    return name[:-3] if name.endswith("Val") and name[:-3] in _TASKS else name


def _suggestion(name: str) -> str:
    """'did you mean SUN397Val? ' for 'Sun397val': the closest name, ignoring case, keeping a Val suffix."""
    stem, suffix = (name[:-3], "Val") if name.lower().endswith("val") else (name, "")
    names = {task.lower(): task for task in all_task_names()}
    near = difflib.get_close_matches(stem.lower(), names, n=1)
    return f"did you mean {names[near[0]]}{suffix}? " if near else ""


def get_task(name: str) -> TaskSpec:
    _load_all()
    key = base_task_name(name)
    if key not in _TASKS:
        raise UserError(f"unknown task '{name}'; {_suggestion(name)}valid tasks: {', '.join(all_task_names())}")
    return _TASKS[key]


def all_task_names() -> list[str]:
    _load_all()
    return list(_TASKS)


def benchmark_names() -> list[str]:
    _load_all()
    return sorted({t.benchmark for t in _TASKS.values()} | set(_BENCHMARKS))


def benchmark_tasks(benchmark: str, include_control: bool = False) -> list[str]:
    _load_all()
    if benchmark in _BENCHMARKS:
        spec = _BENCHMARKS[benchmark]
        return list(spec.tasks) + ([spec.control] if include_control and spec.control else [])
    names = [t.name for t in _TASKS.values() if t.benchmark == benchmark and (include_control or not t.is_control)]
    if not names:
        raise UserError(f"unknown benchmark '{benchmark}'; valid benchmarks: {', '.join(benchmark_names())}")
    return names


def control_task(benchmark: str) -> str | None:
    _load_all()
    if benchmark in _BENCHMARKS:
        return _BENCHMARKS[benchmark].control
    controls = [t.name for t in _TASKS.values() if t.benchmark == benchmark and t.is_control]
    return controls[0] if controls else None


def smallest_suite(tasks: Sequence[str]) -> str | None:
    """The smallest benchmark holding every one of `tasks` (None if none does): tasks of real8 and
    real14 together belong to real14."""
    _load_all()
    wanted = {get_task(t).name for t in tasks}
    fits = [b for b in benchmark_names() if wanted <= set(benchmark_tasks(b, include_control=True))]
    return min(fits, key=lambda b: len(benchmark_tasks(b))) if fits else None


def control_for(tasks: Sequence[str]) -> str | None:
    """The control task of the smallest benchmark holding every one of `tasks` (None if none does)."""
    suite = smallest_suite(tasks)
    return control_task(suite) if suite is not None else None


def parse_task_list(text: str | Sequence[str]) -> list[str]:
    """Comma-separated names (or a benchmark name) -> validated task names."""
    items = [s.strip() for s in (text.split(",") if isinstance(text, str) else text) if s.strip()]
    if len(items) == 1 and items[0] in benchmark_names():
        return benchmark_tasks(items[0])
    names = [get_task(item).name for item in items]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        # a repeated task would add its task vector twice (or weigh it twice in a mean)
        raise UserError(f"the task list {','.join(items)} names {', '.join(repeated)} more than once; list each task once")
    return names
