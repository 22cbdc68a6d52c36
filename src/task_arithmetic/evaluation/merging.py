"""Merging method x fine-tuning recipe: every merging method on every recipe's task vectors.

For each recipe the fine-tuned runs form a RunModelPool read out as the recipe is (linear and
post-hoc runs linearised, as everywhere in the suite), and every merged model is evaluated through
the session's accuracy path (its data, heads, sample cap and readout), as addition's edits are.
Methods with a coefficient are merged at its two ends and c is chosen on the Val parts exactly as
task addition chooses alpha (addition.choose); the test sets are evaluated once at that c. Most are
theta_0 + c * M (task arithmetic, TIES, DARE, TSV-M, Iso-C/CTS, MagMax, WUDI, Consensus TA), linear
in c; LiNeS's depth slope beta and CART's lambda move from another origin (beta = 0, resp. the
weight average), still linearly. Simple averaging, RegMean, RegMean++ and Fisher merging (fed each
task's Val inputs) and AdaMerging (which learns its own coefficients on the unlabeled test inputs)
have no coefficient. Normalised accuracy = accuracy / the task's own fine-tuned model's accuracy
(same recipe, same split).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

from ..flags import positive_int
from ..lazy import deferred
from ..reporting.table import RunResults, Table, pct_cell
from .addition import CurvePoint, Scores, choose, curve_rows, score_rows, summarize
from .selection import alpha_grid
from .spec import Evaluation, Row, alpha_step_param, param, pct

if TYPE_CHECKING:  # the session imports torch: the registry is read by every script's --help
    from torch import nn

    from ..merging.base import MergeAlgorithm
    from .session import EvalSession

# The algorithms' modules import torch: each is imported when a merge first builds it.
_MERGING = "task_arithmetic.merging"
TaskArithmeticAlgorithm = deferred(f"{_MERGING}.task_arithmetic", "TaskArithmeticAlgorithm")
DareAlgorithm = deferred(f"{_MERGING}.dare", "DareAlgorithm")
TaskSingularVectorMerging = deferred(f"{_MERGING}.task_singular_vector", "TaskSingularVectorMerging")
ISO_C_Merge = deferred(f"{_MERGING}.isotropic", "ISO_C_Merge")
ISO_CTS_Merge = deferred(f"{_MERGING}.isotropic", "ISO_CTS_Merge")
SimpleAverageAlgorithm = deferred(f"{_MERGING}.simple_average", "SimpleAverageAlgorithm")
TaskWiseAdaMergingAlgorithm = deferred(f"{_MERGING}.adamerging", "TaskWiseAdaMergingAlgorithm")
LayerWiseAdaMergingAlgorithm = deferred(f"{_MERGING}.adamerging", "LayerWiseAdaMergingAlgorithm")
MagMaxAlgorithm = deferred(f"{_MERGING}.magmax", "MagMaxAlgorithm")
ConsensusTaskArithmeticAlgorithm = deferred(f"{_MERGING}.tall_mask", "ConsensusTaskArithmeticAlgorithm")
WUDIMerging = deferred(f"{_MERGING}.wudi", "WUDIMerging")
LiNeSAlgorithm = deferred(f"{_MERGING}.lines", "LiNeSAlgorithm")
CARTMerging = deferred(f"{_MERGING}.cart", "CARTMerging")
RegMeanAlgorithmForCLIP = deferred(f"{_MERGING}.regmean", "RegMeanAlgorithmForCLIP")
RegMeanAlgorithmForCLIPPlusPlus = deferred(f"{_MERGING}.regmean_plusplus", "RegMeanAlgorithmForCLIPPlusPlus")
FisherMergingForCLIPVisionModel = deferred(f"{_MERGING}.fisher_merging", "FisherMergingForCLIPVisionModel")

# Data-based merges read this many examples of each task's Val part (FusionBench's default).
DATA_EXAMPLES = 256


@dataclass(frozen=True)
class MergingParams:
    alpha_step: float = alpha_step_param()
    adamerging_steps: int = param(100, "Adam steps of AdaMerging (FusionBench: 1000)", positive_int, study=True)


@dataclass(frozen=True)
class MethodResult:
    settings: dict[str, Any]
    coefficient: float | None  # chosen on Val; None for methods without one
    selected_on: str | None  # what chose it: avg_normalized, or avg_accuracy where every fine-tuned Val accuracy is 0
    val_curve: list[CurvePoint] | None
    val: Scores
    test: Scores
    merging_weights: Any = None  # AdaMerging's learned coefficients


@dataclass(frozen=True)
class MergingResult:
    SCHEMA: ClassVar[int] = 2
    tasks: list[str]
    alphas: list[float]
    finetuned: dict[str, dict[str, float]]  # split -> task -> the normaliser
    adamerging_steps: int
    methods: dict[str, MethodResult]


@dataclass(frozen=True)
class MergingMethod:
    name: str
    build: Callable[[int], MergeAlgorithm]  # adamerging_steps -> the algorithm (coefficient 1 where it has one)
    scaled: bool  # origin + c * (M - origin) with c chosen on Val
    origin: Callable[[int], MergeAlgorithm] | None = None  # the c = 0 end when it is not theta_0
    span: float = 1.0  # the coefficient grid is the addition grid times this


METHODS: tuple[MergingMethod, ...] = (
    MergingMethod("task_arithmetic", lambda steps: TaskArithmeticAlgorithm(scaling_factor=1.0), True),
    MergingMethod("ties_merging", lambda steps: _ties(), True),
    MergingMethod("dare_task_arithmetic", lambda steps: DareAlgorithm(scaling_factor=1.0, sparsity_ratio=0.5, seed=0), True),
    MergingMethod("tsv_m", lambda steps: TaskSingularVectorMerging(alpha=1.0), True),
    MergingMethod("iso_c", lambda steps: ISO_C_Merge(scaling_factor=1.0), True),
    MergingMethod("iso_cts", lambda steps: ISO_CTS_Merge(scaling_factor=1.0), True),
    MergingMethod("magmax", lambda steps: MagMaxAlgorithm(scaling_factor=1.0), True),
    MergingMethod("consensus_task_arithmetic", lambda steps: ConsensusTaskArithmeticAlgorithm(scaling_factor=1.0, prun_thre_k=2, tall_mask_lambda=0.6), True),
    # WUDI as FusionBench runs it is c = 1; c on Val as for every other theta_0 + c * M method.
    MergingMethod("wudi", lambda steps: WUDIMerging(iter_num=400), True),
    MergingMethod("lines_task_arithmetic", lambda steps: LiNeSAlgorithm(beta=1.0), True, origin=lambda steps: LiNeSAlgorithm(beta=0.0)),
    MergingMethod("cart", lambda steps: CARTMerging(scaling_factor=1.0, rank_ratio=0.08), True, origin=lambda steps: CARTMerging(scaling_factor=0.0), span=2.0),
    MergingMethod("simple_average", lambda steps: SimpleAverageAlgorithm(), False),
    MergingMethod("regmean", lambda steps: RegMeanAlgorithmForCLIP(num_regmean_examples=DATA_EXAMPLES, split="val"), False),
    MergingMethod("regmean_plusplus", lambda steps: RegMeanAlgorithmForCLIPPlusPlus(num_regmean_examples=DATA_EXAMPLES, split="val"), False),
    MergingMethod("fisher_merging", lambda steps: FisherMergingForCLIPVisionModel(num_fisher_examples=DATA_EXAMPLES, split="val"), False),
    MergingMethod("adamerging_task_wise", lambda steps: TaskWiseAdaMergingAlgorithm(max_steps=steps), False),
    MergingMethod("adamerging_layer_wise", lambda steps: LayerWiseAdaMergingAlgorithm(max_steps=steps), False),
)


def _ties() -> MergeAlgorithm:
    from ..merging.ties_merging import TiesMergingAlgorithm

    return TiesMergingAlgorithm(scaling_factor=1.0, threshold=20, merge_func="mean")


def scaled(origin: nn.Module, merged: nn.Module, coefficient: float) -> nn.Module:
    """origin + c * (merged - origin) for the float entries (origin: theta_0 or the method's c = 0
    merge); others are the origin's."""
    from ..merging.base import write_back

    out = copy.deepcopy(origin)
    base = origin.state_dict()
    write_back(out, {k: base[k] + coefficient * (v - base[k]) for k, v in merged.state_dict().items() if v.is_floating_point()})
    return out


