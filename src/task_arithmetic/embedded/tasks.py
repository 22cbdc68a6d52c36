"""Registers the embedded benchmark's tasks in the suite's one task registry.

Called lazily by task_arithmetic.data the first time any task name is looked up; importing this
module also registers the self-pretrained TinyCLIP weights (see embedded/__init__.py).
"""

from __future__ import annotations

import functools
from pathlib import Path

from ..data.registry import BenchmarkSpec, TaskSpec, register_benchmark, register_task
from .catalog import ALL_TASKS, EMBEDDED12, EmbeddedTask
from .datasets import load_split

BENCHMARK = "embedded"


def _classnames(task: EmbeddedTask, data_location: Path) -> list[str]:
    return list(task.class_names())


def task_spec(task: EmbeddedTask) -> TaskSpec:
    return TaskSpec(
        name=task.name,
        benchmark=task.benchmark,
        templates=task.templates,
        load_split=functools.partial(load_split, task),
        load_classnames=functools.partial(_classnames, task),
        expected_layout="nothing to download: generated on first use and cached under <data_location>/embedded/",
        is_control=task.is_control,
        tensor_native=True,
        defaults=dict(task.defaults),
    )


def register_tasks() -> None:
    for task in ALL_TASKS:
        register_task(task_spec(task))
    # The six of the default study, then their six variants; Shapes stays the control.
    register_benchmark(BenchmarkSpec("embedded12", EMBEDDED12, "Shapes"))
