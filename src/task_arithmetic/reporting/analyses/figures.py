"""Saving a figure: every analysis's plots go through here (atomic, one line on a full disk)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402

from ...io import atomic_write_bytes  # noqa: E402


def figure(width: float = 6.0, height: float = 4.0, ncols: int = 1) -> tuple[Any, Any]:
    """A figure and its axes (a tuple of `ncols` axes side by side when ncols > 1)."""
    return plt.subplots(1, ncols, figsize=(width, height))


def save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return path