def evaluate_merging(session: EvalSession, alphas: Sequence[float], adamerging_steps: int = 100, methods: Sequence[MergingMethod] = METHODS) -> MergingResult:
    tasks = list(session.tasks)
    pool = session.model_pool()

    def accuracies(model: nn.Module, split: str) -> dict[str, float]:
        return {t: session.model_accuracy(model, t, split) for t in tasks}

    finetuned = {split: {t: session.finetuned_accuracy(t, split) for t in tasks} for split in ("val", "test")}
    theta0 = pool.load_pretrained_model()
    rows: dict[str, MethodResult] = {}
    for method in methods:
        algorithm = method.build(adamerging_steps)
        algorithm.attach_taskpool(session)  # AdaMerging: the unlabeled test inputs, as in the paper; data-based merges: Val
        merged = algorithm.run(pool)
        settings = {k: v for k, v in algorithm.settings().items() if not isinstance(v, (list, dict))}
        weights = getattr(algorithm, "merging_weights", None)
        if method.scaled:
            origin = theta0 if method.origin is None else method.origin(adamerging_steps).run(pool)
            grid = [a * method.span for a in alphas]
            curve = []
            for c in grid:
                s = summarize(accuracies(scaled(origin, merged, c), "val"), finetuned["val"])
                curve.append(CurvePoint(s.per_task, s.per_task_normalized, s.avg_accuracy, s.avg_normalized, c))
            chosen, selected_on = choose(grid, curve)  # as addition: normalised Val accuracy, else absolute
            coefficient = grid[chosen]
            test = summarize(accuracies(scaled(origin, merged, coefficient), "test"), finetuned["test"])
            rows[method.name] = MethodResult(settings, coefficient, selected_on, curve, curve[chosen], test, weights)
        else:
            val = summarize(accuracies(merged, "val"), finetuned["val"])
            rows[method.name] = MethodResult(settings, None, None, None, val, summarize(accuracies(merged, "test"), finetuned["test"]), weights)
    return MergingResult(tasks, list(alphas), finetuned, adamerging_steps, rows)


