"""The embedded benchmark: a tiny CLIP world that runs the whole study offline in minutes.

Tasks are rendered deterministically (one from scikit-learn's real digits), the tiny CLIP is
pretrained contrastively on a generated image-caption corpus, and both are cached. It is a
plug-in of the lower layers: task_arithmetic.plugins adds its tasks to the task registry
(`register_tasks`, lazily) where that registry is first read, and its pretrained weights
(`register_weights`) where the model factory first resolves a weight tag, as `ModelSpec("TinyCLIP", pretrained="embedded")` (and "embedded-smoke" for the tests' preset).
"""

from __future__ import annotations

import functools

from ..data.registry import register_benchmark_loader

_tasks_registered = False


def _register_tasks() -> None:
    from . import tasks  # generating the tasks' specs is deferred to the first task lookup

    global _tasks_registered
    if not _tasks_registered:
        _tasks_registered = True
        tasks.register_tasks()


def _suite_names() -> dict[str, tuple[str, ...]]:
    from .catalog import ALL_TASKS, EMBEDDED12

    control = tuple(t.name for t in ALL_TASKS if t.is_control)
    return {"embedded": tuple(t.name for t in ALL_TASKS if t.benchmark == "embedded"), "embedded12": EMBEDDED12 + control}


def _names_of(suite: str) -> tuple[str, ...]:
    return _suite_names()[suite]


def register_tasks() -> None:
    """The suites, lazily: one registration of the tasks serves both (task_arithmetic.plugins calls this)."""
    for suite in ("embedded", "embedded12"):
        register_benchmark_loader(suite, _register_tasks, names=functools.partial(_names_of, suite))


def register_weights() -> None:
    """The pretrained TinyCLIP's weight tags (imports the model factory: open_clip)."""
    from .weights import register_weight_sources

    register_weight_sources()


def register() -> None:
    register_tasks()
    register_weights()
