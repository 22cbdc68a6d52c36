"""The tau-Jp study for any CLIP and task list, in one command; finished steps are skipped.

    python src/run_study.py --model ViT-B-32 --pretrained openai --tasks real8 --data-location DIR --dry-run
    python src/run_study.py --model ViT-B-32 --pretrained openai --tasks real8 --data-location DIR
    python src/run_study.py --model M --pretrained FILE --recipes standard@public,posthoc@public,tau_jp   # imported runs
    python src/run_study.py --preset smoke      # the embedded benchmark's study (as src/run_embedded.py)
    python src/run_study.py ... --launcher slurm --gpus 1 --time 12:00:00 [--dry-run]   # as a Slurm job graph
    python src/run_study.py --preset default --seeds 0,1,2 [--pretrain-seeds [0,1,2]]   # mean, sd, 95 % interval

Fine-tunes every task in each recipe that trains (--recipes: the registry's recipe names, a group
name - paper, field, experiment - or all; `<recipe>@<tag>` reads tagged runs, e.g. imported
ones, and trains nothing; any run name such as linear-tau_jp_strict also works), runs every
evaluation and writes results/<model_id>/report/. --dry-run prints the plan and its cost without
reading any weights or data. --launcher slurm submits the same graph of units as jobs (a
fine-tuning array per run, evaluations after the runs they read, the report last), only the
units still missing; with --dry-run it prints the sbatch commands instead.
"""

from __future__ import annotations

if __name__ == "__main__":  # first: the imports below take seconds, and a stop signal meanwhile must exit 75
    from task_arithmetic.training.preemption import exit_preempted_on_stop_signals

    exit_preempted_on_stop_signals()

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from task_arithmetic import cli_help, flags
from task_arithmetic.data.choices import DECODE_CACHE_CHOICES
from task_arithmetic.data.registry import control_for, parse_task_list
from task_arithmetic.embedded.presets import PRESETS
from task_arithmetic.errors import UserError, cli_entry
from task_arithmetic.evaluation.registry import EVALUATIONS, study_param_values
from task_arithmetic.evaluation.spec import add_param_argument
from task_arithmetic.paths import DEFAULT_CHECKPOINT_ROOT, DEFAULT_DATA_LOCATION, DEFAULT_RESULTS_ROOT, Layout
from task_arithmetic.precision import PRECISION_CHOICES
from task_arithmetic.recipes import MODES, REGULARIZERS, Group, Recipe, recipe, recipes_in
from task_arithmetic.recipes.identity import POSTHOC, from_flags
from task_arithmetic.recipes.registry import all_variants
from task_arithmetic.wandb_logging import MODES as WANDB_MODES

if TYPE_CHECKING:  # the pipeline imports torch and open_clip: imported once the flags are parsed (--help stays instant)
    from task_arithmetic.pipeline.definition import Study

# Fine-tuning flags passed through to every run (src/finetune.py has the same), with their types;
# the plug-ins' own options (every recipe's flags) are added from the registry.
FINETUNE_FLAGS: dict[str, Callable[[str], Any]] = {
    "lr": flags.positive_float, "wd": flags.nonnegative_float, "warmup": flags.nonnegative_int, "batch_size": flags.positive_int,
    "micro_batch": flags.positive_int, "epochs": flags.positive_int, "max_steps": flags.positive_int, "clip": flags.nonnegative_float,
    "max_train_samples": flags.positive_int, "num_workers": flags.nonnegative_int, "save_every": flags.positive_int,
    "steps_fraction": flags.float_in(0.0, 1.0, lo_open=True), "train_crop": str,
}
GROUPS = {g.value: g for g in Group}


def seconds_per_image(text: str) -> dict[str, float]:
    from task_arithmetic.pipeline.plan import PASS_KINDS

    out = {}
    for part in text.split(","):
        kind, _, value = part.partition("=")
        if kind not in PASS_KINDS:
            raise argparse.ArgumentTypeError(f"expected {'=S,'.join(PASS_KINDS)}=S (seconds per image pass), got '{text}'")
        out[kind] = flags.positive_float(value)
    return out


def parse_seeds(text: str) -> tuple[int, ...]:
    try:
        return flags.seed_list(text)
    except argparse.ArgumentTypeError as err:
        raise UserError(f"--seeds takes comma-separated integers from 0 to {flags.MAX_SEED}, each once (e.g. 0,1,2): {err}") from None


