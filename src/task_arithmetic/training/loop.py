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
import math
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from ..data.decoded import load_images
from ..data.registry import get_task
from ..errors import UserError
from ..io import load_weights, metadata_path, read_json
from ..models.encoder import ImageEncoder, load_encoder
from ..models.factory import ModelSpec
from ..models.heads import ClassificationHead
from ..models.pretrained import task_head, zeroshot_encoder
from ..paths import Layout
from ..precision import Precision, set_matmul_precision
from ..recipes.base import Penalty, PenaltySetup, UpdateRule
from ..runtime import code_revision, limit_threads, seed_everything
from .config import FinetuneConfig, TrainingPlan, resolve_config
from .data import EpochPlan, epoch_loader, loader_workers, size, subsample
from .distributed import DistContext, average_gradients, barrier, init_distributed, shutdown, sum_over_processes
from .model import Trainee, build_trainee
from .ownership import owned_run_folder
from .preemption import StopFlag
from .schedule import learning_rate
from .state import load_train_state, save_train_state, saved_step
from .step import StepStats, accumulate_gradients
from .tracking import Progress, StepLog, WandbRun


class TrainingDiverged(UserError):
    """The loss or gradient became NaN/inf; the last saved state is left untouched."""


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
    def of(cls, layout: Layout, model_id: str, task: str, run: str) -> "RunPaths":
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
        return FinetuneResult("skipped", paths.weights, steps, plan)
    # The stop signals are handled from here to the end, so a SIGTERM during set-up or the final
    # save still ends with a saved state and EXIT_PREEMPTED (or a finished run), never 143.
    with StopFlag() as stop:
        ctx, device = init_distributed(plan.device)
        try:
            with owned_run_folder(paths.run_dir, ctx, device, temp_folders=(paths.state,)):
                return _train(plan, spec, layout, paths, ctx, device, stop)
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
    reference_norms = _reference_norms(plan, spec, layout, encoder)
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
    trainee = build_trainee(encoder, head, plan.mode, needs_theta0=reg.needs_theta0, init_weights=None)
    trainee.set_grad_checkpointing(plan.grad_checkpointing)
    update_rule = plan.mode_plugin.prepare(trainee, plan.mode_settings, _calibration_batches(train_set, plan))
    if init_weights is not None:  # --init-from replaces theta after theta_0 was kept and scored
        trainee.visual.load_state_dict(init_weights)
    params = trainee.parameters()
    optimizer = torch.optim.AdamW(params, lr=plan.lr, weight_decay=plan.wd)

    # -- where to start: a saved state of the same settings, or step 0 --------------------------
    epochs = EpochPlan(dataset_size=size(train_set), global_batch=plan.batch_size, rank=ctx.rank, world=ctx.world, seed=plan.seed)
    total_steps = plan.max_steps if plan.max_steps is not None else (plan.epochs or 1) * epochs.steps_per_epoch
    resumed = load_train_state(paths.state, trainee.visual, optimizer, plan.training_settings())
    start = resumed.step if resumed else 0
    if resumed and ctx.is_main:
        print(f"{plan.task} {plan.run}: resuming at step {start}/{total_steps} from {paths.state}", file=sys.stderr)

    # -- the regulariser's penalty ----------------------------------------------------------------
    setup = PenaltySetup(trainee, plan.variant, penalty_sets, plan.seed, start, ctx.rank, ctx.world, workers, reference_norms)
    penalty = reg.build(plan.reg_settings, setup)
    if penalty is not None and resumed and resumed.extra:
        penalty.load_state(resumed.extra)

    # -- the optimiser steps ------------------------------------------------------------------------
    loop = _Loop(plan, trainee, optimizer, params, epochs, train_set, penalty, update_rule, total_steps, paths, ctx, device, workers)
    status = loop.run(start, stop)
    if status == "preempted":
        return FinetuneResult("preempted", paths.weights, loop.step, plan, ctx.is_main)

    # -- the fine-tuned weights, metadata last (the mark of a finished run) ------------------------
    if ctx.is_main:
        extra = _final_metadata(plan, total_steps, ctx.world, update_rule, penalty)
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


def _reference_norms(plan: TrainingPlan, spec: ModelSpec, layout: Layout, theta0: ImageEncoder) -> dict[str, float]:
    """||tau|| of the finished runs the regulariser refers to (same model and task)."""
    norms = {}
    base = theta0.weights()
    for run in plan.reg_plugin.references(plan.reg_settings):
        path = layout.finetuned(spec.model_id, plan.task, run)
        if not metadata_path(path).is_file():
            raise UserError(f"this run matches ||tau|| of the run {run}, but {path} is not a finished run; fine-tune {plan.task} as {run} first")
        weights, _ = load_weights(path)
        squares = [((weights[k].double() - v.double()) ** 2).sum() for k, v in base.items() if k in weights and v.is_floating_point()]
        norms[run] = float(torch.stack(squares).sum().sqrt())
        if norms[run] <= 0:
            raise UserError(f"the run {run} of {plan.task} has a zero task vector; there is no norm to match")
    return norms


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
        "mode": plan.mode,
        "reg": plan.reg,
        "variant": plan.variant,
        "task": plan.task,
        "run": plan.run,
        "config": plan.to_json(),
        "seed": plan.seed,
        "precision": plan.precision,
        "code_revision": code_revision(),
        "steps": steps,
        "world_size": world,
        "recipe": {"mode": rule.summary(), "reg": penalty.summary() if penalty is not None else {}},
    }


