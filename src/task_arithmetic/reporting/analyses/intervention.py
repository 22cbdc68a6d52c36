"""tau-Jp -> interference as an intervention, not a correlation (recipe tau_jp_paired).

Each task is regularised against exactly one partner task (recipes/tau_jp.py, pairing: a fixed
shuffled pairing), so the tau-Jp of the partner pairs is penalised and that of every other pair is
not. For every pair (a, b), the off-diagonal tau-Jp ((M[a][b] + M[b][a]) / 2) and the interference
(1 - normalised test accuracy of the pair at alpha = 1) of the paired runs are compared with those
of plain linear fine-tuning, pair by pair (the difference, paired - linear); then the differences of
the penalised pairs are compared with those of the other pairs, one-sided Mann-Whitney U. If
penalising tau-Jp causes less interference, the penalised pairs' interference drops more; the
penalty's general effect (every task's tau shrinks a little) moves both groups alike. The tau-Jp
comparison checks that the intervention took hold; the interference comparison is the claim.
"""

from __future__ import annotations

from typing import Any

from scipy.stats import mannwhitneyu

from ...evaluation import pairs, tau_jp
from ...recipes.paper import PAPER
from ..claims import FAILS, HOLDS, MISSING, SIGNIFICANCE, Claim, find_run
from ..table import RunResults, Table
from .base import Analysis, Runs

MIN_GROUP = 2  # pairs per group for a test at all


def partners(run: RunResults) -> set[frozenset[str]]:
    """The pairs whose tau-Jp the run's training penalised (each task against the other), from
    the penalty tasks its training recorded."""
    penalty = {task: set((v.get("config") or {}).get("penalty_tasks") or ()) for task, v in (run.settings.get("vectors") or {}).items()}
    return {frozenset((a, b)) for a in penalty for b in penalty[a] if b in penalty and a in penalty[b]}


def per_pair(run: RunResults) -> dict[frozenset[str], tuple[str, float, float]] | None:
    """pair -> (its name, off-diagonal tau-Jp, interference)."""
    matrix, added = run.get(tau_jp.EVALUATION), run.get(pairs.EVALUATION)
    if matrix is None or added is None:
        return None
    out = {}
    for name, pair in added.pairs.items():
        a, b = pair.tasks
        normalized = pair.one_shot.test.avg_normalized
        if normalized is not None and {a, b} <= set(matrix.vectors) and {a, b} <= set(matrix.datasets):
            out[frozenset((a, b))] = (name, 0.5 * (matrix.entry(a, b) + matrix.entry(b, a)), 1.0 - normalized)
    return out


def comparison(runs: Runs) -> dict[str, Any] | None:
    paired_name, linear_name = find_run(runs, PAPER.tau_jp_paired), find_run(runs, PAPER.linear)
    if paired_name is None or linear_name is None:
        return None
    paired, linear = per_pair(runs[paired_name]), per_pair(runs[linear_name])
    if paired is None or linear is None:
        return None
    penalised = partners(runs[paired_name])
    rows = []
    for key in sorted(set(paired) & set(linear), key=lambda k: paired[k][0]):
        name, tau_p, inter_p = paired[key]
        _, tau_l, inter_l = linear[key]
        rows.append({"pair": name, "penalised": key in penalised, "tau_linear": tau_l, "tau_paired": tau_p, "interference_linear": inter_l,
                     "interference_paired": inter_p, "d_tau": tau_p - tau_l, "d_interference": inter_p - inter_l})
    return {"paired": paired_name, "baseline": linear_name, "rows": rows}


def _test(rows: list[dict[str, Any]], key: str) -> tuple[float | None, int, int]:
    group = [r[key] for r in rows if r["penalised"]]
    rest = [r[key] for r in rows if not r["penalised"]]
    if len(group) < MIN_GROUP or len(rest) < MIN_GROUP:
        return None, len(group), len(rest)
    return float(mannwhitneyu(group, rest, alternative="less").pvalue), len(group), len(rest)


def tables(runs: Runs) -> list[Table]:
    found = comparison(runs)
    if found is None:
        return []
    table = Table("intervention", f"τJp intervention: {found['paired']} against {found['baseline']}, per pair (Δ = paired − linear)",
                  ["pair", "penalised", "τJp linear", "τJp paired", "Δ τJp", "interference linear %", "interference paired %", "Δ interference (points)"],
                  float_format="{:.4g}")
    for r in found["rows"]:
        table.rows.append([r["pair"], "yes" if r["penalised"] else "no", r["tau_linear"], r["tau_paired"], r["d_tau"],
                           round(100 * r["interference_linear"], 2), round(100 * r["interference_paired"], 2), round(100 * r["d_interference"], 2)])
    return [table]


def claims(runs: Runs) -> list[Claim]:
    found = comparison(runs)
    if found is None:
        return []
    out = []
    for key, what in (("d_tau", "off-diagonal τJp (the intervention took hold)"), ("d_interference", "interference (τJp causes interference)")):
        text = f"penalising a pair's τJp lowers its {what} more than other pairs': one-sided Mann-Whitney U on the paired − linear differences, p < {SIGNIFICANCE}"
        p, n_pen, n_rest = _test(found["rows"], key)
        if p is None:
            out.append(Claim(text, "intervention", MISSING, f"{n_pen} penalised and {n_rest} other pairs; at least {MIN_GROUP} each are needed"))
            continue
        medians = {g: sorted(r[key] for r in found["rows"] if r["penalised"] == g) for g in (True, False)}
        median = {g: v[len(v) // 2] for g, v in medians.items()}
        details = f"median Δ: penalised {median[True]:.4g} ({n_pen} pairs), others {median[False]:.4g} ({n_rest} pairs); p = {p:.3g}"
        out.append(Claim(text, "intervention", HOLDS if p < SIGNIFICANCE else FAILS, details, {"p": p, "penalised": n_pen, "others": n_rest}))
    return out


ANALYSIS = Analysis("intervention", tables=tables, claims=claims)