def parser() -> argparse.ArgumentParser:
    p = cli_help.parser(__doc__, (0, 2, 75, 130), tasks=True)
    p.add_argument("--preset", choices=sorted(PRESETS), default=None, help="the embedded benchmark's study (ignores model and tasks)")
    g = p.add_argument_group("which runs (same as every other script)")
    g.add_argument("--model", default="ViT-B-32", help="open_clip architecture")
    g.add_argument("--pretrained", default="openai", help="weight tag, local file, or 'none'")
    g.add_argument("--cache-dir", default=None, help="open_clip weight cache folder")
    g.add_argument("--checkpoint-root", type=Path, default=DEFAULT_CHECKPOINT_ROOT, help="where theta_0, heads and runs are kept")
    g.add_argument("--results-root", type=Path, default=DEFAULT_RESULTS_ROOT, help="where results and the report go")
    g.add_argument("--data-location", type=Path, default=DEFAULT_DATA_LOCATION, help="folder holding the datasets")
    g.add_argument("--tasks", default="real8", help="comma list of tasks or a benchmark name (listed below)")
    g.add_argument("--run", default=None, help="one run as the study's only recipe, by its folder name (e.g. linear-tau_jp)")
    g.add_argument("--mode", choices=(*MODES, POSTHOC), default=None, help="... or by its parts, as in src/finetune.py (instead of --recipes)")
    g.add_argument("--reg", choices=tuple(REGULARIZERS), default=None, help="as in src/finetune.py")
    g.add_argument("--variant", choices=all_variants(), default=None, help="as in src/finetune.py")
    g.add_argument("--tag", default="", help="as in src/finetune.py")
    s = p.add_argument_group("study")
    s.add_argument("--recipes", default=None, help=f"comma list of {', '.join(recipe(n).name for n in recipes_in(*Group))}, a group "
                   f"({', '.join(GROUPS)}) or all (default: paper; with --preset, the preset's); <recipe>@<tag> reads tagged runs")
    s.add_argument("--evaluations", default=None, help=f"comma list of {', '.join(EVALUATIONS)}, or all (default all; with --preset, the preset's)")
    s.add_argument("--sweep", default=None, metavar="OPTION=V1,V2,...",
                   help="also run every recipe whose plug-ins take OPTION (e.g. penalty_coef) at each value, on runs of their own")
    s.add_argument("--dry-run", action="store_true", help="print the plan and its cost; read no weights or data")
    s.add_argument("--seconds-per-image", type=seconds_per_image, default=None, help="GPU seconds per image pass: plain=S,linearized=S")
    s.add_argument("--seeds", default="0", help="comma list of fine-tuning seeds, one replicate each")
    s.add_argument("--pretrain-seeds", nargs="?", const=True, default=None, type=flags.seed_list, metavar="P0,P1,...",
                   help="alone: each replicate also pretrains the embedded TinyCLIP from its own seed; with seeds: every pretraining "
                   "seed crossed with every --seeds seed (e.g. --seeds 0,1,2 --pretrain-seeds 0,1,2: 9 replicates)")
    s.add_argument("--device", default="auto", help="auto (CUDA when visible), cpu, cuda or cuda:N")
    s.add_argument("--precision", choices=PRECISION_CHOICES, default="auto",
                   help="fine-tuning and evaluations: fp32, tf32 (CUDA), bf16 (autocast), auto (default: bf16 on CUDA, fp32 on CPU)")
    s.add_argument("--decode-cache", choices=DECODE_CACHE_CHOICES, default="on", help="images decoded once for every run and evaluation (default on)")
    s.add_argument("--no-progress", action="store_true", help="no progress bars: plain periodic log lines (as when stdout is not a terminal)")
    s.add_argument("--wandb", choices=WANDB_MODES, default="off",
                   help="log every fine-tuning run (resumed runs continue their W&B run) and every evaluation's results to Weights & Biases")
    s.add_argument("--wandb-project", default=None, help="W&B project (default: WANDB_PROJECT, else task-arithmetic)")
    s.add_argument("--wandb-entity", default=None, help="W&B entity (default: WANDB_ENTITY, else wandb's)")
    s.add_argument("--launcher", choices=("local", "slurm"), default="local", help="run here, or submit a Slurm job graph")
    s.add_argument("--jobs", default="auto", help="local: worker processes for the runs and evaluations, or auto "
                   "(default: one single-threaded process per core on CPU, 1 on a GPU); 1 runs everything in this process")
    s.add_argument("--unit", type=Path, default=None, help=argparse.SUPPRESS)  # one unit of the graph, as a Slurm job runs it
    sl = p.add_argument_group("Slurm resources (--launcher slurm)")
    sl.add_argument("--gpus", type=flags.nonnegative_int, default=None,
                    help="GPUs per fine-tuning job (> 1: torchrun); evaluations get one when > 0 (default: 0 with --device cpu, else 1)")
    sl.add_argument("--cpus", type=flags.positive_int, default=4, help="CPUs per job")
    sl.add_argument("--time", default=None, help="time limit per job, e.g. 12:00:00 (default: the partition's)")
    sl.add_argument("--partition", default=None, help="default: the cluster's")
    sl.add_argument("--mem", default=None, help="memory per job, e.g. 64G (default: the cluster's)")
    sl.add_argument("--log-dir", type=Path, default=Path("logs/slurm"), help="where Slurm writes the job logs (and the unit files)")
    e = p.add_argument_group("evaluation settings (each goes to every evaluation that has it)")
    e.add_argument("--max-eval-samples", type=flags.positive_int, default=None, help="cap every Val/test set (quick runs; the report flags it)")
    e.add_argument("--eval-batch-size", type=flags.positive_int, default=128, help="images per evaluation forward pass")
    seen: set[str] = set()
    for evaluation in EVALUATIONS.values():
        for f in evaluation.study_fields():
            if f.name not in seen:
                seen.add(f.name)
                add_param_argument(e, f)
    e.add_argument("--disentanglement-points", dest="grid_points", type=flags.int_in(2), default=None, help=argparse.SUPPRESS)  # the earlier name
    ft = p.add_argument_group("fine-tuning settings, passed to every run (see src/finetune.py; a recipe's own options only to its runs)")
    for name, kind in FINETUNE_FLAGS.items():
        ft.add_argument(f"--{name.replace('_', '-')}", type=kind, default=None, help="as in src/finetune.py")
    for plugin in (*MODES.values(), *REGULARIZERS.values()):
        plugin.add_arguments(p)
    return p


