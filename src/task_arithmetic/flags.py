"""Command-line value types, in one place for every script (argparse `type=`).

Numbers are finite and in range: `float("nan")` parses, and a NaN compares False with every
bound, so a range check written as `if x > limit: refuse` lets it through and silently switches
the check off. Seeds fit every generator the suite seeds. Names that become a folder or file
name (a task, a tag, a weights name) are checked by paths.check_name. Values that do not come
from a command line (configs, presets, library calls) use the same checks through `check_float`,
`check_int` and `check_seed`, which raise UserError instead.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import Callable

from .errors import UserError
from .paths import check_name

MAX_SEED = 2**32 - 1  # numpy's limit; torch's and Python's are wider


@dataclass(frozen=True)
class Bounds:
    """lo/hi: None for no bound; open: the bound itself is excluded."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def describe(self) -> str:
        def show(x: float) -> str:
            return str(x) if isinstance(x, int) else f"{x:g}"

        parts = []
        if self.lo is not None:
            parts.append(f"{'>' if self.lo_open else '>='} {show(self.lo)}")
        if self.hi is not None:
            parts.append(f"{'<' if self.hi_open else '<='} {show(self.hi)}")
        return " and ".join(parts)

    def holds(self, value: float) -> bool:
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            return False
        return not (self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi))


def _float_problem(value: object, bounds: Bounds) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "expected a number"
    if not math.isfinite(value):
        return f"expected a finite number{' ' + bounds.describe() if bounds.describe() else ''}"
    if not bounds.holds(float(value)):
        return f"expected a number {bounds.describe()}"
    return None


def check_float(name: str, value: object, lo: float | None = None, hi: float | None = None, lo_open: bool = False, hi_open: bool = False) -> float:
    """`value` as a finite float within the bounds, else a UserError naming `name` (a flag or config key)."""
    problem = _float_problem(value, Bounds(lo, hi, lo_open, hi_open))
    if problem is not None:
        raise UserError(f"{name}: {problem}, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def check_int(name: str, value: object, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"{name}: expected an integer, got {value!r}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise UserError(f"{name}: expected an integer {Bounds(lo, hi).describe()}, got {value}")
    return value


def check_seed(name: str, value: object) -> int:
    return check_int(name, value, 0, MAX_SEED)


def _parsed(text: str, kind: type) -> float | int:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got '{text}'") from None


def float_in(lo: float | None = None, hi: float | None = None, lo_open: bool = False, hi_open: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite float within the bounds."""
    bounds = Bounds(lo, hi, lo_open, hi_open)

    def parse(text: str) -> float:
        value = _parsed(text, float)
        problem = _float_problem(value, bounds)
        if problem is not None:
            raise argparse.ArgumentTypeError(f"{problem}, got '{text}'")
        return float(value)

    parse.__name__ = "number"  # argparse names the type in some messages
    return parse


def int_in(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer within the bounds."""

    def parse(text: str) -> int:
        value = int(_parsed(text, int))
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"expected an integer {Bounds(lo, hi).describe()}, got '{text}'")
        return value

    parse.__name__ = "integer"
    return parse


def pretrained(text: str) -> str | None:
    """--pretrained: 'none' or 'random' mean random initialisation (None); anything else is a
    weight tag or a weights file, resolved by the model factory."""
    return None if text.lower() in ("none", "random") else text


finite_float = float_in()
positive_float = float_in(0.0, lo_open=True)
nonnegative_float = float_in(0.0)
positive_int = int_in(1)
nonnegative_int = int_in(0)
seed = int_in(0, MAX_SEED)


def seed_list(text: str) -> tuple[int, ...]:
    """Comma-separated seeds (e.g. 0,1,2), each a valid seed, none repeated."""
    parts = [p.strip() for p in text.split(",")]
    if not parts or not all(p.isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"expected comma-separated integers from 0 to {MAX_SEED} (e.g. 0,1,2), got '{text}'")
    values = tuple(int(p) for p in parts)
    if any(v > MAX_SEED for v in values):
        raise argparse.ArgumentTypeError(f"seeds go from 0 to {MAX_SEED}, got '{text}'")
    if len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"expected distinct seeds (e.g. 0,1,2), got '{text}'")
    return values


def alpha_step(text: str) -> float:
    """A coefficient grid 0, step, ..., 1: a step in (0, 1] that divides 1."""
    value = float_in(0.0, 1.0, lo_open=True)(text)
    if abs(round(1 / value) * value - 1) > 1e-9:
        raise argparse.ArgumentTypeError(f"expected a step in (0, 1] that divides 1 (e.g. 0.05, 0.25), got '{text}'")
    return value


def name(kind: str, allow_empty: bool = False) -> Callable[[str], str]:
    """An argparse type for a value that becomes a folder or file name (paths.check_name's rules);
    allow_empty: "" means "none" (e.g. no --tag)."""

    def parse(text: str) -> str:
        if allow_empty and text == "":
            return text
        try:
            return check_name(kind, text)
        except UserError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    parse.__name__ = kind
    return parse
