"""The local study in N worker processes: fine-tuning runs and evaluations side by side.

Why: the embedded model is so small that one process cannot keep two cores busy (much of a step
is per-operation overhead), and when another program takes a core, a process with two threads
stalls at every parallel region waiting for its descheduled thread. Independent runs in
single-threaded processes keep every core busy and, under load, lose only the share of the cores
they lose (README, "The embedded benchmark", has the measurements).

The units and their order are the Slurm job graph's (pipeline/slurm.py), one run at a time: a run
that reads other runs (matched-strength L2-SP reads the task's tau-Jp run) waits for them, and a
recipe's evaluations wait for every run they read. Each unit is the call the sequential study
makes (`run_finetune`, `evaluate_recipe`), so a unit's numbers are those of a sequential run at the
same thread count.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import signal
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Callable

import torch

from ..embedded.weights import register_weight_tag
from ..errors import UserError
from ..models.factory import register_model_config, runtime_model_configs
from ..plugins import register_builtin_plugins
from ..runtime import usable_cores
from ..training.config import resolve_config
from ..training.loop import run_finetune
from ..training.preemption import STOP_SIGNALS
from .catalog import get_recipe
from .lifeline import die_with_parent, running_unit
from .plan import Study, pending_evaluations, planned_run
from .units import evaluate_recipe, stop_for_signal

MAX_AUTO_JOBS = 8  # beyond this, the study's few dozen units gain little and memory grows


@dataclass(frozen=True)
class Unit:
    name: str  # "finetune <task> <run>" or "evaluate <results run>"
    group: str  # the study log's line it adds its time to
    after: tuple[str, ...]  # names of the units that must finish first
    task: str | None = None  # fine-tuning: the run's task, mode and reg
    mode: str | None = None
    reg: str | None = None
    recipe: str | None = None  # evaluation: the study's recipe name
    done: bool = False  # its outputs are there and fresh (plan.py's test): nothing to start


def auto_jobs(device: str) -> int:
    """--jobs auto: one single-threaded process per core on CPU; one process on a GPU (the runs
    would share it and gain nothing)."""
    if not device.startswith("cpu") and (device.startswith("cuda") or torch.cuda.is_available()):
        return 1
    return max(1, min(usable_cores(), MAX_AUTO_JOBS))


def parse_jobs(text: str) -> int | None:
    """--jobs N or auto (None: decided from the device by auto_jobs)."""
    if text == "auto":
        return None
    if not text.isdigit() or int(text) < 1:
        raise UserError(f"--jobs takes a positive integer or 'auto', got '{text}'")
    return int(text)


def study_units(study: Study) -> list[Unit]:
    """Every fine-tuning run and every recipe's evaluations, each after what it reads."""
    units: list[Unit] = []
    run_unit: dict[tuple[str, str], str] = {}  # (task, run name) -> unit name
    for mode, reg in study.trainings:
        for task in study.tasks:
            cfg = resolve_config(study.finetune_config(task, mode, reg))
            after = tuple(run_unit[(task, r)] for r in cfg.reg_plugin.references(cfg.reg_settings) if (task, r) in run_unit)
            name = f"finetune {task} {cfg.run}"
            run_unit[(task, cfg.run)] = name
            done = planned_run(study, task, mode, reg).done
            units.append(Unit(name, f"finetune {mode}-{reg}", after, task=task, mode=mode, reg=reg, done=done))
    for recipe in study.recipes:
        source = recipe.evaluated.source_run
        after = tuple(run_unit[(t, source)] for t in study.tasks if (t, source) in run_unit)
        run = recipe.evaluated.results_run
        units.append(Unit(f"evaluate {run}", f"evaluate {run}", after, recipe=recipe.name, done=not pending_evaluations(study, recipe)))
    return units


