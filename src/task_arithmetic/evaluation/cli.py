"""Command-line front end shared by the src/eval_*.py scripts.

Every script locates runs with the same arguments as fine-tuning (model, weights, roots, mode,
regulariser, variant, tasks), runs one evaluation and writes
results/<model_id>/<run>/<evaluation>.json.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import math
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ..data.registry import get_task, parse_task_list
from ..errors import UserError
from ..models.factory import ModelSpec, parse_pretrained
from ..paths import DEFAULT_CHECKPOINT_ROOT, DEFAULT_DATA_LOCATION, DEFAULT_RESULTS_ROOT, MODES, REGULARIZERS, TAU_JP_VARIANTS, Layout, check_folder_flag
from ..vectors.runs import RunRecipe
from .addition import evaluate_addition
from .batched import DEFAULT_MEMORY_MB
from .data import EVAL_SPLITS
from .disentanglement import GRID_LIMIT, GRID_POINTS, evaluate_disentanglement
from .negation import CONTROL_RATIO, evaluate_negation
from .pairs import evaluate_pairs
from .results import results_lock, write_results
from .selection import mean, symmetric_grid
from .session import EvalOptions, EvalSession, RunSelection, default_control
from .single_task import evaluate_single_task
from .tau_jp import evaluate_tau_jp


def finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("which runs (same as fine-tuning)")
    g.add_argument("--model", default="ViT-B-32", help="open_clip architecture (default ViT-B-32)")
    g.add_argument("--pretrained", default="openai", help="weight tag, local file, or 'none' for random init (default openai)")
    g.add_argument("--cache-dir", default=None, help="open_clip weight cache folder")
    g.add_argument("--checkpoint-root", type=Path, default=DEFAULT_CHECKPOINT_ROOT)
    g.add_argument("--results-root", type=Path, default=DEFAULT_RESULTS_ROOT)
    g.add_argument("--data-location", type=Path, default=DEFAULT_DATA_LOCATION)
    g.add_argument("--mode", choices=MODES, default="standard", help="posthoc = standard runs evaluated linearised")
    g.add_argument("--reg", choices=REGULARIZERS, default="none")
    g.add_argument("--variant", choices=TAU_JP_VARIANTS, default="efficient", help="tau_jp variant (ignored for --reg none)")
    g.add_argument("--tag", default="", help="extra suffix of the run name, if fine-tuning used one")
    g.add_argument("--tasks", default="real8", help="comma list of tasks or a benchmark name (default real8)")
    e = parser.add_argument_group("evaluation")
    e.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    e.add_argument("--batch-size", type=positive_int, default=128)
    e.add_argument("--num-workers", type=int, default=2)
    e.add_argument("--max-eval-samples", type=positive_int, default=None, help="cap every Val/test set (quick runs)")
    e.add_argument("--no-cache", action="store_true", help="evaluate every edit directly (no linearity shortcut)")
    e.add_argument("--no-disk-cache", action="store_true", help="keep the tangent cache in memory only")
    e.add_argument("--threads", type=positive_int, default=1, help="CPU threads (default 1: on a shared machine 2 threads were >5x slower, see README)")
    e.add_argument("--per-edit", action="store_true", help="standard runs: one data pass per edit (the unbatched path, for comparison)")
    e.add_argument("--batch-memory-mb", type=positive_int, default=DEFAULT_MEMORY_MB, help="memory for the edits batched in one pass (standard runs)")
    e.add_argument("--vectors-per-pass", type=positive_int, default=None, help="task vectors batched in one JVP pass (memory)")


def selection_from_args(args: argparse.Namespace) -> RunSelection:
    spec = ModelSpec(args.model, parse_pretrained(args.pretrained), args.cache_dir)
    recipe = RunRecipe(args.mode, args.reg, args.variant if args.reg != "none" else "efficient", args.tag)
    tasks = tuple(parse_task_list(args.tasks))
    return RunSelection(spec, Layout(args.checkpoint_root, args.results_root), args.data_location, recipe, tasks)


def options_from_args(args: argparse.Namespace) -> EvalOptions:
    return EvalOptions(
        device=args.device,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        max_eval_samples=args.max_eval_samples,
        use_cache=not args.no_cache,
        disk_cache=not args.no_disk_cache,
        vectors_per_pass=args.vectors_per_pass,
        batched=not args.per_edit,
        batch_memory_mb=args.batch_memory_mb,
    )


# one entry per evaluation: extra arguments, and a runner returning (results, extra settings)
def _control(args: argparse.Namespace, session: EvalSession) -> str:
    control = args.control or default_control(session.tasks)
    if control is None:
        raise UserError("these tasks' benchmark has no control task; pass --control <task>")
    return get_task(control).name


def _add_negation_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--control", default=None, help="control task (default: the benchmark's, e.g. ImageNet)")
    p.add_argument("--control-ratio", type=finite_float, default=CONTROL_RATIO, help="control Val acc must stay >= ratio x zero-shot")


def _add_tau_jp_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--split", choices=EVAL_SPLITS, default="test")
    p.add_argument("--control", default=None, help="extra dataset column (default: the benchmark's control task, if any)")


def _add_disentanglement_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pairs", default=None, help="pairs as A+B,C+D, or 'all' (default: the first two tasks)")
    p.add_argument("--grid-limit", type=finite_float, default=GRID_LIMIT, help="coefficients span [-limit, limit]")
    p.add_argument("--grid-points", type=positive_int, default=GRID_POINTS)
    p.add_argument("--split", choices=EVAL_SPLITS, default="test")


def _pairs(args: argparse.Namespace, tasks: Sequence[str]) -> list[tuple[str, str]]:
    if args.pairs is None:
        if len(tasks) < 2:
            raise UserError("disentanglement needs two tasks; pass at least two in --tasks")
        return [(tasks[0], tasks[1])]
    if args.pairs == "all":
        return list(itertools.combinations(tasks, 2))
    pairs = []
    for item in args.pairs.split(","):
        names = [get_task(n.strip()).name for n in item.split("+")]
        if len(names) != 2 or any(n not in tasks for n in names):
            raise UserError(f"--pairs item '{item}' must be two of the evaluated tasks joined by '+' ({', '.join(tasks)})")
        pairs.append((names[0], names[1]))
    return pairs


def _run_single(session: EvalSession, args: argparse.Namespace):
    return evaluate_single_task(session), {}


def _run_addition(session: EvalSession, args: argparse.Namespace):
    return evaluate_addition(session), {}


def _run_negation(session: EvalSession, args: argparse.Namespace):
    control = _control(args, session)
    return evaluate_negation(session, control, ratio=args.control_ratio), {"control": control, "control_ratio": args.control_ratio}


def _run_pairs(session: EvalSession, args: argparse.Namespace):
    return evaluate_pairs(session), {}


def _run_tau_jp(session: EvalSession, args: argparse.Namespace):
    control = args.control or default_control(session.tasks)
    datasets = list(session.tasks) + ([get_task(control).name] if control else [])
    return evaluate_tau_jp(session, datasets, args.split), {"split": args.split, "datasets": datasets}


def _run_disentanglement(session: EvalSession, args: argparse.Namespace):
    alphas = symmetric_grid(args.grid_limit, args.grid_points)
    pairs = _pairs(args, session.tasks)
    return evaluate_disentanglement(session, pairs, alphas, args.split), {"pairs": pairs, "alphas": list(alphas), "split": args.split}


COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None] | None, Callable[[EvalSession, argparse.Namespace], tuple[dict, dict]]]] = {
    "single_task": (None, _run_single),
    "addition": (None, _run_addition),
    "negation": (_add_negation_args, _run_negation),
    "pairs": (None, _run_pairs),
    "tau_jp": (_add_tau_jp_args, _run_tau_jp),
    "disentanglement": (_add_disentanglement_args, _run_disentanglement),
}


def build_parser(evaluation: str, description: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser)
    extra, _ = COMMANDS[evaluation]
    if extra is not None:
        extra(parser)
    return parser


def run_command(evaluation: str, args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    for flag, root in (("--checkpoint-root", args.checkpoint_root), ("--results-root", args.results_root), ("--data-location", args.data_location)):
        check_folder_flag(flag, root)
    selection = selection_from_args(args)
    if not torch.cuda.is_available() or args.device == "cpu":
        torch.set_num_threads(args.threads)
    with results_lock(selection.layout.results(selection.spec.model_id, selection.recipe.results_run, evaluation)):
        session = EvalSession(selection, options_from_args(args))
        _, runner = COMMANDS[evaluation]
        results, extra = runner(session, args)
        path = write_results(selection.layout, selection.spec.model_id, selection.recipe.results_run, evaluation, session.settings(**extra), results)
    return path, results


def main(evaluation: str, argv: Sequence[str] | None = None, description: str | None = None) -> Path:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = build_parser(evaluation, description).parse_args(argv)
    path, results = run_command(evaluation, args)
    print(f"{evaluation}: {headline(evaluation, results)}")
    print(f"wrote {path}")
    return path


def headline(evaluation: str, results: dict[str, Any]) -> str:
    """One line of the numbers a user looks at first."""
    pct = lambda v: "n/a" if v is None else f"{100 * v:.1f}%"  # noqa: E731
    if evaluation == "single_task":
        s = results["summary"]
        return f"zero-shot test {pct(s['zeroshot_test_avg'])}, fine-tuned test {pct(s['finetuned_test_avg'])}"
    if evaluation == "addition":
        t, o = results["tuned"], results["one_shot"]
        return (
            f"alpha={t['alpha']:g}: test abs {pct(t['test']['avg_accuracy'])} / norm {pct(t['test']['avg_normalized'])}; "
            f"one-shot: abs {pct(o['test']['avg_accuracy'])} / norm {pct(o['test']['avg_normalized'])}"
        )
    if evaluation == "negation":
        a = results["average"]
        missing = a["targets_without_admissible_alpha"]
        note = f"; no admissible alpha for {', '.join(missing)}" if missing else ""
        return f"target test {pct(a['target_test'])}, control test {pct(a['control_test'])}{note}"
    if evaluation == "pairs":
        norms = [p["tuned"]["test"]["avg_normalized"] for p in results["pairs"].values()]
        return f"{len(norms)} pairs, mean tuned normalised test accuracy {pct(mean(norms))}"
    if evaluation == "tau_jp":
        return f"diagonal mean {results['diagonal_mean']:.4g}, off-diagonal mean {results['off_diagonal_mean'] or 0:.4g}"
    if evaluation == "disentanglement":
        parts = []
        for name, pair in results["pairs"].items():
            flat = [v for row in pair["xi"] for v in row]
            parts.append(f"{name}: mean xi {sum(flat) / len(flat):.3f}")
        return "; ".join(parts)
    return ""
