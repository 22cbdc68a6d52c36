"""The study as a Slurm job graph (src/run_study.py --launcher slurm).

    prepare (theta_0, heads) -> one fine-tuning array per training recipe -> one evaluation job per
    recipe, afterok on the arrays whose runs it reads -> the report, afterok on everything

Only what is missing is submitted: runs already finished and evaluations whose results are fresh
(the same test as the local study, pipeline/plan.py) are left out, and so are their dependencies.
Fine-tuning goes through scripts/slurm/finetune_array.sbatch (requeued on pre-emption, resumes);
the other steps run `src/run_study.py <the same study flags> --stage <step>` through
scripts/slurm/evaluate.sbatch. Nothing here reads weights or data.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from ..errors import UserError
from ..paths import REPO_ROOT
from ..training.config import resolve_config
from .plan import Plan, Study, pending_evaluations

FINETUNE_BATCH = "scripts/slurm/finetune_array.sbatch"
STEP_BATCH = "scripts/slurm/evaluate.sbatch"
STUDY_SCRIPT = "src/run_study.py"


@dataclass(frozen=True)
class SlurmOptions:
    gpus: int = 0  # per fine-tuning job (> 1: torchrun inside) ; evaluations get one when > 0
    cpus: int = 4
    time: str | None = None
    partition: str | None = None
    mem: str | None = None
    log_dir: Path = Path("logs/slurm")


@dataclass(frozen=True)
class Job:
    name: str  # Slurm job name, also how other jobs refer to it
    batch: str  # the batch file, relative to the repository
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)  # travels with sbatch's default --export=ALL
    resources: tuple[str, ...] = ()
    after: tuple[str, ...] = ()  # names of the jobs that must succeed first
    what: str = ""  # one line for the user


def finetune_flags(study: Study, reg: str, mode: str | None = None) -> list[str]:
    """src/finetune.py flags that make the same runs as study.finetune_config (absolute paths:
    the jobs run in the repository, not where the study was submitted from)."""
    spec = study.spec
    flags = ["--model", spec.name, "--pretrained", "none" if spec.pretrained is None else _absolute_if_file(spec.pretrained)]
    if spec.cache_dir is not None:
        flags += ["--cache-dir", str(Path(spec.cache_dir).resolve())]
    if study.precision != "auto":  # "auto" is finetune.py's default; each job resolves it on its own device
        flags += ["--precision", study.precision]
    if not study.decode_cache:
        flags += ["--decode-cache", "off"]
    flags += ["--device", study.device, "--data-location", str(Path(study.data_location).resolve()),
              "--checkpoint-root", str(Path(study.layout.checkpoint_root).resolve()),
              "--results-root", str(Path(study.layout.results_root).resolve())]
    for key, value in study.finetune_settings(reg, mode).items():
        flags += [f"--{key.replace('_', '-')}", str(value)]
    for flag in flags:
        if any(c.isspace() for c in flag):  # finetune_array.sbatch splits FINETUNE_ARGS on spaces
            raise UserError(f"--launcher slurm cannot pass '{flag}' (it contains a space); use paths without spaces")
    return flags


def job_graph(study: Study, plan: Plan, study_argv: list[str], opts: SlurmOptions, python: str) -> list[Job]:
    """The jobs still needed, in submission order (every job after the ones it depends on)."""
    mid = study.spec.model_id
    log_dir = Path(opts.log_dir).resolve()
    base = [f"--cpus-per-task={opts.cpus}"] + [f"--{k}={v}" for k, v in (("time", opts.time), ("partition", opts.partition), ("mem", opts.mem)) if v]
    gpu = [f"--gres=gpu:{opts.gpus}"] if opts.gpus > 0 else []
    one_gpu = ["--gres=gpu:1"] if opts.gpus > 0 else []
    step_env = {"TA_REPO": str(REPO_ROOT), "PYTHON": python, "EVAL_SCRIPT": STUDY_SCRIPT}

    def step(name: str, stage: str, after: tuple[str, ...], resources: list[str], what: str) -> Job:
        return Job(name, STEP_BATCH, (*study_argv, "--stage", stage), step_env,
                   (*resources, f"--output={log_dir}/%x-%j.out"), after, what)

    jobs: list[Job] = []
    if not study.layout.zeroshot(mid).is_file():
        jobs.append(step(f"ta-{mid}-prepare", "prepare", (), base + one_gpu, "theta_0 and the zero-shot heads"))
    prepared = tuple(j.name for j in jobs)

    arrays: dict[tuple[str, str], str] = {}
    by_run: dict[str, str] = {}  # run name -> its array job
    for mode, reg in study.trainings:
        todo = [r for r in plan.runs if not r.done and r.run == study.finetune_config(r.task, mode, reg).run]
        if not todo:
            continue
        name = f"ta-{mid}-ft-{todo[0].run}"
        # a run that reads other runs (matched-strength L2-SP reads the tau-Jp runs) waits for their arrays
        first = resolve_config(study.finetune_config(todo[0].task, mode, reg))
        needs = tuple(by_run[r] for r in first.reg_plugin.references(first.reg_settings) if r in by_run)
        env = {"TA_REPO": str(REPO_ROOT), "PYTHON": python, "TASKS": ",".join(r.task for r in todo), "MODE": mode,
               "REG": reg, "NPROC": str(max(opts.gpus, 1)), "FINETUNE_ARGS": " ".join(finetune_flags(study, reg, mode))}
        resources = (*base, *gpu, f"--array=0-{len(todo) - 1}", f"--output={log_dir}/%x-%A_%a.out")
        jobs.append(Job(name, FINETUNE_BATCH, (), env, resources, prepared + needs, f"fine-tune {', '.join(r.task for r in todo)} ({todo[0].run})"))
        arrays[(mode, reg)] = name
        by_run[todo[0].run] = name

    evaluations = []
    for recipe in study.recipes:
        pending = pending_evaluations(study, recipe)
        if not pending:
            continue
        after = (arrays[recipe.training],) if recipe.training in arrays else prepared  # an array already waits for prepare
        run = recipe.evaluated.results_run
        evaluations.append(step(f"ta-{mid}-eval-{run}", f"evaluate:{recipe.name}", after, base + one_gpu, f"evaluate {run}: {', '.join(pending)}"))
    jobs += evaluations

    report = study.layout.report_dir(mid) / "report.md"
    if evaluations or not report.is_file() or _stale(report, study.layout.results_root / mid):
        after = tuple(j.name for j in evaluations) or tuple(j.name for j in jobs)
        jobs.append(step(f"ta-{mid}-report", "report", after, base, "the report"))
    return jobs


def _stale(report: Path, results: Path) -> bool:
    newest = max((p.stat().st_mtime for p in results.glob("*/*.json") if p.parent.name != "report"), default=0.0)
    return report.stat().st_mtime < newest


def _absolute_if_file(pretrained: str) -> str:
    return str(Path(pretrained).resolve()) if Path(pretrained).exists() else pretrained


def sbatch_command(job: Job, ids: Mapping[str, str]) -> list[str]:
    cmd = ["sbatch", "--parsable", f"--job-name={job.name}", *job.resources]
    if job.after:
        cmd.append("--dependency=afterok:" + ":".join(ids[name] for name in job.after))
    return [*cmd, job.batch, *job.args]


def format_commands(jobs: list[Job]) -> str:
    if not jobs:
        return "nothing to submit: every step of the study is done"
    lines = []
    for job in jobs:
        env = [f"{k}={v}" for k, v in job.env.items()]
        cmd = sbatch_command(job, {j.name: f"<{j.name}>" for j in jobs})  # ids are known once submitted
        lines += [f"# {job.what}", shlex.join(["env", *env, *cmd])]
    return "\n".join(lines)


Runner = Callable[..., subprocess.CompletedProcess]


def submit(jobs: list[Job], opts: SlurmOptions, run: Runner = subprocess.run) -> dict[str, str]:
    """Submit in order, each with afterok on the ids of the ones it needs; returns name -> job id."""
    Path(opts.log_dir).mkdir(parents=True, exist_ok=True)
    ids: dict[str, str] = {}
    for job in jobs:
        try:
            done = run(sbatch_command(job, ids), cwd=REPO_ROOT, env={**os.environ, **job.env}, capture_output=True, text=True)
        except FileNotFoundError:
            raise UserError("sbatch was not found; run --launcher slurm on a Slurm login node (or use --dry-run to see the commands)") from None
        if done.returncode != 0:
            already = f" (already submitted: {', '.join(f'{n} {i}' for n, i in ids.items())})" if ids else ""
            tail = (done.stderr or done.stdout).strip().splitlines()
            raise UserError(f"sbatch refused {job.name}: {tail[-1] if tail else 'no output'}{already}")
        ids[job.name] = done.stdout.strip().split(";")[0]
        print(f"{job.name}: job {ids[job.name]} ({job.what})", flush=True)
    return ids