class _Loop:
    """The optimiser-step loop over epochs, from a resume point to total_steps."""

    def __init__(self, plan: TrainingPlan, trainee: Trainee, optimizer: torch.optim.Optimizer, params: list, epochs: EpochPlan,
                 train_set: Dataset, penalty: Penalty | None, rule: UpdateRule, total_steps: int, paths: RunPaths,
                 ctx: DistContext, device: torch.device, workers: int):
        self.plan, self.trainee, self.optimizer, self.params, self.epochs = plan, trainee, optimizer, params, epochs
        self.train_set, self.penalty, self.rule, self.total, self.paths = train_set, penalty, rule, total_steps, paths
        self.ctx, self.device, self.workers = ctx, device, workers
        self.metrics = penalty.metrics if penalty is not None else ()
        self.step = 0
        self.micro_batch = min(plan.micro_batch or epochs.local_batch, epochs.local_batch)

    def run(self, start: int, stop: StopFlag) -> str:
        self.step = start
        plan, main = self.plan, self.ctx.is_main
        log = StepLog(self.paths.log, start) if main else None
        progress = Progress(main and plan.progress, self.total, start, f"{plan.task} {plan.run}")
        wandb_run = WandbRun(plan.wandb, f"{plan.task}-{plan.run}", plan.to_json(), self.paths.run_dir, start) if main else None
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
                        if log is not None and wandb_run is not None:  # rank 0 only
                            log.write(record)
                            progress.update(record["loss"], record["acc"], record.get("penalty"))
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
            progress.close()
            if log is not None:
                log.close()
            if wandb_run is not None:
                wandb_run.finish()
        return "finished"

    def _one_step(self, images: torch.Tensor, labels: torch.Tensor, epoch: int, batch_index: int, stop_requested: bool) -> tuple[dict[str, Any], bool]:
        plan, ctx = self.plan, self.ctx
        # inputs of the task and, if the penalty wants them, of its other tasks
        images = images.to(self.device, non_blocking=True)
        labels = torch.as_tensor(labels).to(self.device, non_blocking=True)
        pen_inputs = self.penalty.inputs_for_step(self.step) if self.penalty is not None else None
        if pen_inputs is not None and pen_inputs.inputs is not None:
            pen_inputs.inputs = pen_inputs.inputs.to(self.device, non_blocking=True)

        # the gradient of the objective, averaged over processes, shaped by the mode
        self.optimizer.zero_grad(set_to_none=True)
        local = accumulate_gradients(
            self.trainee, images, labels, self.micro_batch, global_count=images.shape[0] * ctx.world, world=ctx.world,
            penalty=self.penalty, penalty_inputs=pen_inputs, precision=Precision(plan.precision),
        )
        average_gradients(self.params, ctx)
        self.rule.after_backward()
        # One small reduction carries the metrics and the stop request, so every process stops
        # after the same step.
        reduced = sum_over_processes(torch.cat([local.as_tensor(), torch.tensor([float(stop_requested)], dtype=torch.float64)]), ctx, self.device)
        stats, stop_now = StepStats.from_tensor(reduced[:-1]), bool(reduced[-1] > 0)
        grad_norm = self._clip()
        means = stats.metric_means(self.metrics)
        penalty_record = self.penalty.record(means) if self.penalty is not None else {}
        self._check_finite(stats, penalty_record.get("penalty", 0.0), grad_norm, epoch, batch_index)

        # the update
        lr = learning_rate(self.step, plan.lr, plan.warmup, self.total)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        try:
            self.optimizer.step()
        except RuntimeError as err:
            if "overflow" not in str(err):
                raise
            raise TrainingDiverged(
                f"training diverged: the optimiser update overflowed at step {self.step + 1} (--lr {plan.lr:g}); "
                "lower --lr (the paper uses 1e-5)"
            ) from err
        self.rule.after_step()
        if self.penalty is not None:
            self.penalty.after_step(means)
        self.step += 1

        record: dict[str, Any] = {
            "step": self.step, "epoch": epoch, "batch": batch_index, "lr": lr, "loss": stats.loss,
            "acc": stats.accuracy, "grad_norm": grad_norm, "time": time.time(), **penalty_record,
        }
        return record, stop_now

    def _agreed(self, flag: bool) -> bool:
        """True on every process when any process has the flag set."""
        return bool(sum_over_processes(torch.tensor([float(flag)], dtype=torch.float64), self.ctx, self.device)[0] > 0)

    def _clip(self) -> float:
        max_norm = self.plan.clip if self.plan.clip > 0 else math.inf
        return float(torch.nn.utils.clip_grad_norm_(self.params, max_norm))

    def _check_finite(self, stats: StepStats, penalty: float, grad_norm: float, epoch: int, batch_index: int) -> None:
        checked = (("loss", stats.loss), (f"{self.plan.reg} penalty", penalty), ("gradient norm", grad_norm))
        bad = [(name, value) for name, value in checked if not math.isfinite(value)]
        if not bad:
            return
        name, value = bad[0]
        last = saved_step(self.paths.state)
        kept = f"the last good state (step {last}) is kept in {self.paths.state}" if last is not None else "no state had been saved yet"
        raise TrainingDiverged(
            f"training diverged: the {name} is {value} at step {self.step + 1} (epoch {epoch}, batch {batch_index}); "
            f"{kept}; lower --lr or check the inputs of {self.plan.task}"
        )

    def _save(self) -> None:
        if self.ctx.is_main:
            extra = self.penalty.state() if self.penalty is not None else {}
            save_train_state(self.paths.state, self.step, self.trainee.visual, self.optimizer, self.plan.training_settings(), extra)
        barrier(self.ctx)
