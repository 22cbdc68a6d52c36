"""Comparing state dicts by keys and shapes, without reading tensor data from lazy readers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


def shape_of(state: Mapping, key: str) -> tuple[int, ...]:
    """A tensor's shape without reading its data when the mapping can tell (lazy readers can)."""
    if hasattr(state, "shape_of"):
        return tuple(state.shape_of(key))
    return tuple(state[key].shape)


@dataclass(frozen=True)
class LayoutDifference:
    missing: list[str]  # in the reference, not in the other
    unexpected: list[str]  # in the other only
    wrong_shape: list[str]


def layout_difference(reference: Mapping, other: Mapping) -> LayoutDifference | None:
    """The suite's one comparison of two state dicts by keys and shapes; None when they match."""
    missing = [k for k in reference if k not in other]
    unexpected = [k for k in other if k not in reference]
    wrong = [k for k in reference if k in other and shape_of(reference, k) != shape_of(other, k)]
    return LayoutDifference(missing, unexpected, wrong) if (missing or unexpected or wrong) else None


def state_mismatch(reference: Mapping, other: Mapping) -> str | None:
    """Describe how `other`'s keys and shapes differ from `reference`'s, or None when they match."""
    diff = layout_difference(reference, other)
    if diff is None:
        return None
    missing, unexpected, wrong = diff.missing, diff.unexpected, diff.wrong_shape
    details = []
    if missing:
        details.append(f"{len(missing)} missing keys (e.g. '{missing[0]}')")
    if unexpected:
        details.append(f"{len(unexpected)} unexpected keys (e.g. '{unexpected[0]}')")
    if wrong:
        k = wrong[0]
        details.append(f"{len(wrong)} shape mismatches (e.g. '{k}': {shape_of(other, k)} vs {shape_of(reference, k)})")
    return ", ".join(details) or None
