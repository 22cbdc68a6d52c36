"""The keyword arguments a class takes from a config, read from its signature.

Its own module so that base.py (MergeAlgorithm.setting_names) and targets.py (config checks) both
read it without importing each other; torch-free, as targets.py is read by `merge.py --help`.
"""

from __future__ import annotations

import inspect

# FusionBench's keyword arguments that do not change the merge: accepted, kept in `config`, unused.
COSMETIC_OPTIONS = ("name", "show_pbar", "verbose")


def signature_parameters(cls: type, cosmetic: bool) -> dict[str, inspect.Parameter]:
    """`cls`'s named parameters; with `cosmetic`, plus COSMETIC_OPTIONS where it takes **options
    (a MergeAlgorithm passes them on to its base class, which keeps them)."""
    signature = inspect.signature(cls).parameters
    named = {n: p for n, p in signature.items() if n != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    if cosmetic and any(p.kind is p.VAR_KEYWORD for p in signature.values()):
        for option in COSMETIC_OPTIONS:
            named.setdefault(option, inspect.Parameter(option, inspect.Parameter.KEYWORD_ONLY, default=None))
    return named