def _plugin_options() -> list[str]:
    return [n for plugin in (*MODES.values(), *REGULARIZERS.values()) for n in plugin.option_names()]


def recipe_names(text: str) -> tuple[str, ...]:
    """--recipes: names, groups and `all`, each recipe once, refused before any work if unknown."""
    names: list[str] = []
    for item in (r.strip() for r in text.split(",")):
        if not item:
            continue
        if item == "all":
            names += recipes_in(*Group)
        elif item in GROUPS:
            names += recipes_in(GROUPS[item])
        else:
            names.append(recipe(item).name)
    if not names:
        raise UserError("--recipes is empty; give at least one of " + ", ".join(recipes_in(*Group)))
    return tuple(dict.fromkeys(names))


def evaluation_names(text: str) -> tuple[str, ...]:
    names = tuple(EVALUATIONS) if text == "all" else tuple(e.strip() for e in text.split(",") if e.strip())
    for name in names:
        if name not in EVALUATIONS:
            raise UserError(f"unknown evaluation '{name}'; valid: {', '.join(EVALUATIONS)}")
    if not names:
        raise UserError(f"--evaluations is empty; give at least one of {', '.join(EVALUATIONS)}")
    return names


def check_evaluations(study: Study) -> None:
    """Every evaluation's settings for these tasks, resolved and checked before any work (a
    negated task as its own control, a one-point grid)."""
    for name in study.evaluations:
        evaluation = EVALUATIONS[name]
        if len(study.tasks) < evaluation.min_tasks:
            raise UserError(f"evaluation {name} needs at least {evaluation.min_tasks} tasks; add tasks or drop it from --evaluations")
        if evaluation.needs_control and study.control is None:
            raise UserError(f"evaluation {name} needs a control task (the tasks' benchmark has none); pass --control or drop it from --evaluations")
        evaluation.resolved(study.params(name), study.tasks)


def study_params(args: argparse.Namespace) -> dict[str, object]:
    """The study-level evaluation settings given on the command line."""
    return {k: getattr(args, k) for k in study_param_values({}) if getattr(args, k, None) is not None}


