"""Merging method x fine-tuning recipe: every merging method on every recipe's task vectors.

For each recipe (standard, post-hoc, linear, linear + tau-Jp) the fine-tuned runs form a
RunModelPool (linear and post-hoc runs are evaluated linearised, as everywhere in the suite).
Methods with a coefficient are merged at its two ends and c is chosen on the Val parts exactly as
task addition chooses alpha: the grid point with the best average normalised Val accuracy (ties keep
the smaller c); the test sets are evaluated once at that c. Most are theta_0 + c * M (task
arithmetic, TIES, DARE, TSV-M, Iso-C/CTS, MagMax, WUDI, Consensus TA), linear in c; LiNeS's depth
slope beta and CART's lambda move from another origin (beta = 0, resp. the weight average), still
linearly. Simple averaging, RegMean, RegMean++ and Fisher merging (fed each task's Val inputs) and
AdaMerging (which learns its own coefficients on the unlabeled test inputs) have no coefficient.
Normalised accuracy = accuracy / the task's own fine-tuned model's accuracy (same recipe, same split).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..merging.adamerging import LayerWiseAdaMergingAlgorithm, TaskWiseAdaMergingAlgorithm
from ..merging.base import MergeAlgorithm, write_back
from ..merging.cart import CARTMerging
from ..merging.dare import DareAlgorithm
from ..merging.fisher_merging import FisherMergingForCLIPVisionModel
from ..merging.isotropic import ISO_C_Merge, ISO_CTS_Merge
from ..merging.lines import LiNeSAlgorithm
from ..merging.magmax import MagMaxAlgorithm
from ..merging.modelpool.runs import RunModelPool
from ..merging.regmean import RegMeanAlgorithmForCLIP
from ..merging.regmean_plusplus import RegMeanAlgorithmForCLIPPlusPlus
from ..merging.simple_average import SimpleAverageAlgorithm
from ..merging.tall_mask import ConsensusTaskArithmeticAlgorithm
from ..merging.task_arithmetic import TaskArithmeticAlgorithm
from ..merging.task_singular_vector import TaskSingularVectorMerging
from ..merging.taskpool.classification import ClassificationTaskPool
from ..merging.wudi import WUDIMerging
from ..models.factory import ModelSpec
from ..paths import Layout
from ..reporting.table import RunResults, Table, describe, pct_cell, with_results
from ..vectors.runs import RunRecipe
from .addition import summarize
from .selection import alpha_grid, best_index
from .spec import Evaluation, add_alpha_step, pct, positive_int

# Data-based merges read this many examples of each task's Val part (FusionBench's default).
DATA_EXAMPLES = 256


@dataclass(frozen=True)
class MergingMethod:
    name: str
    build: Callable[[int], MergeAlgorithm]  # adamerging_steps -> the algorithm (coefficient 1 where it has one)
    scaled: bool  # origin + c * (M - origin) with c chosen on Val
    origin: Callable[[int], MergeAlgorithm] | None = None  # the c = 0 end when it is not theta_0
    span: float = 1.0  # the coefficient grid is the addition grid times this
    reads: str = "test"  # the task pool attach_taskpool gives it: AdaMerging the test inputs, data-based merges Val


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
    MergingMethod("regmean", lambda steps: RegMeanAlgorithmForCLIP(num_regmean_examples=DATA_EXAMPLES, split="val"), False, reads="val"),
    MergingMethod("regmean_plusplus", lambda steps: RegMeanAlgorithmForCLIPPlusPlus(num_regmean_examples=DATA_EXAMPLES, split="val"), False, reads="val"),
    MergingMethod("fisher_merging", lambda steps: FisherMergingForCLIPVisionModel(num_fisher_examples=DATA_EXAMPLES, split="val"), False, reads="val"),
    MergingMethod("adamerging_task_wise", lambda steps: TaskWiseAdaMergingAlgorithm(max_steps=steps), False),
    MergingMethod("adamerging_layer_wise", lambda steps: LayerWiseAdaMergingAlgorithm(max_steps=steps), False),
)


def _ties() -> MergeAlgorithm:
    from ..merging.ties_merging import TiesMergingAlgorithm

    return TiesMergingAlgorithm(scaling_factor=1.0, threshold=20, merge_func="mean")


def scaled(origin: nn.Module, merged: nn.Module, coefficient: float) -> nn.Module:
    """origin + c * (merged - origin) for the float entries (origin: theta_0 or the method's c = 0
    merge); others are the origin's."""
    out = _copy(origin)
    base = origin.state_dict()
    write_back(out, {k: base[k] + coefficient * (v - base[k]) for k, v in merged.state_dict().items() if v.is_floating_point()})
    return out


