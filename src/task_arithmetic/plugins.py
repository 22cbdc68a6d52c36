"""The plug-ins built on top of the lower layers (the embedded benchmark's tasks and weights),
registered where those layers' registries are first read.

The task registry (data/registry.py) calls `register_builtin_tasks` before its first lookup, the
model factory (models/factory.py) calls `register_builtin_weights` before it resolves a weight
tag; both are idempotent and cheap, so library code needs no set-up call of its own and
`--help` imports nothing heavy. Lower modules reach this module only inside those two calls,
never at import time. `register_builtin_plugins()` (both at once) stays for callers that want
everything registered up front.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# The plug-ins are named, not imported here, as an installed package's entry points would be: the
# registries below them reach their code only through this name, so the module import graph stays
# layered (embedded imports the registries; nothing the registries import imports embedded; see
# tests/test_import_cycles.py).
BUILTIN_PLUGIN = f"{__package__}.embedded"

_tasks = False
_weights = False


def register_builtin_tasks() -> None:
    """The embedded benchmark's task suites (their tasks are generated on first lookup)."""
    global _tasks
    if not _tasks:
        _tasks = True
        _builtin_plugin().register_tasks()


def register_builtin_weights() -> None:
    """The embedded benchmark's self-pretrained TinyCLIP weight tags (`--pretrained embedded`)."""
    global _weights
    if not _weights:
        _weights = True
        _builtin_plugin().register_weights()


def _builtin_plugin() -> ModuleType:
    return importlib.import_module(BUILTIN_PLUGIN)


def register_builtin_plugins() -> None:
    register_builtin_tasks()
    register_builtin_weights()
