"""The tau-Jp study for any CLIP and task list, in one command; finished steps are skipped.

    python src/run_study.py --model ViT-B-32 --pretrained openai --tasks real8 --data-location DIR --dry-run
    python src/run_study.py --model ViT-B-32 --pretrained openai --tasks real8 --data-location DIR
    python src/run_study.py --model M --pretrained FILE --recipes standard@public,posthoc@public,tau_jp   # imported runs
    python src/run_study.py --preset smoke      # the embedded benchmark's study (as src/run_embedded.py)
    python src/run_study.py ... --launcher slurm --gpus 1 --time 12:00:00 [--dry-run]   # as a Slurm job graph
    python src/run_study.py --preset default --seeds 0,1,2 [--pretrain-seeds]   # mean, sd, 95 % interval

Fine-tunes every task in each recipe that trains (standard, linear, tau_jp; posthoc reads the
standard runs; `<recipe>@<tag>` reads tagged runs, e.g. imported ones, and trains nothing), runs
every evaluation and writes results/<model_id>/report/. --dry-run prints the plan and its cost
without reading any weights or data. --launcher slurm submits the same plan as jobs (a
fine-tuning array per recipe, evaluations after the runs they read, the report last), only
the steps still missing; with --dry-run it prints the sbatch commands instead.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from task_arithmetic.data.decoded import DECODE_CACHE_CHOICES
from task_arithmetic.data.registry import parse_task_list
from task_arithmetic.embedded.presets import PRESETS
from task_arithmetic.errors import UserError, cli_entry
from task_arithmetic.evaluation.session import default_control
from task_arithmetic.models.factory import ModelSpec, parse_pretrained
from task_arithmetic.paths import DEFAULT_CHECKPOINT_ROOT, DEFAULT_DATA_LOCATION, DEFAULT_RESULTS_ROOT, Layout
from task_arithmetic.pipeline.calibration import format_table
from task_arithmetic.pipeline.calibration import seconds_per_image as seconds_per_image_measured
from task_arithmetic.pipeline.catalog import DEFAULT_RECIPES, EMBEDDED_RECIPES, EVALUATIONS, EvalSettings, check_evaluations, get_recipe
from task_arithmetic.pipeline.parallel import auto_jobs, parse_jobs
from task_arithmetic.pipeline.plan import CALIBRATION, PASS_KINDS, Study, format_plan, make_plan
from task_arithmetic.pipeline.slurm import SlurmOptions, format_commands, job_graph, submit
from task_arithmetic.pipeline.study import StudyConfig, embedded_study, execute_seeds, replicates, run_stage
from task_arithmetic.precision import PRECISION_CHOICES, resolve_precision

# Fine-tuning flags passed through to every run (src/finetune.py has the same), with their types.
FINETUNE_FLAGS: dict[str, type] = {
    "lr": float, "wd": float, "warmup": int, "batch_size": int, "micro_batch": int, "epochs": int, "max_steps": int,
    "clip": float, "penalty_coef": float, "penalty_batch": int, "max_train_samples": int, "num_workers": int, "save_every": int,
    "train_crop": str,
}


def seconds_per_image(text: str) -> dict[str, float]:
    out = {}
    for part in text.split(","):
        kind, _, value = part.partition("=")
        if kind not in PASS_KINDS:
            raise argparse.ArgumentTypeError(f"expected {'=S,'.join(PASS_KINDS)}=S (seconds per image pass), got '{text}'")
        out[kind] = float(value)
    return out


def parse_seeds(text: str) -> tuple[int, ...]:
    parts = [p.strip() for p in text.split(",")]
    if not all(p.isdigit() for p in parts):
        raise UserError(f"--seeds takes comma-separated integers >= 0 (e.g. 0,1,2), got '{text}'")
    return tuple(int(p) for p in parts)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), default=None, help="the embedded benchmark's study (ignores model and tasks)")
    g = p.add_argument_group("which runs (same as every other script)")
    g.add_argument("--model", default="ViT-B-32")
    g.add_argument("--pretrained", default="openai", help="weight tag, local file, or 'none'")
    g.add_argument("--cache-dir", default=None)
    g.add_argument("--checkpoint-root", type=Path, default=DEFAULT_CHECKPOINT_ROOT)
    g.add_argument("--results-root", type=Path, default=DEFAULT_RESULTS_ROOT)
    g.add_argument("--data-location", type=Path, default=DEFAULT_DATA_LOCATION)
    g.add_argument("--tasks", default="real8", help="comma list of tasks or a benchmark name (default real8)")
    s = p.add_argument_group("study")
    s.add_argument("--recipes", default=None, help=f"comma list of {', '.join(EMBEDDED_RECIPES)}, or all (default {','.join(DEFAULT_RECIPES)}; "
                   "with --preset, the preset's); <recipe>@<tag> reads tagged runs")
    s.add_argument("--evaluations", default=None, help=f"comma list of {', '.join(EVALUATIONS)}, or all (default all; with --preset, the preset's)")
    s.add_argument("--dry-run", action="store_true", help="print the plan and its cost; read no weights or data")
    s.add_argument("--seconds-per-image", type=seconds_per_image, default=None, help="GPU seconds per image pass: plain=S,linearized=S")
    s.add_argument("--seeds", default="0", help="comma list of fine-tuning seeds, one replicate each (default 0)")
    s.add_argument("--pretrain-seeds", action="store_true", help="each replicate also pretrains the embedded TinyCLIP from its seed")
    s.add_argument("--device", default="auto")
    s.add_argument("--precision", choices=PRECISION_CHOICES, default="auto",
                   help="fine-tuning and evaluations: fp32, tf32 (CUDA), bf16 (autocast), auto (default: bf16 on CUDA, fp32 on CPU)")
    s.add_argument("--decode-cache", choices=DECODE_CACHE_CHOICES, default="on", help="images decoded once for every run and evaluation (default on)")
    s.add_argument("--no-progress", action="store_true")
    s.add_argument("--launcher", choices=("local", "slurm"), default="local", help="run here, or submit a Slurm job graph")
    s.add_argument("--jobs", default="auto", help="local: worker processes for the runs and evaluations, or auto "
                   "(default: one single-threaded process per core on CPU, 1 on a GPU); 1 runs everything in this process")
    s.add_argument("--stage", default=None, help=argparse.SUPPRESS)  # one step, as a Slurm job runs it
    sl = p.add_argument_group("Slurm resources (--launcher slurm)")
    sl.add_argument("--gpus", type=int, default=0, help="GPUs per fine-tuning job (> 1: torchrun); evaluations get one when > 0")
    sl.add_argument("--cpus", type=int, default=4, help="CPUs per job")
    sl.add_argument("--time", default=None, help="time limit per job, e.g. 12:00:00")
    sl.add_argument("--partition", default=None)
    sl.add_argument("--mem", default=None)
    sl.add_argument("--log-dir", type=Path, default=Path("logs/slurm"), help="where Slurm writes the job logs")
    e = p.add_argument_group("evaluation settings")
    e.add_argument("--max-eval-samples", type=int, default=None)
    e.add_argument("--eval-batch-size", type=int, default=128)
    e.add_argument("--alpha-step", type=float, default=0.05)
    e.add_argument("--disentanglement-points", type=int, default=21)
    f = p.add_argument_group("fine-tuning settings, passed to every run (see src/finetune.py)")
    for name, kind in FINETUNE_FLAGS.items():
        f.add_argument(f"--{name.replace('_', '-')}", type=kind, default=None)
    return p


def _recipe_names(text: str) -> tuple[str, ...]:
    if text == "all":
        return EMBEDDED_RECIPES
    names = tuple(r.strip() for r in text.split(",") if r.strip())
    for name in names:
        get_recipe(name)  # unknown names are refused before any work
    if not names:
        raise UserError("--recipes is empty; give at least one of " + ", ".join(EMBEDDED_RECIPES))
    return names


def _evaluation_names(text: str) -> list[str]:
    return list(EVALUATIONS) if text == "all" else [e.strip() for e in text.split(",") if e.strip()]


def build_study(args: argparse.Namespace) -> Study:
    if args.preset is not None:
        names = None if args.recipes is None else _recipe_names(args.recipes)
        chosen = None if args.evaluations is None else tuple(_evaluation_names(args.evaluations))
        study = embedded_study(StudyConfig(args.preset, args.data_location, args.checkpoint_root, args.results_root, args.device,
                                           not args.no_progress, names, chosen, precision=args.precision))
        check_evaluations(list(study.evaluations), list(study.tasks), study.settings.control)
        return study
    tasks = list(parse_task_list(args.tasks))
    control = default_control(tasks)
    evaluations = _evaluation_names(args.evaluations or "all")
    check_evaluations(evaluations, tasks, control)
    recipes = tuple(get_recipe(r) for r in (DEFAULT_RECIPES if args.recipes is None else _recipe_names(args.recipes)))
    if not recipes:
        raise UserError("--recipes is empty; give at least one of " + ", ".join(DEFAULT_RECIPES))
    if not 0 < args.alpha_step <= 1:
        raise UserError(f"--alpha-step must be in (0, 1], got {args.alpha_step}")
    return Study(
        spec=ModelSpec(args.model, parse_pretrained(args.pretrained), args.cache_dir),
        tasks=tuple(tasks),
        recipes=recipes,
        evaluations=tuple(evaluations),
        layout=Layout(args.checkpoint_root, args.results_root),
        data_location=args.data_location,
        settings=EvalSettings(control, args.alpha_step, args.disentanglement_points),
        device=args.device,
        progress=not args.no_progress,
        finetune={k: getattr(args, k) for k in FINETUNE_FLAGS if getattr(args, k) is not None},
        eval_limit=args.max_eval_samples,
        eval_batch_size=args.eval_batch_size,
        precision=args.precision,
        decode_cache=args.decode_cache == "on",
    )


# Flags that only steer this process or the submission: a job's own command leaves them out.
_LAUNCH_ONLY = {"dry_run", "seconds_per_image", "launcher", "jobs", "stage", "gpus", "cpus", "time", "partition", "mem", "log_dir", "help"}
_PATHS = {"checkpoint_root", "results_root", "data_location", "cache_dir"}


def study_argv(p: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """The flags that rebuild this study in a job (absolute paths: jobs run in the repository)."""
    out: list[str] = []
    for action in p._actions:
        if action.dest in _LAUNCH_ONLY or not action.option_strings:
            continue
        value = getattr(args, action.dest)
        if value is None or value is False or value == action.default and action.dest not in _PATHS:
            continue
        if value is True:
            out.append(action.option_strings[0])
            continue
        if action.dest in _PATHS or (action.dest == "pretrained" and Path(value).exists()):
            value = Path(value).resolve()
        out += [action.option_strings[0], str(value)]
    return out if "--no-progress" in out else [*out, "--no-progress"]  # job logs get no progress bars


@cli_entry
def main(argv: list[str] | None = None) -> list[Path]:
    from task_arithmetic.plugins import register_builtin_plugins

    register_builtin_plugins()  # the embedded benchmark's tasks and weights
    p = parser()
    args = p.parse_args(argv)
    study = build_study(args)
    if args.launcher == "local":  # a Slurm job's device is not this machine's: its jobs resolve "auto" themselves
        resolve_precision(args.precision, args.device)  # tf32 without CUDA fails before any work
    seeds = parse_seeds(args.seeds)
    jobs = parse_jobs(args.jobs)  # a bad value fails before any work
    replicates(study, seeds, args.pretrain_seeds)  # bad seed settings fail before any work, a dry run included
    if (args.stage is not None or args.launcher == "slurm") and (seeds != (0,) or args.pretrain_seeds):
        raise UserError("--seeds/--pretrain-seeds run locally only; drop them with --launcher slurm (or submit one study per seed)")
    if args.stage is not None:
        return run_stage(study, args.stage)
    if args.launcher == "slurm":
        if args.cpus < 1 or args.gpus < 0:
            raise UserError(f"--cpus must be >= 1 and --gpus >= 0, got --cpus {args.cpus} --gpus {args.gpus}")
        opts = SlurmOptions(args.gpus, args.cpus, args.time, args.partition, args.mem, args.log_dir)
        jobs = job_graph(study, make_plan(study), study_argv(p, args), opts, sys.executable)
        if args.dry_run:
            print(format_commands(jobs))
        elif not jobs:
            print("nothing to submit: every step of the study is done")
        else:
            submit(jobs, opts)
        return []
    if args.dry_run:
        calibration = args.seconds_per_image or CALIBRATION.get(study.spec.name)
        if calibration is None and (found := seconds_per_image_measured(study.spec.name)) is not None:
            calibration = found[0]
            print(f"GPU hours from the GPU check's {found[1].model} on {found[1].gpu} ({found[1].precision}, {found[1].date[:10]})")
        print(format_plan(study, make_plan(study), calibration))
        print(format_table())
        return []
    written = execute_seeds(study, seeds, args.pretrain_seeds, jobs or auto_jobs(study.device))
    report = next((p for p in written if p.name == "report.md"), None)
    if report is not None:
        print(f"report: {report}")
    return written


if __name__ == "__main__":
    main()
