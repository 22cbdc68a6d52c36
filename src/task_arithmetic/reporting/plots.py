"""PNG figures: accuracy vs alpha per mode, per-task bars, tau-Jp and disentanglement heat maps."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path
from typing import Mapping

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..evaluation import addition, disentanglement, tau_jp  # noqa: E402
from ..io import atomic_write_bytes  # noqa: E402
from .colours import ZERO_SHOT, recipe_colour  # noqa: E402
from .table import RunResults  # noqa: E402


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())  # atomic, and a full disk is one clear line
    return path


def accuracy_vs_alpha(runs: Mapping[str, RunResults], path: Path) -> Path | None:
    curves = {run.label: (r.val_curve, recipe_colour(run)) for run in runs.values() if (r := run.get(addition.EVALUATION)) is not None}
    if not curves:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for label, (curve, colour) in curves.items():
        alphas = [p.alpha for p in curve]
        axes[0].plot(alphas, [100 * p.avg_accuracy for p in curve], marker=".", label=label, color=colour)
        axes[1].plot(alphas, [100 * (p.avg_normalized or 0) for p in curve], marker=".", label=label, color=colour)
    for ax, title in zip(axes, ("absolute", "normalised")):
        ax.set_xlabel("alpha")
        ax.set_ylabel(f"{title} Val accuracy (%)")
        ax.set_title(f"Task addition, {title}")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    return _save(fig, path)


def per_task_bars(runs: Mapping[str, RunResults], path: Path) -> Path | None:
    found = {name: r for name, run in runs.items() if (r := run.get(addition.EVALUATION)) is not None}
    if not found:
        return None
    first = next(iter(found.values()))
    tasks = first.tasks
    series = {"zero-shot": (first.zeroshot.test.per_task, ZERO_SHOT)}
    series.update({f"{name} tuned": (result.tuned.test.per_task, recipe_colour(runs[name])) for name, result in found.items()})
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(tasks) + 2), 4))
    x = np.arange(len(tasks))
    for i, (label, (per_task, colour)) in enumerate(series.items()):
        ax.bar(x + i * width, [100 * per_task.get(t, 0) for t in tasks], width, label=label, color=colour)
    ax.set_xticks(x + width * (len(series) - 1) / 2, tasks, rotation=30, ha="right")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Task addition per task (tuned alpha)")
    ax.legend(fontsize=8)
    return _save(fig, path)


def _heatmap(matrix: np.ndarray, rows: list[str], cols: list[str], title: str, path: Path, xlabel: str, ylabel: str, annotate: bool) -> Path:
    width = max(4, 0.7 * len(cols) + 2)
    fig, ax = plt.subplots(figsize=(width, max(3.5, 0.6 * len(rows) + 1.5)))
    image = ax.imshow(matrix, cmap="viridis", aspect="auto", origin="upper")
    fig.colorbar(image, ax=ax)
    ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(textwrap.fill(title, int(width * 8), break_on_hyphens=False), fontsize=10)  # wrapped to the figure's width (about 8 characters an inch)
    if annotate:
        middle = (np.nanmin(matrix) + np.nanmax(matrix)) / 2
        for i in range(matrix.shape[0]):
            for j in range(matrix.shape[1]):
                colour = "k" if matrix[i, j] > middle else "w"  # readable on both ends of viridis
                ax.text(j, i, f"{matrix[i, j]:.3g}", ha="center", va="center", fontsize=7, color=colour)
    return _save(fig, path)


def tau_jp_heatmap(run: RunResults, result: tau_jp.TauJpResult, path: Path) -> Path:
    matrix = np.array(result.matrix, dtype=float)
    return _heatmap(matrix, result.vectors, result.datasets, f"τJp: {run.label}", path, "dataset x_j", "task vector τ_i", annotate=True)


def disentanglement_heatmap(run: RunResults, pair: str, grid: disentanglement.PairGrid, alphas: list[float], path: Path) -> Path:
    a, b = grid.tasks
    labels = [f"{v:g}" for v in alphas]
    return _heatmap(np.array(grid.xi, dtype=float), labels, labels, f"Disentanglement error ξ, {run.label}: {pair}", path, f"alpha {b}", f"alpha {a}", annotate=False)


def all_plots(runs: Mapping[str, RunResults], folder: Path) -> list[Path]:
    written = [accuracy_vs_alpha(runs, folder / "addition_alpha.png"), per_task_bars(runs, folder / "addition_per_task.png")]
    for name, run in runs.items():
        matrix = run.get(tau_jp.EVALUATION)
        if matrix is not None:
            written.append(tau_jp_heatmap(run, matrix, folder / f"tau_jp_{name}.png"))
        grids = run.get(disentanglement.EVALUATION)
        if grids is not None:
            for pair, grid in grids.pairs.items():
                written.append(disentanglement_heatmap(run, pair, grid, grids.alphas, folder / f"disentanglement_{name}_{pair.replace('+', '_')}.png"))
    return [p for p in written if p is not None]
