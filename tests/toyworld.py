"""The evaluation tests' toy benchmark, alone in the task registry while a test module uses it."""

import contextlib

import pytest
from toyruns import build_toy_world

from task_arithmetic.data import registry


@contextlib.contextmanager
def isolated_toy_world(folder, n_val: int, n_test: int):
    with pytest.MonkeyPatch.context() as mp:
        # only the toy benchmark, and the registry restored afterwards for other test modules
        mp.setattr(registry, "_BENCHMARK_LOADERS", {})
        mp.setattr(registry, "_TASKS", dict(registry._TASKS))
        yield build_toy_world(folder, n_tasks=3, n_val=n_val, n_test=n_test, recipes=(("standard", "none"), ("linear", "none")))
