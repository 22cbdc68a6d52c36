"""Coefficient grids and the rule that picks one."""

from __future__ import annotations

from typing import Sequence

# 0, 0.05, ..., 1: the protocol's 21-point grid, rounded so keys and JSON stay exact.
ALPHA_GRID: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(21))


def symmetric_grid(limit: float, points: int) -> tuple[float, ...]:
    """`points` evenly spaced values in [-limit, limit] (the disentanglement grid)."""
    if points < 2:
        return (0.0,)
    return tuple(round(-limit + 2 * limit * i / (points - 1), 6) for i in range(points))


def best_index(
    alphas: Sequence[float],
    scores: Sequence[float | None],
    maximize: bool,
    admissible: Sequence[bool] | None = None,
) -> int | None:
    """Index of the best admissible score; ties keep the smallest alpha. None when nothing qualifies."""
    best: int | None = None
    for i in sorted(range(len(alphas)), key=lambda j: alphas[j]):
        if (admissible is not None and not admissible[i]) or scores[i] is None:
            continue
        if best is None:
            best = i
            continue
        better = scores[i] > scores[best] if maximize else scores[i] < scores[best]  # type: ignore[operator]
        if better:
            best = i
    return best


def mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def alpha_grid(step: float) -> tuple[float, ...]:
    """0, step, ..., 1 (step 0.05 gives ALPHA_GRID)."""
    points = int(round(1 / step))
    return tuple(round(i * step, 4) for i in range(points + 1))