def _run(session: EvalSession, params: MergingParams) -> MergingResult:
    return evaluate_merging(session, alpha_grid(params.alpha_step), params.adamerging_steps)


def _headline(r: MergingResult) -> str:
    return "; ".join(f"{name} norm {pct(row.test.avg_normalized)}" for name, row in r.methods.items())


def report(runs: Mapping[str, RunResults]) -> list[Table]:
    """Rows: merging methods; columns: recipes; cells: test accuracy %, absolute / normalised (c)."""
    found = {name: r for name, run in runs.items() if (r := run.get(EVALUATION)) is not None}
    if not found:
        return []
    methods: list[str] = []
    for result in found.values():
        methods += [m for m in result.methods if m not in methods]
    table = Table("merging", "Merging method × recipe (test accuracy %, absolute / normalised; c = coefficient chosen on Val)",
                  ["method", *[runs[n].label for n in found]])
    for method in methods:
        row: list[Any] = [method]
        for result in found.values():
            m = result.methods.get(method)
            if m is None:
                row.append(None)
                continue
            norm = pct_cell(m.test.avg_normalized)
            cell = f"{pct_cell(m.test.avg_accuracy):.1f} / {'–' if norm is None else f'{norm:.1f}'}"
            row.append(cell + (f" (c={m.coefficient:g})" if m.coefficient is not None else ""))
        table.rows.append(row)
    return [table]


def rows(r: MergingResult) -> list[Row]:
    """Per method (the point): Val and test scores at its coefficient, and its Val curve."""
    out = []
    for name, m in r.methods.items():
        out += score_rows(m.val, "val", name, m.coefficient) + score_rows(m.test, "test", name, m.coefficient)
        out += curve_rows(m.val_curve or [], f"{name} val_curve")
    return out + [Row("accuracy", v, t, split, "finetuned") for split, per_task in r.finetuned.items() for t, v in per_task.items()]


EVALUATION: Evaluation[MergingParams, MergingResult] = Evaluation(
    "merging", "every merging method on this recipe's task vectors, coefficients chosen on Val; test at the chosen one",
    MergingParams, MergingResult, run=_run, headline=_headline, report=report, min_tasks=2, rows=rows,
)