def _copy(module: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(module)


def evaluate_merging(
    spec: ModelSpec,
    layout: Layout,
    data_location: Path,
    recipe: RunRecipe,
    tasks: Sequence[str],
    alphas: Sequence[float],
    device: str = "cpu",
    max_samples: int | None = None,
    adamerging_steps: int = 100,
    methods: Sequence[MergingMethod] = METHODS,
) -> dict[str, Any]:
    tasks = list(tasks)
    pool = RunModelPool(spec.name, tasks, pretrained=spec.pretrained, mode=recipe.mode, reg=recipe.reg, variant=recipe.variant, tag=recipe.tag, cache_dir=spec.cache_dir, checkpoint_root=layout.checkpoint_root)
    pool.check_available()
    taskpools = {
        split: ClassificationTaskPool(tasks, spec.name, spec.pretrained, spec.cache_dir, split=split, data_location=data_location, checkpoint_root=layout.checkpoint_root, device=device, max_samples=max_samples)
        for split in ("val", "test")
    }

    def accuracies(model: nn.Module, split: str) -> dict[str, float]:
        results = taskpools[split].evaluate(pool.evaluation_model(model))
        return {t: results[t]["accuracy"] for t in tasks}

    finetuned = {split: {t: _single(pool, taskpools[split], t) for t in tasks} for split in ("val", "test")}
    theta0 = pool.load_pretrained_model()
    out: dict[str, Any] = {"tasks": tasks, "alphas": list(alphas), "finetuned": finetuned, "adamerging_steps": adamerging_steps, "methods": {}}
    for method in methods:
        algorithm = method.build(adamerging_steps)
        algorithm.attach_taskpool(taskpools[method.reads])
        merged = algorithm.run(pool)
        row: dict[str, Any] = {"settings": {k: v for k, v in algorithm.settings().items() if not isinstance(v, (list, dict))}}
        if method.scaled:
            origin = theta0 if method.origin is None else method.origin(adamerging_steps).run(pool)
            grid = [a * method.span for a in alphas]
            curve = [summarize(accuracies(scaled(origin, merged, c), "val"), finetuned["val"]) for c in grid]
            chosen = best_index(grid, [c["avg_normalized"] for c in curve], maximize=True)
            coefficient = grid[chosen]
            row.update(coefficient=coefficient, val_curve=[{"alpha": c, **point} for c, point in zip(grid, curve)], val=curve[chosen])
            model = scaled(origin, merged, coefficient)
        else:
            row.update(coefficient=None, val=summarize(accuracies(merged, "val"), finetuned["val"]))
            model = merged
        row["test"] = summarize(accuracies(model, "test"), finetuned["test"])
        if getattr(algorithm, "merging_weights", None) is not None:
            row["merging_weights"] = algorithm.merging_weights
        out["methods"][method.name] = row
    return out


def _single(pool: RunModelPool, taskpool: ClassificationTaskPool, task: str) -> float:
    """The task's own fine-tuned model on its own data (the normaliser)."""
    one = ClassificationTaskPool(
        [task], taskpool.spec.name, taskpool.spec.pretrained, taskpool.spec.cache_dir, split=taskpool.split,
        data_location=taskpool.data_location, checkpoint_root=taskpool.layout.checkpoint_root, device=taskpool.device,
        max_samples=taskpool.max_samples,
    )
    with torch.no_grad():
        return one.evaluate(pool.evaluation_model(pool.load_model(task)))[task]["accuracy"]


def session_merging(session: Any, alphas: Sequence[float], adamerging_steps: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The study's evaluation (pipeline/catalog.py): the session's runs, device and sample cap."""
    selection, options = session.selection, session.options
    results = evaluate_merging(
        selection.spec, selection.layout, Path(selection.data_location), selection.recipe, selection.tasks, alphas,
        str(session.device), options.max_eval_samples, adamerging_steps,
    )
    return results, {"alphas": list(alphas), "adamerging_steps": adamerging_steps}


def _run(session: Any, args: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    return session_merging(session, alpha_grid(args.alpha_step), args.adamerging_steps)


def _add_arguments(parser: Any) -> None:
    add_alpha_step(parser)
    parser.add_argument("--adamerging-steps", type=positive_int, default=100, help="Adam steps of AdaMerging (default 100)")


def _headline(results: dict[str, Any]) -> str:
    rows = results["methods"]
    return "; ".join(f"{name} norm {pct(row['test']['avg_normalized'])}" for name, row in rows.items())


def report(runs: dict[str, RunResults]) -> list[Table]:
    """Rows: merging methods; columns: recipes; cells: test accuracy %, absolute / normalised (c)."""
    with_merging = with_results(runs, "merging")
    if not with_merging:
        return []
    methods: list[str] = []
    for run in with_merging.values():
        methods += [m for m in run.results("merging")["methods"] if m not in methods]
    table = Table("merging", "Merging method × recipe (test accuracy %, absolute / normalised; c = coefficient chosen on Val)", ["method", *[describe(n) for n in with_merging]])
    for method in methods:
        row: list[Any] = [method]
        for run in with_merging.values():
            result = run.results("merging")["methods"].get(method)
            if result is None:
                row.append(None)
                continue
            test = result["test"]
            norm = pct_cell(test["avg_normalized"])
            cell = f"{pct_cell(test['avg_accuracy']):.1f} / {'–' if norm is None else f'{norm:.1f}'}"
            row.append(cell + (f" (c={result['coefficient']:g})" if result.get("coefficient") is not None else ""))
        table.rows.append(row)
    return [table]


EVALUATION = Evaluation(
    "merging", "every merging method on this recipe's task vectors, coefficients chosen on Val; test at the chosen one",
    run=_run, headline=_headline, add_arguments=_add_arguments, report=report,
)
