"""The paper's qualitative claims, checked against our numbers.

Each claim is stated with fixed, pre-declared criteria (never tuned to an outcome) and reported
as "holds", "does not hold" or "not evaluated" (a run or evaluation is missing), with the numbers.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Mapping

from scipy.stats import spearmanr

from ..evaluation import addition, negation, pairs, tau_jp
from ..recipes import Recipe
from ..recipes.paper import PAPER
from .table import RunResults

# |tuned - one-shot| absolute test accuracy within which "no alpha tuning is needed" (paper: 84.5 vs 84.2)
ONE_SHOT_TOLERANCE = 0.01
# control accuracies within this of each other count as "equal control accuracy"
CONTROL_TOLERANCE = 0.01
# rank correlation is called significant below this p-value
SIGNIFICANCE = 0.05
MIN_PAIRS_FOR_CORRELATION = 4

HOLDS, FAILS, MISSING = "holds", "does not hold", "not evaluated"


@dataclass
class Claim:
    claim: str
    scope: str
    verdict: str
    details: str
    numbers: dict[str, Any] = field(default_factory=dict)


def find_run(runs: Mapping[str, RunResults], recipe: Recipe, tag: str = "") -> str | None:
    """The results folder of `recipe` on runs tagged `tag` ("" for the study's own runs)."""
    wanted = recipe.evaluated if not tag else recipe.tagged(tag).evaluated
    return next((name for name, run in runs.items() if run.evaluated == wanted), None)


def _in_scope(scope: str, tag: str) -> str:
    return f"{scope}, runs tagged {tag}" if tag else scope


def _pct(v: float) -> str:
    return f"{100 * v:.1f}%"


def addition_ordering(runs: Mapping[str, RunResults], tag: str = "") -> list[Claim]:
    # the paper's order, best first; numbers keyed "τJp", then the baselines' recipe names
    ordered = (("τJp", PAPER.tau_jp), (PAPER.linear.name, PAPER.linear), (PAPER.standard.name, PAPER.standard))
    names = {label: find_run(runs, recipe, tag) for label, recipe in ordered}
    results = {k: runs[n].get(addition.EVALUATION) if n is not None else None for k, n in names.items()}
    claims = []
    for block, measure in itertools.product(("tuned", "one_shot"), ("avg_accuracy", "avg_normalized")):
        scope = _in_scope(f"addition, {block.replace('_', '-')} alpha, {'absolute' if measure == 'avg_accuracy' else 'normalised'}", tag)
        text = "τJp ≥ linear ≥ standard on task addition"
        missing = [k for k, r in results.items() if r is None]
        if missing:
            claims.append(Claim(text, scope, MISSING, f"missing addition results for: {', '.join(missing)}"))
            continue
        values = {k: getattr(getattr(r, block).test, measure) for k, r in results.items()}
        if any(v is None for v in values.values()):
            claims.append(Claim(text, scope, MISSING, "normalised accuracy is undefined for some run (a fine-tuned accuracy of 0)"))
            continue
        best, middle, last = (values[label] for label, _ in ordered)
        holds = best >= middle >= last
        details = " vs ".join(f"{k} {_pct(v)}" for k, v in values.items())
        claims.append(Claim(text, scope, HOLDS if holds else FAILS, details, values))
    return claims


def one_shot_is_enough(runs: Mapping[str, RunResults], tag: str = "") -> Claim:
    text = f"with τJp, one-shot alpha = 1 is (near) optimal: |tuned − one-shot| absolute test accuracy ≤ {_pct(ONE_SHOT_TOLERANCE)}"
    name = find_run(runs, PAPER.tau_jp, tag)
    result = runs[name].get(addition.EVALUATION) if name is not None else None
    if name is None or result is None:
        return Claim(text, _in_scope("addition, τJp run", tag), MISSING, "missing addition results for the τJp run")
    tuned, one_shot = result.tuned.test.avg_accuracy, result.one_shot.test.avg_accuracy
    gap = tuned - one_shot
    details = f"tuned (alpha={result.tuned.alpha:g}) {_pct(tuned)} vs one-shot {_pct(one_shot)}: gap {100 * gap:.1f} points"
    verdict = HOLDS if abs(gap) <= ONE_SHOT_TOLERANCE else FAILS
    return Claim(text, f"addition, {name}", verdict, details, {"tuned": tuned, "one_shot": one_shot, "chosen_alpha": result.tuned.alpha})


def negation_lower_target(runs: Mapping[str, RunResults], tag: str = "") -> Claim:
    text = (
        "τJp lowers negation target accuracy at equal control accuracy "
        f"(lowest target, control within {_pct(CONTROL_TOLERANCE)} of the others or higher)"
    )
    found = {name: runs[name].get(negation.EVALUATION) for r in (PAPER.tau_jp, PAPER.linear, PAPER.standard) if (name := find_run(runs, r, tag)) is not None}
    results = {name: r for name, r in found.items() if r is not None}
    taujp = find_run(runs, PAPER.tau_jp, tag)
    others = [n for n in results if n != taujp]
    if taujp is None or taujp not in results or not others:
        return Claim(text, _in_scope("negation", tag), MISSING, "needs negation results of the τJp run and of linear and/or standard")
    compared = [taujp, *others]
    solved = set.intersection(*(set(results[n].average.targets_solved) for n in compared))
    if not solved:
        return Claim(text, _in_scope("negation", tag), MISSING, "no target has an admissible alpha in every compared run")
    numbers = {}
    for name in compared:
        targets = results[name].targets
        numbers[name] = {
            "target": sum((targets[t].test.target for t in solved), 0.0) / len(solved),  # type: ignore[union-attr]
            "control": sum((targets[t].test.control for t in solved), 0.0) / len(solved),  # type: ignore[union-attr]
        }
    lowest = all(numbers[taujp]["target"] < numbers[o]["target"] for o in others)
    control_ok = all(numbers[taujp]["control"] >= numbers[o]["control"] - CONTROL_TOLERANCE for o in others)
    details = "; ".join(f"{n}: target {_pct(v['target'])}, control {_pct(v['control'])}" for n, v in numbers.items())
    details += f" (over the {len(solved)} targets with an admissible alpha in every run)"
    return Claim(text, _in_scope("negation", tag), HOLDS if lowest and control_ok else FAILS, details, numbers)


def _pair_points(run: RunResults) -> list[tuple[str, float, float]] | None:
    """(pair, off-diagonal tau-Jp, interference) of every pair both evaluations cover."""
    matrix, added = run.get(tau_jp.EVALUATION), run.get(pairs.EVALUATION)
    if matrix is None or added is None:
        return None
    points = []
    for name, pair in added.pairs.items():
        a, b = pair.tasks
        if a not in matrix.vectors or b not in matrix.vectors or a not in matrix.datasets or b not in matrix.datasets:
            continue
        cross = 0.5 * (matrix.entry(a, b) + matrix.entry(b, a))
        normalized = pair.one_shot.test.avg_normalized
        if normalized is not None:
            points.append((name, cross, 1.0 - normalized))
    return points


def tau_jp_tracks_interference(runs: Mapping[str, RunResults]) -> list[Claim]:
    text = (
        "low off-diagonal τJp goes with low interference: Spearman rank correlation > 0 (p < 0.05) between a pair's "
        "off-diagonal τJp ((M[a][b] + M[b][a]) / 2) and its interference (1 − normalised test accuracy of the pair at alpha = 1)"
    )
    claims, pooled = [], []
    for name, run in runs.items():
        points = _pair_points(run)
        if points is None:
            continue
        pooled += points
        claims.append(_correlation_claim(text, f"pairs of {name}", points))
    if len({n for n, r in runs.items() if _pair_points(r)}) >= 2:
        claims.append(_correlation_claim(text, "pairs of all runs pooled", pooled))
    if not claims:
        claims.append(Claim(text, "pairs", MISSING, "needs tau_jp and pairs results of the same run"))
    return claims


def _correlation_claim(text: str, scope: str, points: list[tuple[str, float, float]]) -> Claim:
    if len(points) < MIN_PAIRS_FOR_CORRELATION:
        return Claim(text, scope, MISSING, f"only {len(points)} pairs; at least {MIN_PAIRS_FOR_CORRELATION} are needed")
    xs, ys = [p[1] for p in points], [p[2] for p in points]
    if len(set(xs)) < 2 or len(set(ys)) < 2:
        return Claim(text, scope, FAILS, "one of the two quantities is constant over the pairs; no rank correlation")
    rho, p_value = spearmanr(xs, ys)
    rho, p_value = float(rho), float(p_value)
    verdict = HOLDS if rho > 0 and p_value < SIGNIFICANCE else FAILS
    return Claim(text, scope, verdict, f"Spearman rho = {rho:.3f}, p = {p_value:.3g}, {len(points)} pairs", {"rho": rho, "p": p_value, "pairs": len(points)})


def tags(runs: Mapping[str, RunResults]) -> list[str]:
    """The run tags the paper's comparisons apply to ("" first: the study's own runs): those holding
    at least two of its standard, linear and tau-Jp recipes (e.g. imported runs tagged public;
    not an experiment's own tag such as a sweep point's)."""
    found = {r.evaluated.run.tag for r in runs.values() if r.evaluated is not None}
    compared = [t for t in found if sum(find_run(runs, recipe, t) is not None for recipe in (PAPER.standard, PAPER.linear, PAPER.tau_jp)) >= 2]
    return sorted(compared, key=lambda t: (t != "", t))


def paper_claims(runs: Mapping[str, RunResults]) -> list[Claim]:
    out: list[Claim] = []
    for tag in tags(runs) or [""]:
        out += [*addition_ordering(runs, tag), one_shot_is_enough(runs, tag), negation_lower_target(runs, tag)]
    return out + tau_jp_tracks_interference(runs)
