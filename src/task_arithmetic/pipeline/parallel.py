"""The local study in N worker processes: fine-tuning runs and evaluations side by side.

Why: the embedded model is so small that one process cannot keep two cores busy (much of a step
is per-operation overhead), and when another program takes a core, a process with two threads
stalls at every parallel region waiting for its descheduled thread. Independent runs in
single-threaded processes keep every core busy and, under load, lose only the share of the cores
they lose (README, "The embedded benchmark", has the measurements).

The units and their dependencies are the study's graph (graph.py), the same the sequential study
and the Slurm jobs walk; a unit reaches its worker as JSON (the study and the unit's id) and runs
the call the sequential study makes, so its numbers are those of a sequential run at the same
thread count. Workers die with the study (lifeline.py), so a killed study leaves no worker behind
holding a lock.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import signal
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Callable

import torch

from ..errors import UserError
from ..models.factory import register_model_config, runtime_model_configs
from ..plugins import register_builtin_plugins
from ..runtime import usable_cores
from ..stop_signals import STOP_SIGNALS
from .definition import Study
from .graph import Unit, UnitKind, pending_units, run_unit, unit_from_payload, unit_payload
from .lifeline import die_with_parent, running_unit
from .stop import stop_for_signal

MAX_AUTO_JOBS = 8  # beyond this, the study's few dozen units gain little and memory grows


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


def _init_worker(threads: int, model_configs: dict[str, dict], parent: int) -> None:
    die_with_parent(parent)  # never outlive a killed study (lifeline.py)
    # A spawned worker starts bare: the plug-ins every entry point registers, the architectures the
    # parent registered at run time, its share of the cores. Stop signals reach the worker from
    # the parent (forwarded), from the terminal's process group, or from the kernel when the
    # parent dies; a fine-tuning run turns them into a saved state, an evaluation unwinds, an
    # idle worker exits.
    register_builtin_plugins()
    for name, config in model_configs.items():
        register_model_config(name, config)
    torch.set_num_threads(threads)


def _run_unit(payload: dict) -> tuple[str, float]:
    start = time.perf_counter()
    study, unit = unit_from_payload(payload)
    with running_unit():
        status = run_unit(study, unit)
    return status, time.perf_counter() - start


def run_units(study: Study, units: list[Unit], jobs: int, record: Callable[[str, float], None]) -> None:
    """Run every unit not yet done in `jobs` processes, ready evaluations first (they are the
    longest), then runs in graph order. A unit's failure stops new starts; the running ones
    finish, then the error is raised. A stop signal is forwarded to the workers (a fine-tuning run
    saves its state) and the study exits EXIT_PREEMPTED, to be re-run."""
    study = dataclasses.replace(study, progress=False)  # progress bars from several processes garble
    todo = pending_units(study, units)
    done = {u.id for u in units} - {u.id for u in todo}
    # stable: evaluations first, each list in graph order
    pending = sorted(todo, key=lambda u: u.kind is not UnitKind.EVALUATE)
    if not pending:  # a finished study (a reused replicate): no worker to start
        print(f"  all {len(units)} units done", flush=True)
        return
    threads = max(1, usable_cores() // jobs)
    print(f"  {len(pending)} of {len(units)} units to run, in {jobs} processes ({threads} thread{'s' if threads > 1 else ''} each)", flush=True)
    running: dict[Future, Unit] = {}
    failure: BaseException | None = None
    stopped: list[int] = []
    context = multiprocessing.get_context("spawn")  # never fork a process whose torch threads are running
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker, initargs=(threads, runtime_model_configs(), os.getpid())) as pool:

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
                        running[pool.submit(_run_unit, unit_payload(study, unit))] = unit
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
                    done.add(unit.id)
                    print(f"  done: {unit.id} ({seconds:.1f} s)", flush=True)
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
        raise UserError(f"units never became ready: {', '.join(u.id for u in pending)}")