def chosen_recipes(args: argparse.Namespace) -> tuple[str, ...] | None:
    """--recipes, or the one run the run flags name (the same flags as src/finetune.py's)."""
    by_run = args.run is not None or args.mode is not None or args.reg is not None or args.variant is not None or bool(args.tag)
    if not by_run:
        return None if args.recipes is None else recipe_names(args.recipes)
    if args.recipes is not None:
        raise UserError("--recipes and --run/--mode/--reg/--variant/--tag both choose what the study runs; give one of them")
    return (from_flags(args.mode, args.reg, args.variant, args.tag, args.run).name,)


def build_study(args: argparse.Namespace) -> Study:
    finetune = {k: getattr(args, k) for k in (*FINETUNE_FLAGS, *_plugin_options()) if getattr(args, k) is not None}
    if args.wandb != "off":  # FinetuneConfig's fields: every run logs, and the evaluations read them too
        finetune.update({k: v for k, v in (("wandb", args.wandb), ("wandb_project", args.wandb_project), ("wandb_entity", args.wandb_entity)) if v})
    names = chosen_recipes(args)  # names checked before the pipeline (torch, open_clip) loads
    if args.evaluations is not None:
        evaluation_names(args.evaluations)
    given = study_params(args)
    from task_arithmetic.models.factory import ModelSpec
    from task_arithmetic.pipeline.definition import Study
    from task_arithmetic.pipeline.graph import build_graph
    from task_arithmetic.pipeline.study import StudyConfig, embedded_study

    if args.preset is not None:
        chosen = None if args.evaluations is None else evaluation_names(args.evaluations)
        study = embedded_study(StudyConfig(args.preset, args.data_location, args.checkpoint_root, args.results_root, args.device,
                                           not args.no_progress, names, chosen))
        study = dataclasses.replace(study, finetune={**study.finetune, **finetune}, eval_params={**study.eval_params, **given},
                                    precision=args.precision, decode_cache=args.decode_cache == "on")
    else:
        tasks = tuple(parse_task_list(args.tasks))
        if not tasks:
            raise UserError(f"--tasks '{args.tasks}' names no task; pass a comma list of tasks or a benchmark name (e.g. real8)")
        study = Study(
            spec=ModelSpec(args.model, flags.pretrained(args.pretrained), args.cache_dir),
            tasks=tasks,
            recipes=tuple(recipe(r) for r in (names or recipe_names(Group.PAPER.value))),
            evaluations=evaluation_names(args.evaluations or "all"),
            layout=Layout(args.checkpoint_root, args.results_root),
            data_location=args.data_location,
            eval_params=study_param_values({"control": control_for(tasks), **given}),
            device=args.device,
            progress=not args.no_progress,
            finetune=finetune,
            eval_limit=args.max_eval_samples,
            eval_batch_size=args.eval_batch_size,
            precision=args.precision,
            decode_cache=args.decode_cache == "on",
        )
    if args.sweep is not None:
        study = dataclasses.replace(study, recipes=study.recipes + swept(study, args.sweep))
    check_evaluations(study)
    build_graph(study)  # resolves every run's settings: a bad flag fails here, before any work
    return study


def swept(study: Study, text: str) -> tuple[Recipe, ...]:
    """--sweep OPTION=V1,V2,...: each recipe of the study whose plug-ins take OPTION, at each value."""
    option, eq, values = text.partition("=")
    if not eq or not option or not values:
        raise UserError(f"--sweep takes OPTION=V1,V2,... (e.g. penalty_coef=0,0.01,0.1,1), got '{text}'")
    try:
        points = [flags.finite_float(v.strip()) for v in values.split(",") if v.strip()]
    except argparse.ArgumentTypeError as err:
        raise UserError(f"--sweep {text}: {err}") from None
    if option in study.finetune:
        raise UserError(f"--sweep {option} and --{option.replace('_', '-')} both set {option}; give one of them")
    owners = [r for r in study.recipes if r.trains and option in (*r.run.mode.option_names(), *r.run.reg.option_names())]
    if not owners or not points:
        raise UserError(f"--sweep {option}: no recipe of the study takes that option ({', '.join(r.name for r in study.recipes)}); "
                        "sweep an option of one of them, e.g. penalty_coef for tau_jp")
    return tuple(r.swept(option, v) for r in owners for v in dict.fromkeys(points))