def _init_worker(threads: int, weight_tags: tuple[str, ...], model_configs: dict[str, dict], parent_pid: int) -> None:
    die_with_parent(parent_pid)  # never outlive a killed study (lifeline.py)
    # A spawned worker starts bare: the plug-ins every entry point registers, the architectures the
    # parent registered at run time, the replicate's pretraining-seed weight tag, its share of the cores.
    register_builtin_plugins()
    for name, config in model_configs.items():
        register_model_config(name, config)
    for tag in weight_tags:
        register_weight_tag(tag)
    torch.set_num_threads(threads)
    # Stop signals reach the worker from the parent (forwarded), from the terminal's process
    # group, or from the kernel when the parent dies; a fine-tuning run turns them into a saved
    # state, an evaluation unwinds, an idle worker exits.


def _run_unit(study: Study, unit: Unit) -> tuple[str, float]:
    start = time.perf_counter()
    with running_unit():
        if unit.recipe is None:
            result = run_finetune(study.finetune_config(unit.task, unit.mode, unit.reg))  # type: ignore[arg-type]
            status = result.status
        else:
            evaluate_recipe(study, get_recipe(unit.recipe))
            status = "finished"
    return status, time.perf_counter() - start


def run_units(study: Study, jobs: int, record: Callable[[str, float], None], weight_tags: tuple[str, ...] = ()) -> None:
    """Run every unit of the study in `jobs` processes, ready evaluations first (they are the
    longest), then runs in the sequential study's order. A unit's failure stops new starts; the
    running ones finish, then the error is raised. A stop signal is forwarded to the workers (a
    fine-tuning run saves its state) and the study exits EXIT_PREEMPTED, to be re-run."""
    study = dataclasses.replace(study, progress=False)  # progress bars from several processes garble
    units = study_units(study)
    done = {u.name for u in units if u.done}
    # stable: evaluations first, each list in order
    pending = sorted((u for u in units if not u.done), key=lambda u: u.recipe is None)
    if not pending:  # a finished study (a reused replicate): no worker to start
        print(f"  all {len(units)} units done", flush=True)
        return
    threads = max(1, usable_cores() // jobs)
    print(f"  {len(pending)} of {len(units)} units to run, in {jobs} processes ({threads} thread{'s' if threads > 1 else ''} each)", flush=True)
    running: dict[Future, Unit] = {}
    failure: BaseException | None = None
    stopped: list[int] = []
    context = multiprocessing.get_context("spawn")  # never fork a process whose torch threads are running
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker, initargs=(threads, weight_tags, runtime_model_configs(), os.getpid())) as pool:

        def forward(signum: int, frame: object) -> None:
            stopped.append(signum)
            for process in list(getattr(pool, "_processes", {}).values()):
                if process.is_alive():
                    os.kill(process.pid, signum)

        previous = {sig: signal.signal(sig, forward) for sig in STOP_SIGNALS}
        try:
            while pending or running:
                if failure is None and not stopped:
                    for unit in [u for u in pending if all(d in done for d in u.after)][: jobs - len(running)]:
                        pending.remove(unit)
                        running[pool.submit(_run_unit, study, unit)] = unit
                if not running:
                    break
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    unit = running.pop(future)
                    try:
                        status, seconds = future.result()
                    except BaseException as err:  # noqa: BLE001 - stop starting units; raised once the running ones end
                        failure = failure or err
                        continue
                    record(unit.group, seconds)
                    if status == "preempted":
                        stopped.append(signal.SIGTERM)
                        continue
                    done.add(unit.name)
                    print(f"  done: {unit.name} ({seconds:.1f} s)", flush=True)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    if stopped:
        stop_for_signal(f" ({len(units) - len(done)} units left)")
    if isinstance(failure, BrokenProcessPool):
        raise UserError("a worker process of the study died (killed, or out of memory); finished units are kept: run the same command again, or with --jobs 1")
    if failure is not None:
        raise failure
    if pending:  # cannot happen for a study's own graph; guards a unit that waits for a missing one
        raise UserError(f"units never became ready: {', '.join(u.name for u in pending)}")
