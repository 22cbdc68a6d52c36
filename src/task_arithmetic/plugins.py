"""The plug-ins every entry point registers before it parses tasks or weights.

Lower layers (the task registry, the model factory) only offer registration functions; the
benchmarks built on top of them (the embedded one) plug themselves in here, so no lower module
imports a higher one.
"""

from __future__ import annotations


def register_builtin_plugins() -> None:
    from . import embedded

    embedded.register()
