"""Datasets: one registry of tasks (real and embedded), their splits, class names and templates.

Benchmarks register lazily: importing torchvision dataset code or generating the embedded tasks
happens only when a task name is first looked up.
"""

import functools
import importlib.util
import os
from pathlib import Path

from ..errors import UserError
from .real_suites import CONTROL, SUITES
from .registry import register_benchmark_loader

_loaded: set[str] = set()  # TA_EXTRA_TASKS files already registered


def _register_real() -> None:
    from . import real  # torchvision dataset code: imported on the first task lookup only

    if "real" not in _loaded:  # one registration serves every real suite
        _loaded.add("real")
        real.register_tasks()


# The real datasets live in this package; other benchmarks (the embedded ones) register
# themselves from the entry points (task_arithmetic.plugins).
def _real_suite_names(suite: str) -> tuple[str, ...]:
    return (*SUITES[suite], CONTROL)


for _suite in SUITES:
    register_benchmark_loader(_suite, _register_real, names=functools.partial(_real_suite_names, _suite))


def _extra_tasks_from_env() -> None:
    """TA_EXTRA_TASKS=/path/module.py registers more tasks (its register_tasks()) in every script.

    How a user (or a test driving scripts in subprocesses) adds private datasets without editing
    the package.
    """
    path = os.environ.get("TA_EXTRA_TASKS")
    if not path or path in _loaded:
        return
    if not Path(path).is_file():
        raise UserError(f"TA_EXTRA_TASKS={path} does not exist; point it at a Python file defining register_tasks() or unset it")
    spec = importlib.util.spec_from_file_location("ta_extra_tasks", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    if not hasattr(module, "register_tasks"):
        raise UserError(f"TA_EXTRA_TASKS={path} has no register_tasks() function; add one that calls registry.register_task")
    _loaded.add(path)
    module.register_tasks()


register_benchmark_loader("extra", _extra_tasks_from_env, once=False)  # it keeps its own record
