"""The paper's incremental-learning experiment: normalised addition accuracy after each stage k for
every recipe with the incremental evaluation, and its claim that incremental tau-Jp (task k knew
only tasks 1..k-1 and the control set) stays close to full-knowledge tau-Jp and above linear
fine-tuning at every stage."""

from __future__ import annotations

from pathlib import Path

from ...evaluation import incremental
from ...recipes.paper import PAPER
from ..claims import FAILS, HOLDS, MISSING, Claim, find_run
from ..colours import recipe_colour
from .base import Analysis, Runs
from .figures import figure, save

# Pre-declared, before any incremental result existed: "close" is within 2 points of normalised
# tuned test accuracy (the paper reports incremental tau-Jp within about a point of tau-Jp).
CLOSE = 0.02


def plots(runs: Runs, folder: Path) -> list[Path]:
    found = {run.label: (r, recipe_colour(run)) for run in runs.values() if (r := run.get(incremental.EVALUATION)) is not None}
    if not found:
        return []
    fig, ax = figure(7, 4.5)
    for label, (result, colour) in found.items():
        ks = [s.k for s in result.stages]
        ax.plot(ks, [100 * (s.tuned.test.avg_normalized or 0) for s in result.stages], marker="o", label=f"{label}, tuned α", color=colour)
        ax.plot(ks, [100 * (s.one_shot.test.avg_normalized or 0) for s in result.stages], linestyle="--", color=colour, alpha=0.7)
    ax.set_xlabel("tasks learned so far (k)")
    ax.set_ylabel("normalised test accuracy (%)")
    ax.set_title("Incremental addition (solid: tuned α, dashed: α = 1)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return [save(fig, folder / "incremental.png")]


def claims(runs: Runs) -> list[Claim]:
    text = f"incremental τJp stays within {100 * CLOSE:.0f} points of full-knowledge τJp and at or above linear FT at every stage (normalised tuned test accuracy)"
    names = {"incremental": find_run(runs, PAPER.tau_jp_incremental), "τJp": find_run(runs, PAPER.tau_jp), "linear FT": find_run(runs, PAPER.linear)}
    results = {k: runs[n].get(incremental.EVALUATION) if n else None for k, n in names.items()}
    missing = [k for k, r in results.items() if r is None]
    if missing:
        return [Claim(text, "incremental", MISSING, f"missing incremental results for: {', '.join(missing)}")] if names["incremental"] else []
    curves = {k: [s.tuned.test.avg_normalized for s in r.stages] for k, r in results.items()}  # type: ignore[union-attr]
    stages = min(len(c) for c in curves.values())
    if any(v is None for c in curves.values() for v in c[:stages]):
        return [Claim(text, "incremental", MISSING, "normalised accuracy is undefined at some stage (a fine-tuned accuracy of 0)")]
    close = all(abs(curves["incremental"][i] - curves["τJp"][i]) <= CLOSE for i in range(stages))  # type: ignore[operator]
    above = all(curves["incremental"][i] >= curves["linear FT"][i] for i in range(stages))  # type: ignore[operator]
    details = "; ".join(f"k={i + 1}: " + ", ".join(f"{k} {100 * c[i]:.1f}" for k, c in curves.items()) for i in range(stages))  # type: ignore[operator]
    return [Claim(text, "incremental", HOLDS if close and above else FAILS, details, {k: c[:stages] for k, c in curves.items()})]


ANALYSIS = Analysis("incremental", plots=plots, claims=claims)
