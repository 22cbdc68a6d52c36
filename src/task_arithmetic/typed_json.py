"""Typed values to JSON and back: dataclasses, lists, tuples, dicts with string keys, enums,
optional and union types of those, and the JSON scalars.

`dump(value)` gives plain JSON data; `load(cls, data)` rebuilds a value of type `cls` from it,
checking every field, so a results file or a serialised unit read back is the typed value that
was written (or a clear error naming the field). Used for evaluation results, evaluation
parameters and the study's units.
"""

from __future__ import annotations

import dataclasses
import enum
import sys
import types
import typing
from functools import lru_cache
from typing import Any, TypeVar, Union

import numpy as np

T = TypeVar("T")


class SchemaError(ValueError):
    """Data that does not fit the declared type (`where` names the field)."""


def dump(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: dump(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [dump(v) for v in value]
    if isinstance(value, dict):
        return {str(k): dump(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):  # numpy scalars from numerical code
        return value.item()
    raise SchemaError(f"cannot write a {type(value).__name__} as JSON")


@lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    module = sys.modules.get(cls.__module__)
    return typing.get_type_hints(cls, vars(module) if module else None)


def load(cls: Any, data: Any, where: str = "") -> Any:
    """`data` (plain JSON) as a value of type `cls`; SchemaError naming the first mismatch."""
    origin = typing.get_origin(cls)
    if cls is Any:
        return data
    if origin in (Union, types.UnionType):
        options = typing.get_args(cls)
        if data is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return load(option, data, where)
            except SchemaError as err:
                errors.append(str(err))
        raise SchemaError(errors[0] if errors else f"{where or 'value'}: expected {cls}, got {data!r}")
    if origin in (list, tuple) or cls in (list, tuple):
        if not isinstance(data, list):
            raise SchemaError(f"{where or 'value'}: expected a list, got {type(data).__name__}")
        args = typing.get_args(cls)
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(args) != len(data):
                raise SchemaError(f"{where or 'value'}: expected {len(args)} items, got {len(data)}")
            return tuple(load(a, d, f"{where}[{i}]") for i, (a, d) in enumerate(zip(args, data)))
        item = args[0] if args else Any
        loaded = [load(item, d, f"{where}[{i}]") for i, d in enumerate(data)]
        return tuple(loaded) if (origin is tuple or cls is tuple) else loaded
    if origin is dict or cls is dict:
        if not isinstance(data, dict):
            raise SchemaError(f"{where or 'value'}: expected an object, got {type(data).__name__}")
        args = typing.get_args(cls)
        value_type = args[1] if args else Any
        return {k: load(value_type, v, f"{where}.{k}") for k, v in data.items()}
    if isinstance(cls, type) and issubclass(cls, enum.Enum):
        try:
            return cls(data)
        except ValueError:
            raise SchemaError(f"{where or 'value'}: {data!r} is not one of {[e.value for e in cls]}") from None
    if isinstance(cls, type) and dataclasses.is_dataclass(cls):
        if not isinstance(data, dict):
            raise SchemaError(f"{where or cls.__name__}: expected an object, got {type(data).__name__}")
        hints = _hints(cls)
        values = {}
        for f in dataclasses.fields(cls):
            if not f.init:
                continue
            if f.name not in data:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise SchemaError(f"{where}.{f.name}: missing")
                continue
            values[f.name] = load(hints[f.name], data[f.name], f"{where}.{f.name}")
        return cls(**values)
    if cls is float:
        if isinstance(data, (int, float)) and not isinstance(data, bool):
            return float(data)
    elif cls is int:
        if isinstance(data, int) and not isinstance(data, bool):
            return data
    elif cls in (str, bool):
        if isinstance(data, cls):
            return data
    elif cls is type(None):
        if data is None:
            return None
    else:
        raise SchemaError(f"{where or 'value'}: unsupported type {cls}")
    raise SchemaError(f"{where or 'value'}: expected {getattr(cls, '__name__', cls)}, got {data!r}")
