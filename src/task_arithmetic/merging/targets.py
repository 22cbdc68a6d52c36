"""The classes a config's `_target_` may name, per group. Only these: a config cannot import code.

FusionBench's dotted targets (fusion_bench.method.TaskArithmeticAlgorithm) resolve by their last
component, so its configs for the methods we have work unchanged.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from typing import Any

from ..errors import UserError
from . import _EXPORTS as _METHODS
from .modelpool import _EXPORTS as _MODEL_POOLS
from .signature import signature_parameters
from .taskpool import _EXPORTS as _TASK_POOLS

# Every concrete class the packages export may be named; bases, helpers and constants may not.
TARGETS: dict[str, dict[str, str]] = {
    # Classes only: the exported functions (magmax_merge, wudi_merging) are not config targets.
    "method": {name: module for name, module in _METHODS.items() if module not in ("base", "modelpool", "taskpool") and name[0].isupper()},
    "modelpool": {name: f"modelpool.{module}" for name, module in _MODEL_POOLS.items() if module != "base"},
    "taskpool": {name: f"taskpool.{module}" for name, module in _TASK_POOLS.items() if module != "base"},
}


# FusionBench's v0.1 method configs have no _target_: its compat loader picks the class by `name`
# (fusion_bench.compat.method.AlgorithmFactory). The names of methods the suite has:
LEGACY_METHOD_NAMES = {
    "clip_task_wise_adamerging": "CLIPTaskWiseAdaMergingAlgorithm",
    "clip_layer_wise_adamerging": "CLIPLayerWiseAdaMergingAlgorithm",
}


def target_of(group: str, node: Mapping[str, Any]) -> Any:
    """The node's _target_, or for a method config without one, the class its FusionBench `name` selects."""
    if "_target_" not in node and group == "method" and node.get("name") in LEGACY_METHOD_NAMES:
        return LEGACY_METHOD_NAMES[node["name"]]
    return node.get("_target_")


def target_class(group: str, target: Any) -> type:
    if not isinstance(target, str) or not target:
        legacy = f" or, as FusionBench's v0.1 configs, a `name` among {', '.join(LEGACY_METHOD_NAMES)}" if group == "method" else ""
        raise UserError(f"the {group} config has no _target_; add `_target_: <class>` (one of {', '.join(TARGETS[group])}){legacy}")
    name = target.rsplit(".", 1)[-1]
    if name not in TARGETS[group]:
        raise UserError(f"unknown {group} _target_ '{target}'; valid: {', '.join(TARGETS[group])}")
    module = importlib.import_module(f"{__package__}.{TARGETS[group][name]}")
    return getattr(module, name)


def parameters(cls: type) -> dict[str, inspect.Parameter]:
    """The keys a config may give `cls`: its named parameters, plus FusionBench's cosmetic options
    (name, show_pbar, verbose) where the class passes **options on to MergeAlgorithm."""
    # Here, not at the top: base.py imports torch, and `merge.py --help` reads this module.
    from .base import MergeAlgorithm

    return signature_parameters(cls, cosmetic=issubclass(cls, MergeAlgorithm))


def instantiate(group: str, node: dict[str, Any]) -> Any:
    """Build the object a group config describes; unknown or missing keys are UserErrors."""
    cls = target_class(group, target_of(group, node))
    kwargs = {k: v for k, v in node.items() if not k.startswith("_")}
    unset = [k for k, v in kwargs.items() if v == "???"]
    if unset:
        raise UserError(f"{group}.{unset[0]} must be set (it is ??? in the config); pass {group}.{unset[0]}=<value>")
    params = parameters(cls)
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        raise UserError(f"unknown {group} key(s) {', '.join(unknown)} for {cls.__name__}; valid keys: {', '.join(params)}")
    missing = [n for n, p in params.items() if p.default is p.empty and n not in kwargs]
    if missing:
        raise UserError(f"{group} config lacks {', '.join(missing)}, required by {cls.__name__}; set {group}.{missing[0]}=<value>")
    return cls(**kwargs)
