"""Several seeds of one study: mean ± sd and a 95 % interval per headline number, claims as "k of n".

Each seed is a complete replicate (its own fine-tuning, and its own pretraining with
--pretrain-seeds) with its own results folder; this module only reads their evaluation results.
The interval is Student's t interval for the mean over seeds (n − 1 degrees of freedom), which
is what a handful of seeds supports; with one seed it is undefined and shown as such. Beside it,
the t prediction interval of one more run (mean ± t · sd · √(1 + 1/n)): how far a user's own
single run may fall from the mean. When the replicates cross several pretraining draws with
several fine-tuning seeds, each number's spread is also split into the sd between pretraining
draws (of the per-draw means) and the sd within a draw (fine-tuning seeds, pooled).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from scipy.stats import t as student_t

from ..evaluation import addition, negation, single_task
from .analyses import all_claims
from .claims import FAILS, HOLDS, Claim
from .table import RunResults

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Spread:
    """Mean, sample standard deviation and confidence interval of one number over seeds."""

    n: int
    mean: float
    sd: float | None  # None below two seeds
    low: float | None  # the interval of the mean
    high: float | None
    one_low: float | None = None  # the prediction interval of one more run
    one_high: float | None = None


def spread(values: Sequence[float], confidence: float = CONFIDENCE) -> Spread:
    if not values:
        raise ValueError("spread of no values")
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return Spread(n, mean, None, None, None)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    t = float(student_t.ppf(0.5 + confidence / 2, n - 1))
    half, one = t * sd / math.sqrt(n), t * sd * math.sqrt(1 + 1 / n)
    return Spread(n, mean, sd, mean - half, mean + half, mean - one, mean + one)


@dataclass(frozen=True)
class Split:
    """One number's spread split by its source: pretraining draw or fine-tuning seed."""

    between_draws: float  # sd of the per-draw means
    within_draws: float  # pooled sd over fine-tuning seeds within each draw


def split_by_draw(values: Sequence[float | None], draws: Sequence[int]) -> Split | None:
    """None unless there are at least two draws, each with at least two values."""
    groups: dict[int, list[float]] = {}
    for v, d in zip(values, draws):
        if v is not None:
            groups.setdefault(d, []).append(v)
    if len(groups) < 2 or any(len(g) < 2 for g in groups.values()):
        return None
    means = [sum(g) / len(g) for g in groups.values()]
    grand = sum(means) / len(means)
    between = math.sqrt(sum((m - grand) ** 2 for m in means) / (len(means) - 1))
    squares = sum((v - sum(g) / len(g)) ** 2 for g in groups.values() for v in g)
    within = math.sqrt(squares / sum(len(g) - 1 for g in groups.values()))
    return Split(between, within)


def headline_numbers(runs: Mapping[str, RunResults]) -> dict[str, float]:
    """The report's headline figures of one seed (fractions), keyed by a readable name."""
    out: dict[str, float] = {}
    for run in runs.values():
        label = run.label
        single = run.get(single_task.EVALUATION)
        if single is not None:
            out.setdefault("zero-shot, single-task avg", single.summary.zeroshot_test_avg)
            out[f"{label}, single-task avg"] = single.summary.finetuned_test_avg
        added = run.get(addition.EVALUATION)
        if added is not None:
            for block, title in ((added.tuned, "tuned α"), (added.one_shot, "α = 1")):
                out[f"{label}, addition {title}, absolute"] = block.test.avg_accuracy
                if block.test.avg_normalized is not None:
                    out[f"{label}, addition {title}, normalised"] = block.test.avg_normalized
            out[f"{label}, addition chosen α"] = added.tuned.alpha
        negated = run.get(negation.EVALUATION)
        if negated is not None:
            for value, title in ((negated.average.target_test, "target"), (negated.average.control_test, "control")):
                if value is not None:
                    out[f"{label}, negation {title}"] = value
    return out


@dataclass(frozen=True)
class ClaimCount:
    claim: str
    scope: str
    holds: int  # seeds in which it holds
    evaluated: int  # seeds in which it could be checked (holds or does not hold)
    seeds: int


