"""Command-line front end of src/evaluate.py: `python src/evaluate.py <evaluation> [flags]`.

Every evaluation locates runs with the same arguments as fine-tuning (model, weights, roots, mode,
regulariser, variant, tasks), runs once and writes results/<model_id>/<run>/<evaluation>.json.
The evaluations and their own flags come from the registry (registry.py). A results file made
with other settings is not replaced without --force (results.py keys every file by its settings).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from .. import cli_help
from ..data.choices import DECODE_CACHE_CHOICES
from ..data.registry import parse_task_list
from ..errors import UserError
from ..flags import finite_float, name, nonnegative_int, positive_int
from ..io import tidy_new_folders
from ..paths import DEFAULT_CHECKPOINT_ROOT, DEFAULT_DATA_LOCATION, DEFAULT_RESULTS_ROOT, Layout, check_folder_flag
from ..precision import PRECISION_CHOICES
from ..recipes import MODES, REGULARIZERS
from ..recipes.identity import POSTHOC, from_flags
from ..recipes.registry import all_variants
from ..wandb_logging import MODES as WANDB_MODES
from ..wandb_logging import WandbSettings
from .defaults import DEFAULT_MEMORY_MB
from .registry import EVALUATIONS
from .results import freshness, log_to_wandb, results_key, results_lock, write_results

if TYPE_CHECKING:  # torch, open_clip: imported once the flags are parsed (--help stays instant)
    from .session import EvalOptions, EvalSession, RunSelection

__all__ = ["finite_float", "positive_int", "build_parser", "main", "run_command", "run_evaluation"]


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("which runs (the same flags name the same run in src/finetune.py)")
    g.add_argument("--model", default="ViT-B-32", help="open_clip architecture")
    g.add_argument("--pretrained", default="openai", help="weight tag, local file, or 'none' for random init")
    g.add_argument("--cache-dir", default=None, help="open_clip weight cache folder")
    g.add_argument("--checkpoint-root", type=Path, default=DEFAULT_CHECKPOINT_ROOT, help="where theta_0, heads and runs are kept")
    g.add_argument("--results-root", type=Path, default=DEFAULT_RESULTS_ROOT, help="where results/<model_id>/<run>/<evaluation>.json go")
    g.add_argument("--data-location", type=Path, default=DEFAULT_DATA_LOCATION, help="folder holding the datasets")
    g.add_argument("--run", default=None, help="the run's folder name, e.g. linear-tau_jp or posthoc (instead of --mode/--reg/--variant/--tag)")
    g.add_argument("--mode", choices=(*MODES, POSTHOC), default=None,
                   help="default: the regulariser's (linear for tau_jp, else standard); posthoc = the standard runs read out linearised")
    g.add_argument("--reg", choices=tuple(REGULARIZERS), default=None, help="default none")
    g.add_argument("--variant", choices=all_variants(), default=None, help="the regulariser's variant (default: its first)")
    g.add_argument("--tag", default="", type=name("--tag", allow_empty=True), help="extra suffix of the run name, if fine-tuning used one")
    g.add_argument("--tasks", default="real8", help="comma list of tasks or a benchmark name (listed below)")
    e = parser.add_argument_group("evaluation")
    e.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    e.add_argument("--batch-size", type=positive_int, default=128, help="images per forward pass")
    e.add_argument("--num-workers", type=nonnegative_int, default=2, help="data-loading processes")
    e.add_argument("--max-eval-samples", type=positive_int, default=None, help="cap every Val/test set (quick runs)")
    e.add_argument("--no-cache", action="store_true", help="evaluate every edit directly (no linearity shortcut)")
    e.add_argument("--no-disk-cache", action="store_true", help="keep the tangent cache in memory only")
    e.add_argument("--threads", type=positive_int, default=1, help="CPU threads (1: on a shared machine 2 threads were >5x slower, see README)")
    e.add_argument("--per-edit", action="store_true", help="standard runs: one data pass per edit (the unbatched path, for comparison)")
    e.add_argument("--batch-memory-mb", type=positive_int, default=DEFAULT_MEMORY_MB, help="memory for the edits batched in one pass (standard runs)")
    e.add_argument("--precision", choices=PRECISION_CHOICES, default="auto", help="fp32, tf32 (CUDA), bf16 (autocast), auto (default: bf16 on CUDA, fp32 on CPU)")
    e.add_argument("--decode-cache", choices=DECODE_CACHE_CHOICES, default="on",
                   help="on (default): images decoded once into <data-location>/decoded/ (bit-identical tensors); off: decoded every pass")
    e.add_argument("--vectors-per-pass", type=positive_int, default=None, help="task vectors batched in one JVP pass (memory)")
    e.add_argument("--force", action="store_true", help="replace results made with other settings (otherwise refused)")
    e.add_argument("--wandb", choices=WANDB_MODES, default="off", help="also log the results to Weights & Biases (summary metrics and a table of every number)")
    e.add_argument("--wandb-project", default=None, help="W&B project (default: WANDB_PROJECT, else task-arithmetic)")
    e.add_argument("--wandb-entity", default=None, help="W&B entity (default: WANDB_ENTITY, else wandb's)")


def selection_from_args(args: argparse.Namespace) -> RunSelection:
    from ..models.factory import ModelSpec, parse_pretrained
    from .session import RunSelection

    spec = ModelSpec(args.model, parse_pretrained(args.pretrained), args.cache_dir)
    evaluated = from_flags(args.mode, args.reg, args.variant, args.tag, args.run)
    tasks = tuple(parse_task_list(args.tasks))
    return RunSelection(spec, Layout(args.checkpoint_root, args.results_root), args.data_location, evaluated, tasks)


def options_from_args(args: argparse.Namespace) -> EvalOptions:
    from .session import EvalOptions

    if args.num_workers < 0:
        raise UserError(f"--num-workers must be >= 0, got {args.num_workers}")
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
        precision=args.precision,
        decode_cache=args.decode_cache == "on",
    )


def check_evaluation(name: str) -> None:
    if name not in EVALUATIONS:
        raise UserError(f"unknown evaluation '{name}'; choose one of {', '.join(EVALUATIONS)}")


def build_parser(evaluation: str, description: str | None = None) -> argparse.ArgumentParser:
    check_evaluation(evaluation)
    spec = EVALUATIONS[evaluation]
    example = f"    python src/evaluate.py {evaluation} --model ViT-B-32 --pretrained openai --reg tau_jp --tasks real8"
    parser = cli_help.parser(f"{description or spec.summary}\n\n{example}", (0, 2, 130), tasks=True, prog=f"evaluate.py {evaluation}")
    add_run_arguments(parser)
    spec.add_arguments(parser)
    return parser


def run_evaluation(evaluation: str, session: EvalSession, params: Any, force: bool = False) -> tuple[Path, Any]:
    """Run one registered evaluation on a session and write its results file, keyed by its settings
    and inputs; results of other settings are replaced only with `force`."""
    spec, sel = EVALUATIONS[evaluation], session.selection
    params = spec.resolved(params, session.tasks)
    path = sel.layout.results(sel.spec.model_id, sel.evaluated.name, evaluation)
    weights = [session.theta0_path, *session.checkpoints.values()]
    key = results_key(spec, params, session.tasks, session.options.max_eval_samples, weights, session.precision.value)
    state = freshness(path, spec, key)
    if state.status == "other_settings" and not force:
        raise UserError(f"{path} holds {evaluation} results made with other settings ({state.detail}); pass --force to replace them, "
                        "or another --results-root to keep both")
    with session.autocast():
        result = spec.run(session, params)
    return write_results(sel.layout, sel.spec.model_id, sel.evaluated.name, spec, params, session.settings(), result, key), result


def run_command(evaluation: str, args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    for flag, root in (("--checkpoint-root", args.checkpoint_root), ("--results-root", args.results_root), ("--data-location", args.data_location)):
        check_folder_flag(flag, root)
    import torch

    from .session import EvalSession

    selection = selection_from_args(args)
    if not torch.cuda.is_available() or args.device == "cpu":
        torch.set_num_threads(args.threads)
    # one writer per results file: a second process waits instead of racing on it
    spec = EVALUATIONS[evaluation]
    params = spec.params_from(vars(args))
    spec.resolved(params, selection.tasks)  # values that make no sense: refused before any work
    path = selection.layout.results(selection.spec.model_id, selection.evaluated.name, evaluation)
    with tidy_new_folders(path.parent), results_lock(path):  # a failed evaluation leaves no empty results folder
        written, result = run_evaluation(evaluation, EvalSession(selection, options_from_args(args)), params, args.force)
    log_to_wandb(WandbSettings(args.wandb, args.wandb_project, args.wandb_entity), spec, selection.spec.model_id, selection.evaluated.name, result,
                 selection.tasks, written)
    return written, result


def main(evaluation: str, argv: Sequence[str] | None = None, description: str | None = None) -> Path:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = build_parser(evaluation, description).parse_args(argv)
    path, results = run_command(evaluation, args)
    print(f"{evaluation}: {headline(evaluation, results)}")
    print(f"wrote {path}")
    return path


def headline(evaluation: str, results: Any) -> str:
    """One line of the numbers a user looks at first."""
    return EVALUATIONS[evaluation].headline(results)
