"""The fine-tuning loop: AdamW, warm-up + cosine, clipping, exact accumulation, resumable.

`run_finetune(cfg)` trains one task and writes `layout.finetuned(model_id, task, run)` with its
metadata JSON last (the mark of a finished run). Re-running the same command resumes from the
last saved state; a finished run is skipped unless cfg.force.

Read `_train` top-down: it is the whole run in commented sections. The recipe enters through
two plug-ins (recipes/): the mode's UpdateRule (what may change) and the regulariser's Penalty
(its term of the objective); the gradient of one step is in step.py.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from ..data.decoded import load_images
from ..data.fingerprints import fingerprints_or_reason
from ..data.registry import get_task
from ..data.sampling import EpochPlan, epoch_loader, loader_workers, size, subsample
from ..errors import UserError
from ..io import metadata_path, read_json
from ..models.encoder import ImageEncoder, load_encoder
from ..models.factory import ModelSpec
from ..models.heads import ClassificationHead
from ..models.pretrained import task_head, zeroshot_encoder
from ..paths import Layout
from ..precision import Precision, set_matmul_precision
from ..recipes import RunId
from ..recipes.base import Penalty, PenaltySetup, UpdateRule
from ..runtime import code_revision, limit_threads, seed_everything
from ..stop_signals import StopRequested
from ..vectors.task_vector import TaskVector
from .config import FinetuneConfig, TrainingPlan, resolve_config
from .cost import CostMeter
from .distributed import DistContext, barrier, init_distributed, shutdown, sum_over_processes
from .model import Trainee, build_trainee
from .ownership import owned_run_folder, tidy_finished_run
from .preemption import StopFlag
from .state import load_train_state, save_train_state, saved_step
from .step import NonFiniteStep, StepSchedule, TrainingDiverged, train_step
from .tracking import Progress, StepLog, WandbRun

__all__ = ["FinetuneResult", "RunPaths", "TrainingDiverged", "run_finetune"]


@dataclass(frozen=True)
class FinetuneResult:
    status: str  # "finished" | "skipped" | "preempted"
    path: Path  # the fine-tuned weights (present when finished or skipped)
    steps: int  # optimiser steps taken so far
    config: TrainingPlan
    is_main: bool = True  # rank 0 (or the only process): the one that reports


@dataclass(frozen=True)
class RunPaths:
    weights: Path
    state: Path
    log: Path
    run_dir: Path
    pending_log: Path  # a forced re-run's log until its model replaces the finished one

    @classmethod
    def of(cls, layout: Layout, model_id: str, task: str, run_id: RunId) -> "RunPaths":
        run = run_id.name
        return cls(
            weights=layout.finetuned(model_id, task, run),
            state=layout.train_state(model_id, task, run),
            log=layout.train_log(model_id, task, run),
            run_dir=layout.run_dir(model_id, task, run),
            pending_log=layout.train_log(model_id, task, run).with_name("log.pending.jsonl"),
        )


def run_finetune(cfg: FinetuneConfig | TrainingPlan) -> FinetuneResult:
    plan = resolve_config(cfg)
    spec = ModelSpec(plan.model, plan.pretrained, plan.cache_dir)
    layout = Layout(Path(plan.checkpoint_root), Path(plan.results_root))
    paths = RunPaths.of(layout, spec.model_id, plan.task, plan.run)
    if metadata_path(paths.weights).is_file() and not plan.force:
        steps = int(read_json(metadata_path(paths.weights)).get("steps", 0))
        print(f"{plan.task} {plan.run}: already finished ({paths.weights}); pass --force to train again", file=sys.stderr)
        if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 owns the folder
            tidy_finished_run(paths.run_dir, (paths.state, paths.pending_log))
        return FinetuneResult("skipped", paths.weights, steps, plan)
    _check_data(plan)  # cheap, and before theta_0 (hundreds of MB for new weights) or the run folder is written
    # The stop signals are handled from here to the end, so a SIGTERM during set-up or the final
    # save still ends with a saved state and EXIT_PREEMPTED (or a finished run), never 143.
    with StopFlag() as stop:
        ctx, device = init_distributed(plan.device)
        try:
            with owned_run_folder(paths.run_dir, ctx, device, temp_folders=(paths.state,)):
                return _train(plan, spec, layout, paths, ctx, device, stop)
        except StopRequested as err:  # during long set-up that keeps no state (pretraining theta_0's weights)
            if ctx.is_main:
                print(f"{plan.task} {plan.run}: {err}", file=sys.stderr)
            return FinetuneResult("preempted", paths.weights, 0, plan, ctx.is_main)
        finally:
            shutdown(ctx)


def _train(
    plan: TrainingPlan, spec: ModelSpec, layout: Layout, paths: RunPaths, ctx: DistContext, device: torch.device, stop: StopFlag
) -> FinetuneResult:
    # -- checks that need the process group -------------------------------------------------
    if plan.batch_size % ctx.world:
        raise UserError(f"--batch-size {plan.batch_size} is not divisible by the {ctx.world} processes; choose a multiple of {ctx.world}")
    limit_threads()
    set_matmul_precision(Precision(plan.precision))
    workers = loader_workers(plan.num_workers, device, get_task(plan.task).tensor_native)
    if plan.force and ctx.is_main:
        # Start over, but the finished model stays until the new one replaces it (save_weights).
        shutil.rmtree(paths.state, ignore_errors=True)
    # The finished model's log stays with it: a forced re-run logs beside it, and its log
    # replaces the old one only together with its weights (a failed re-run loses nothing).
    final_log = paths.log
    if plan.force and metadata_path(paths.weights).is_file():
        paths = dataclasses.replace(paths, log=paths.pending_log)
    barrier(ctx)

    # -- theta_0, the frozen head and the data ------------------------------------------------
    # theta_0 is shared by every run of the model: with random weights (pretrained=None) it must
    # not depend on which run happened to create it first, hence a fixed seed here.
    seed_everything(0)
    encoder, head = _theta0_and_head(spec, plan, layout, ctx)
    seed_everything(plan.seed)
    references = _references(plan, spec, layout, encoder)
    init_weights = _init_weights(plan, spec)
    data = Path(plan.data_location)
    cache = plan.decode_cache == "on"
    train_set = subsample(load_images(plan.task, "train", data, encoder.train_preprocess, cache, plan.train_crop == "cache"), plan.max_train_samples)
    reg = plan.reg_plugin
    penalty_tasks = reg.data_tasks(plan.reg_settings)
    penalty_sets = [load_images(t, "train", data, encoder.val_preprocess, cache) for t in penalty_tasks]
    _check_nonempty(plan.task, train_set, penalty_tasks, penalty_sets)

    # -- the trainee: the mode chooses what trains (at theta_0, before the optimiser) ------------
    encoder, head = encoder.to(device), head.to(device)
    meter = CostMeter()
    started = time.perf_counter()
    trainee = build_trainee(encoder, head, plan.mode_plugin, needs_tangent=reg.needs_tangent, init_weights=None)
    trainee.set_grad_checkpointing(plan.grad_checkpointing)
    theta0 = trainee.theta0() if reg.needs_theta0 else {}  # taken before anything moves theta
    update_rule = plan.mode_plugin.prepare(trainee, plan.mode_settings, _calibration_batches(train_set, plan))
    if init_weights is not None:  # --init-from replaces theta after theta_0 was kept and scored
        trainee.visual.load_state_dict(init_weights)
    params = trainee.parameters()
    optimizer = torch.optim.AdamW(params, lr=plan.lr, weight_decay=plan.wd)

    # -- where to start: a saved state of the same settings, or step 0 --------------------------
    epochs = EpochPlan(dataset_size=size(train_set), global_batch=plan.batch_size, rank=ctx.rank, world=ctx.world, seed=plan.seed)
    total_steps = plan.max_steps if plan.max_steps is not None else max(1, round((plan.epochs or 1) * epochs.steps_per_epoch * (plan.steps_fraction or 1.0)))
    resumed = load_train_state(paths.state, trainee.visual, optimizer, plan.training_settings())
    start = resumed.step if resumed else 0
    if resumed and ctx.is_main:
        print(f"{plan.task} {plan.run}: resuming at step {start}/{total_steps} from {paths.state}", file=sys.stderr)

    # -- the regulariser's penalty ----------------------------------------------------------------
    derived = layout.model_dir(spec.model_id) / "derived"
    setup = PenaltySetup(trainee, plan.run.variant, theta0, penalty_sets, references, derived, plan.seed, start, ctx.rank, ctx.world, workers)
    penalty = reg.build(plan.reg_settings, setup)
    meter.setup_seconds = time.perf_counter() - started  # what the recipe does before its first step (data loading aside)
    if penalty is not None and resumed and resumed.extra:
        penalty.load_state(resumed.extra)

    # -- the optimiser steps ------------------------------------------------------------------------
    loop = _Loop(plan, trainee, optimizer, params, epochs, train_set, penalty, update_rule, total_steps, paths, ctx, device, workers, meter)
    status = loop.run(start, stop)
    if status == "preempted":
        return FinetuneResult("preempted", paths.weights, loop.step, plan, ctx.is_main)

    # -- the fine-tuned weights, metadata last (the mark of a finished run) ------------------------
    if ctx.is_main:
        extra = _final_metadata(plan, total_steps, ctx.world, update_rule, penalty)
        extra["cost"] = meter.summary(plan.batch_size, device)
        companions = {paths.log: final_log} if paths.log != final_log and paths.log.is_file() else None
        trainee.encoder.save(paths.weights, extra, companions=companions)
        shutil.rmtree(paths.state, ignore_errors=True)
        if stop.requested:  # after the last step there is nothing to resume: the run completes
            print(f"{plan.task} {plan.run}: stop signal received after the last step; the final save completed, nothing to resume", file=sys.stderr)
    barrier(ctx)
    return FinetuneResult("finished", paths.weights, total_steps, plan, ctx.is_main)


def _theta0_and_head(spec: ModelSpec, plan: TrainingPlan, layout: Layout, ctx: DistContext) -> tuple[ImageEncoder, ClassificationHead]:
    """theta_0 and the frozen head; rank 0 creates the caches first so ranks never race on them."""
    data = Path(plan.data_location)
    if ctx.is_main:
        encoder, head = zeroshot_encoder(spec, layout, "cpu", plan.progress), task_head(spec, plan.task, layout, data, "cpu")
    barrier(ctx)
    if not ctx.is_main:
        encoder, head = zeroshot_encoder(spec, layout, "cpu"), task_head(spec, plan.task, layout, data, "cpu")
    return encoder, head


def _check_data(plan: TrainingPlan) -> None:
    """The run's tasks and penalty tasks are there (their class names read: a missing dataset is one
    line naming what to fetch), before anything is written."""
    data = Path(plan.data_location)
    for task in dict.fromkeys((plan.task, *plan.reg_plugin.data_tasks(plan.reg_settings))):
        get_task(task).load_classnames(data)


def _init_weights(plan: TrainingPlan, spec: ModelSpec) -> dict[str, torch.Tensor] | None:
    if plan.init_from is None:
        return None
    start = load_encoder(Path(plan.init_from), "cpu", expect_model=plan.model)
    source_id = start.metadata.get("model_id")
    if source_id is not None and source_id != spec.model_id:
        raise UserError(
            f"--init-from {plan.init_from} was fine-tuned from {source_id}, but this run's theta_0 is {spec.model_id}; "
            "pass the matching --model/--pretrained"
        )
    return start.weights()


def _references(plan: TrainingPlan, spec: ModelSpec, layout: Layout, theta0: ImageEncoder) -> dict[RunId, TaskVector]:
    """The task vectors of the finished runs the regulariser reads (same model and task)."""
    out = {}
    base = theta0.weights()
    for run in plan.references():
        path = layout.finetuned(spec.model_id, plan.task, run.name)
        if not metadata_path(path).is_file():
            raise UserError(f"the {plan.reg_plugin.name} regulariser reads the run {run.name}, but {path} is not a finished run; fine-tune {plan.task} as {run.name} first")
        out[run] = TaskVector.from_checkpoints(pretrained=base, finetuned=path)
    return out


def _calibration_batches(dataset: Dataset, plan: TrainingPlan):
    """n -> n training batches drawn with a fixed seed, the same on every process (mask calibration)."""

    def batches(n: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        batch = min(plan.batch_size, size(dataset))
        with torch.random.fork_rng(devices=[]):  # the training RNG stream is left untouched
            torch.manual_seed(plan.seed + 104729)
            loader = DataLoader(dataset, batch_size=batch, shuffle=True, drop_last=False)
            yield from itertools.islice(itertools.chain.from_iterable(itertools.repeat(loader)), n)

    return batches


def _check_nonempty(task: str, train_set: Dataset, penalty_tasks: tuple[str, ...], penalty_sets: list[Dataset]) -> None:
    if size(train_set) == 0:
        raise UserError(f"the train split of {task} is empty; check --data-location")
    for name, ds in zip(penalty_tasks, penalty_sets):
        if size(ds) == 0:
            raise UserError(f"penalty task {name} has no training inputs; check --data-location or drop it from --penalty-tasks")


def _final_metadata(plan: TrainingPlan, steps: int, world: int, rule: UpdateRule, penalty: Penalty | None) -> dict[str, Any]:
    return {
        "mode": plan.run.mode.name,
        "reg": plan.run.reg.name,
        "variant": plan.run.variant,
        "task": plan.task,
        "run": plan.run.name,
        "config": plan.to_json(),
        "seed": plan.seed,
        "precision": plan.precision,
        "code_revision": code_revision(),
        "steps": steps,
        "world_size": world,
        "recipe": {"mode": rule.summary(), "reg": penalty.summary() if penalty is not None else {}},
        # which examples train/Val/test held (data/fingerprints.py): results on other splits never compare silently
        "data_fingerprints": fingerprints_or_reason([plan.task], Path(plan.data_location)),
    }


class _Loop:
    """The optimiser-step loop over epochs, from a resume point to total_steps."""

    def __init__(self, plan: TrainingPlan, trainee: Trainee, optimizer: torch.optim.Optimizer, params: list, epochs: EpochPlan,
                 train_set: Dataset, penalty: Penalty | None, rule: UpdateRule, total_steps: int, paths: RunPaths,
                 ctx: DistContext, device: torch.device, workers: int, meter: CostMeter):
        self.plan, self.trainee, self.optimizer, self.params, self.epochs = plan, trainee, optimizer, params, epochs
        self.meter = meter
        self.train_set, self.penalty, self.rule, self.total, self.paths = train_set, penalty, rule, total_steps, paths
        self.ctx, self.device, self.workers = ctx, device, workers
        self.step = 0
        micro_batch = min(plan.micro_batch or epochs.local_batch, epochs.local_batch)
        warmup = plan.warmup if plan.steps_fraction is None else round(plan.warmup * plan.steps_fraction)  # a shortened run warms up alike
        self.schedule = StepSchedule(plan.lr, warmup, total_steps, plan.clip, micro_batch, plan.reg_plugin.name, Precision(plan.precision))

    def run(self, start: int, stop: StopFlag) -> str:
        self.step = start
        plan, main = self.plan, self.ctx.is_main
        log = StepLog(self.paths.log, start) if main else None
        progress = Progress(plan.progress, self.total, start, f"{plan.task} {plan.run}", plan.batch_size) if main else None
        wandb_run = WandbRun(plan.wandb_settings(), f"{plan.task}-{plan.run}", plan.to_json(), self.paths.run_dir, start, self.paths.state / "wandb.json") if main else None
        self.trainee.train()
        reseed = not get_task(plan.task).tensor_native  # only augmenting datasets need per-sample RNGs
        try:
            if self._agreed(stop.requested):  # a signal during set-up: the saved state is the resume point
                if main:
                    print(f"{plan.task} {plan.run}: stop signal received during set-up; re-run the same command to resume from step {self.step}", file=sys.stderr)
                return "preempted"
            with stop:
                while self.step < self.total:
                    epoch, batch_index = divmod(self.step, self.epochs.steps_per_epoch)
                    loader = epoch_loader(
                        self.train_set, self.epochs, epoch, batch_index, self.workers, self.device.type == "cuda", reseed=reseed,
                    )
                    for images, labels in loader:
                        record, stop_now = self._one_step(images, labels, epoch, batch_index, stop.requested)
                        batch_index += 1
                        if log is not None and wandb_run is not None and progress is not None:  # rank 0 only
                            log.write(record)
                            progress.update(self.step, record["loss"], record["acc"], record.get("penalty"), record.get("lr"))
                            wandb_run.log(record, self.step)
                        if self.step >= self.total:
                            break
                        if stop_now:
                            self._save()
                            if main:
                                print(f"{plan.task} {plan.run}: stop signal received; state saved at step {self.step}, re-run the same command to resume", file=sys.stderr)
                            return "preempted"
                        if self.step % plan.save_every == 0:
                            self._save()
        finally:
            if progress is not None:
                progress.close()
                if self.step > start:
                    print(progress.summary(), flush=True)  # the end of a run (or of its share before a stop)
            if log is not None:
                log.close()
            if wandb_run is not None:
                wandb_run.finish()
        return "finished"

    def _one_step(self, images: torch.Tensor, labels: torch.Tensor, epoch: int, batch_index: int, stop_requested: bool) -> tuple[dict[str, Any], bool]:
        started = time.perf_counter()
        try:
            record, stop_now = train_step(
                self.trainee, self.optimizer, self.params, self.rule, self.penalty, images, labels, self.step, self.schedule,
                self.ctx, self.device, stop_requested,
            )
        except NonFiniteStep as err:
            last = saved_step(self.paths.state)
            kept = f"the last good state (step {last}) is kept in {self.paths.state}" if last is not None else "no state had been saved yet"
            raise TrainingDiverged(f"{err} (epoch {epoch}, batch {batch_index}); {kept}; lower --lr or check the inputs of {self.plan.task}") from None
        self.step += 1
        self.meter.step_seconds.append(time.perf_counter() - started)  # the step returns once its statistics are on the host
        return {**record, "epoch": epoch, "batch": batch_index}, stop_now

    def _agreed(self, flag: bool) -> bool:
        """True on every process when any process has the flag set."""
        return bool(sum_over_processes(torch.tensor([float(flag)], dtype=torch.float64), self.ctx, self.device)[0] > 0)

    def _save(self) -> None:
        if self.ctx.is_main:
            extra = self.penalty.state() if self.penalty is not None else {}
            save_train_state(self.paths.state, self.step, self.trainee.visual, self.optimizer, self.plan.training_settings(), extra)
        barrier(self.ctx)