def count_claims(per_seed: Sequence[Sequence[Claim]]) -> list[ClaimCount]:
    """Per (claim, scope), in first-seen order: in how many seeds it holds, out of those that checked it."""
    order: list[tuple[str, str]] = []
    tally: dict[tuple[str, str], list[int]] = {}
    for claims in per_seed:
        for c in claims:
            key = (c.claim, c.scope)
            if key not in tally:
                order.append(key)
                tally[key] = [0, 0]
            tally[key][0] += c.verdict == HOLDS
            tally[key][1] += c.verdict in (HOLDS, FAILS)
    return [ClaimCount(claim, scope, tally[(claim, scope)][0], tally[(claim, scope)][1], len(per_seed)) for claim, scope in order]


@dataclass(frozen=True)
class SeedsSummary:
    seeds: list[str]  # one label per replicate, e.g. "seed 1 (pretraining seed 1)"
    numbers: dict[str, Spread]
    per_seed: dict[str, list[float | None]]
    claims: list[ClaimCount]
    splits: dict[str, Split] = field(default_factory=dict)  # where several draws each have several seeds

    def to_json(self) -> dict[str, Any]:
        return {
            "seeds": self.seeds,
            "confidence": CONFIDENCE,
            "numbers": {k: {**vars(s), "values": self.per_seed[k], **({"split": vars(self.splits[k])} if k in self.splits else {})}
                        for k, s in self.numbers.items()},
            "claims": [vars(c) for c in self.claims],
        }

    def markdown(self) -> str:
        def pct(v: float | None, alpha: bool) -> str:
            return "–" if v is None else (f"{v:.2f}" if alpha else f"{100 * v:.1f}")

        lines = [
            f"# Seeds: {len(self.seeds)} replicates", "",
            "Replicates: " + "; ".join(self.seeds) + ".", "",
            f"Test accuracy % (chosen α as is): mean ± sample sd over the replicates, the {CONFIDENCE:.0%} Student-t interval of the "
            f"mean, and the {CONFIDENCE:.0%} range of one more run (where a single run of yours may fall)"
            + (", and the sd split into that between pretraining draws and that within a draw (fine-tuning seeds)." if self.splits else "."), "",
            "| number | mean ± sd | 95 % interval | one run | " + ("sd: draws / seeds | " if self.splits else "") + "per replicate |",
            "|---|---|---|---|" + ("---|" if self.splits else "") + "---|",
        ]
        for name, s in self.numbers.items():
            alpha = name.endswith("chosen α")
            sd = "" if s.sd is None else f" ± {pct(s.sd, alpha)}"
            interval = "–" if s.low is None else f"[{pct(s.low, alpha)}, {pct(s.high, alpha)}]"
            one = "–" if s.one_low is None else f"[{pct(s.one_low, alpha)}, {pct(s.one_high, alpha)}]"
            split = self.splits.get(name)
            parts = "" if not self.splits else ("– | " if split is None else f"{pct(split.between_draws, alpha)} / {pct(split.within_draws, alpha)} | ")
            values = ", ".join(pct(v, alpha) for v in self.per_seed[name])
            lines.append(f"| {name} | {pct(s.mean, alpha)}{sd} | {interval} | {one} | {parts}{values} |")
        lines += ["", "## Claims", ""]
        for c in self.claims:
            unchecked = c.seeds - c.evaluated
            note = f" (not evaluated in {unchecked})" if unchecked else ""
            lines.append(f"- holds in **{c.holds} of {c.evaluated}** seeds{note} — {c.claim} [{c.scope}]")
        return "\n".join(lines) + "\n"


def summarize_seeds(labels: Sequence[str], per_seed_runs: Sequence[Mapping[str, RunResults]], draws: Sequence[int] | None = None) -> SeedsSummary:
    """`draws`: each replicate's pretraining seed (splits the spread where several draws have several seeds)."""
    if len(labels) != len(per_seed_runs) or not labels:
        raise ValueError("one label per replicate, at least one replicate")
    numbers = [headline_numbers(runs) for runs in per_seed_runs]
    names = list(dict.fromkeys(k for seed in numbers for k in seed))
    per_seed = {k: [seed.get(k) for seed in numbers] for k in names}
    spreads = {k: spread([v for v in values if v is not None]) for k, values in per_seed.items()}
    claims = count_claims([all_claims(runs) for runs in per_seed_runs])
    splits = {k: found for k, values in per_seed.items() if draws is not None and (found := split_by_draw(values, draws)) is not None}
    return SeedsSummary(list(labels), spreads, per_seed, claims, splits)
