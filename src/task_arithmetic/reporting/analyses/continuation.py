"""The paper's fourth experiment: tau-Jp switched on from existing fine-tuned models (recipe
tau_jp_from, or tau_jp_from@TAG on imported ones). Each continued run is compared with the runs it
continued (the `init_from` its training recorded): addition and negation before and after, and
the compute the continuation spent beside the original fine-tuning's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...evaluation import addition, negation
from ...io import metadata_path, read_json
from ..claims import FAILS, HOLDS, MISSING, Claim
from ..table import RunResults, Table, pct_cell
from .base import Analysis, Runs


def _source(run: RunResults) -> str | None:
    """The run folder every task's run continued, if they all continued one."""
    vectors = run.settings.get("vectors") or {}
    sources = {Path(v["config"]["init_from"]).parent.name for v in vectors.values() if (v.get("config") or {}).get("init_from")}
    return sources.pop() if len(sources) == 1 and len(vectors) == sum(1 for v in vectors.values() if (v.get("config") or {}).get("init_from")) else None


def pairs(runs: Runs) -> list[tuple[str, str]]:
    """(source run, continued run) results folders present in the report."""
    out = []
    for name, run in runs.items():
        source = _source(run)
        if source is not None and source in runs:
            out.append((source, name))
    return out


def compute(run: RunResults) -> dict[str, float]:
    """Steps and seconds of a run's fine-tuning over its tasks (from each run's recorded cost)."""
    steps = seconds = 0.0
    for vector in (run.settings.get("vectors") or {}).values():
        meta = read_json(metadata_path(Path(vector["path"]))) if metadata_path(Path(vector["path"])).is_file() else {}
        cost = meta.get("cost") or {}
        steps += float(meta.get("steps") or 0)
        seconds += float(meta.get("steps") or 0) * float(cost.get("seconds_per_step") or 0) + float(cost.get("setup_seconds") or 0)
    return {"steps": steps, "seconds": seconds}


def tables(runs: Runs) -> list[Table]:
    found = pairs(runs)
    if not found:
        return []
    table = Table("continuation", "τJp from existing fine-tuned models: before (the runs continued) and after (test %)",
                  ["run", "addition tuned abs / norm", "addition α = 1 norm", "negation target / control", "fine-tuning steps", "seconds"])
    for source, continued in found:
        for name in (source, continued):
            run, cost = runs[name], compute(runs[name])
            added, negated = run.get(addition.EVALUATION), run.get(negation.EVALUATION)
            add_cell = "–" if added is None else f"{pct_cell(added.tuned.test.avg_accuracy)} / {pct_cell(added.tuned.test.avg_normalized)}"
            one_shot = None if added is None else pct_cell(added.one_shot.test.avg_normalized)
            neg_cell = "–" if negated is None else f"{pct_cell(negated.average.target_test)} / {pct_cell(negated.average.control_test)}"
            label = run.label if name == source else f"{run.label}, continuing {source}"
            table.rows.append([label, add_cell, one_shot, neg_cell, int(cost["steps"]), round(cost["seconds"], 1)])
    return [table]


def claims(runs: Runs) -> list[Claim]:
    text = "τJp switched on from existing fine-tuned models improves task addition (normalised tuned test accuracy after > before)"
    out = []
    for source, continued in pairs(runs):
        before, after = runs[source].get(addition.EVALUATION), runs[continued].get(addition.EVALUATION)
        scope = f"{continued} from {source}"
        if before is None or after is None or before.tuned.test.avg_normalized is None or after.tuned.test.avg_normalized is None:
            out.append(Claim(text, scope, MISSING, "needs addition results (with normalised accuracy) of both runs"))
            continue
        b, a = before.tuned.test.avg_normalized, after.tuned.test.avg_normalized
        numbers: dict[str, Any] = {"before": b, "after": a, "extra_steps": compute(runs[continued])["steps"]}
        out.append(Claim(text, scope, HOLDS if a > b else FAILS, f"before {100 * b:.1f}%, after {100 * a:.1f}%", numbers))
    return out


ANALYSIS = Analysis("continuation", tables=tables, claims=claims)
