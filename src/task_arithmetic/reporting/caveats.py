"""What a reader must know before trusting the report's numbers: a smoke run, capped evaluation
sets or fine-tuning, and what a normalised accuracy above 100 % means."""

from __future__ import annotations

from typing import Any, Mapping

from .table import RunResults


def _settings(runs: Mapping[str, RunResults]) -> list[dict[str, Any]]:
    return [p.get("settings", {}) for run in runs.values() for p in run.payloads.values()]


def _config_values(runs: Mapping[str, RunResults], key: str) -> set[Any]:
    return {(v.get("config") or {}).get(key) for s in _settings(runs) for v in (s.get("vectors") or {}).values()} - {None}


def smoke_weight_tags() -> set[str]:
    """The weight tags of the embedded benchmark's smoke preset (a pipeline test, not a study)."""
    from ..embedded.presets import PRESETS

    return {p.weight_tag for name, p in PRESETS.items() if name == "smoke"}


def caveat_lines(runs: Mapping[str, RunResults]) -> list[str]:
    settings = _settings(runs)
    lines = []
    if {s.get("pretrained") for s in settings} & smoke_weight_tags():
        lines.append("- **Smoke run.** These results come from the embedded benchmark's smoke preset (a tiny pretraining, "
                     "a few fine-tuning steps, small evaluation sets): it tests the pipeline; its numbers are not results.")
    caps = sorted({cap for s in settings if (cap := s.get("max_eval_samples")) is not None})
    if caps:
        lines.append(f"- **Capped evaluation.** Every Val/test set was cut to a fixed random subset of at most {', '.join(map(str, caps))} examples "
                     "(--max-eval-samples): accuracies are noisier estimates and do not compare with full-set numbers.")
    steps = sorted(_config_values(runs, "max_steps"))
    if steps:
        lines.append(f"- **Capped fine-tuning.** Runs stopped after {', '.join(map(str, steps))} optimiser steps (--max-steps), "
                     "not the recipe's epochs: task vectors are shorter than in the paper's protocol.")
    samples = sorted(_config_values(runs, "max_train_samples"))
    if samples:
        lines.append(f"- **Subsampled training.** Runs trained on at most {', '.join(map(str, samples))} examples of each train split (--max-train-samples).")
    return ["## Caveats", "", *lines, ""] if lines else []


def normalised_note(rows: list[dict[str, Any]]) -> list[str]:
    """Normalised accuracy above 100 % is a measurement, not an error: say so, with where it happens."""
    above = [r for r in rows if r["metric"] == "normalized_accuracy" and r["value"] > 1.0 and r["split"] == "test"]
    if not above:
        return []
    examples = "; ".join(f"{r['run']} {r['evaluation']} {r['point']} {r['task'] or 'average'} {100 * r['value']:.1f} %" for r in above[:4])
    return [
        "**Normalised accuracy above 100 %.** Normalised accuracy is the edited model's accuracy on a task divided by that "
        "task's own fine-tuned model's accuracy (same recipe, same split). It exceeds 100 % where the edit beats the "
        f"single-task model on that task ({len(above)} test numbers here, e.g. {examples}): other tasks' vectors can help, "
        "a coefficient below 1 can undo some over-fitting, and on small or capped test sets one or two images move it by "
        "a point. These are measured values, not errors; averages include them as they are.",
        "",
    ]