def slurm_gpus(given: int | None, device: str) -> int:
    """--gpus, or the device's default: one GPU per job unless the study runs on the CPU. A study
    that would use CUDA but gets no GPU is warned about (its jobs fall back to the node's CPUs)."""
    gpus = given if given is not None else (0 if device.startswith("cpu") else 1)
    if gpus == 0 and not device.startswith("cpu"):
        print(f"warning: --gpus 0 with --device {device}: the jobs get no GPU and run on the nodes' CPUs "
              "(a ViT fine-tuning takes days there); pass --gpus 1, or --device cpu for a CPU study", file=sys.stderr, flush=True)
    return gpus


def run_one_unit(path: Path) -> list[Path]:
    """A Slurm job's unit (scripts/slurm/unit.sbatch)."""
    from task_arithmetic.pipeline.graph import read_unit_file, run_unit
    from task_arithmetic.pipeline.stop import stop_for_signal

    try:
        study, unit = read_unit_file(path)
    except (OSError, ValueError, KeyError) as err:
        raise UserError(f"cannot read the unit file {path} ({err}); submit the study again") from err
    print(f"unit {unit.id} of the study of {study.spec.model_id}", flush=True)
    if run_unit(study, unit) == "preempted":
        stop_for_signal()
    return []


@cli_entry
def main(argv: list[str] | None = None) -> list[Path]:
    p = parser()
    args = p.parse_args(argv)
    if args.unit is not None:
        return run_one_unit(args.unit)
    study = build_study(args)
    from task_arithmetic.pipeline.calibration import format_table
    from task_arithmetic.pipeline.calibration import seconds_per_image as seconds_per_image_measured
    from task_arithmetic.pipeline.graph import build_graph
    from task_arithmetic.pipeline.parallel import auto_jobs, parse_jobs
    from task_arithmetic.pipeline.plan import CALIBRATION, format_plan, make_plan
    from task_arithmetic.pipeline.slurm import SlurmOptions, format_commands, job_graph, submission_folder, submit
    from task_arithmetic.pipeline.study import PAIRED, execute_seeds, replicates
    from task_arithmetic.precision import resolve_precision

    if args.launcher == "local":  # a Slurm job's device is not this machine's: its jobs resolve "auto" themselves
        resolve_precision(args.precision, args.device)  # tf32 without CUDA fails before any work
    seeds = parse_seeds(args.seeds)
    pretrain_seeds = PAIRED if args.pretrain_seeds is True else args.pretrain_seeds
    jobs = parse_jobs(args.jobs)  # a bad value fails before any work
    replicates(study, seeds, pretrain_seeds)  # bad seed settings fail before any work, a dry run included
    if args.launcher == "slurm":
        if seeds != (0,) or pretrain_seeds is not None:
            raise UserError("--seeds/--pretrain-seeds run locally only; drop them with --launcher slurm (or submit one study per seed)")
        gpus = slurm_gpus(args.gpus, study.device)
        if args.cpus < 1 or gpus < 0:
            raise UserError(f"--cpus must be >= 1 and --gpus >= 0, got --cpus {args.cpus} --gpus {gpus}")
        opts = SlurmOptions(gpus, args.cpus, args.time, args.partition, args.mem, args.log_dir)
        study = dataclasses.replace(study, progress=False)  # job logs get no progress bars
        graph = job_graph(study, build_graph(study), opts)
        if args.dry_run:
            print(format_commands(graph, submission_folder(args.log_dir), Path(args.log_dir).resolve(), sys.executable))
        elif not graph:
            print("nothing to submit: every step of the study is done")
        else:
            submit(study, graph, opts, sys.executable)
        return []
    if args.dry_run:
        calibration = args.seconds_per_image or CALIBRATION.get(study.spec.name)
        if calibration is None and (found := seconds_per_image_measured(study.spec.name)) is not None:
            calibration = found[0]
            print(f"GPU hours from the GPU check's {found[1].model} on {found[1].gpu} ({found[1].precision}, {found[1].date[:10]})")
        print(format_plan(study, make_plan(study), calibration))
        print(format_table())
        return []
    written = execute_seeds(study, seeds, pretrain_seeds, jobs or auto_jobs(study.device))
    report = next((p for p in written if p.name == "report.md"), None)
    if report is not None:
        print(f"report: {report}")
    return written


if __name__ == "__main__":
    main()
