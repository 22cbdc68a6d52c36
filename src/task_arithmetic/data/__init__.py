"""Datasets: one registry of tasks (real and embedded), their splits, class names and templates.

Benchmarks register lazily: importing torchvision dataset code or generating the embedded tasks
happens only when a task name is first looked up.
"""

import importlib

from .registry import register_benchmark_loader

# Each module exposes register_tasks(); registry._load_all() calls these once per lookup.
_loaded: set[str] = set()


def _lazy(module: str):
    def load() -> None:
        if module not in _loaded:
            # Marked first: registering may look tasks up again; unmarked if the import fails.
            _loaded.add(module)
            try:
                importlib.import_module(module).register_tasks()
            except BaseException:
                _loaded.discard(module)
                raise

    return load


register_benchmark_loader("real8", _lazy("task_arithmetic.data.real"))
register_benchmark_loader("embedded", _lazy("task_arithmetic.embedded.tasks"))
