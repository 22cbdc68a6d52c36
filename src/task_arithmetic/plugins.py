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

_tasks = False
_weights = False


def register_builtin_tasks() -> None:
    """The embedded benchmark's task suites (their tasks are generated on first lookup)."""
    global _tasks
    if not _tasks:
        _tasks = True
        from . import embedded

        embedded.register_tasks()


def register_builtin_weights() -> None:
    """The embedded benchmark's self-pretrained TinyCLIP weight tags (`--pretrained embedded`)."""
    global _weights
    if not _weights:
        _weights = True
        from . import embedded

        embedded.register_weights()


def register_builtin_plugins() -> None:
    register_builtin_tasks()
    register_builtin_weights()
