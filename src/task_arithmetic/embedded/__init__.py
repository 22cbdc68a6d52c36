"""The embedded benchmark: a tiny CLIP world that runs the whole study offline in minutes.

Tasks are rendered deterministically (one from scikit-learn's real digits), the tiny CLIP is
pretrained contrastively on a generated image-caption corpus, and both are cached. It is a
plug-in of the lower layers: `register()` (called by every entry point through
task_arithmetic.plugins) adds its tasks to the task registry, lazily, and its pretrained weights
as `ModelSpec("TinyCLIP", pretrained="embedded")` (and "embedded-smoke" for the tests' preset).
"""

from __future__ import annotations

from ..data.registry import register_benchmark_loader
from .weights import register_weight_sources

_registered = False
_tasks_registered = False


def _register_tasks() -> None:
    from . import tasks  # generating the tasks' specs is deferred to the first task lookup

    global _tasks_registered
    if not _tasks_registered:
        _tasks_registered = True
        tasks.register_tasks()


def register() -> None:
    global _registered
    if _registered:
        return
    _registered = True
    for suite in ("embedded", "embedded12"):  # one registration of the tasks serves both suites
        register_benchmark_loader(suite, _register_tasks)
    register_weight_sources()
