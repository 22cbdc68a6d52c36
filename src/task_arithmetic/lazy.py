"""torch named without importing it: the module is imported on the first attribute read.

Every script builds its parser from the registries (recipes, evaluations, tasks), so the modules
that declare them are imported before `--help` or a flag error can be answered. Importing torch
takes seconds; those modules name it through these stand-ins instead of `import torch`, so help
and bad-input errors stay instant, and the first real use (a tensor, a layer) imports it.
Annotations do not count as uses (`from __future__ import annotations`). Modules that are never
on a parser's path import torch as usual.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, Callable


class LazyModule:
    """Stands for the module `name`; reading any attribute imports it (once) and reads it there."""

    __slots__ = ("_name", "_module")

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        module = self._module
        if module is None:
            module = self._module = importlib.import_module(self._name)
        return getattr(module, attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name}{'' if self._module is None else ' (imported)'}>"


def deferred(module: str, name: str) -> Callable[..., Any]:
    """A stand-in for the class or function `module.name`: calling it imports the module (once)
    and calls the real one (e.g. a table of merging algorithms, built only when a merge runs)."""

    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    return call


torch: Any = LazyModule("torch")
nn: Any = LazyModule("torch.nn")
F: Any = LazyModule("torch.nn.functional")
np: Any = LazyModule("numpy")
