"""The fine-tuning loop: AdamW, warm-up + cosine, clipping, exact accumulation, resumable.

`run_finetune(cfg)` trains one task and writes `layout.finetuned(model_id, task, run)` with its
metadata JSON last (the mark of a finished run). Re-running the same command resumes from the
last saved state; a finished run is skipped unless cfg.force.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from ..data.registry import get_task
from ..data.splits import load_dataset
from ..errors import UserError
from ..io import metadata_path, read_json
from ..models.encoder import ImageEncoder, load_encoder
from ..models.factory import ModelSpec
from ..models.heads import ClassificationHead
from ..models.pretrained import task_head, zeroshot_encoder
from ..paths import Layout
from ..runtime import code_revision, limit_threads, seed_everything
from .config import FinetuneConfig, resolve_config
from .data import EpochPlan, epoch_loader, loader_workers, subsample
from .distributed import DistContext, average_gradients, barrier, init_distributed, shutdown, sum_over_processes
from .model import Trainee, build_trainee
from .ownership import owned_run_folder
from .preemption import StopFlag
from .regularizers import PenaltySource
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
    config: FinetuneConfig
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


def run_finetune(cfg: FinetuneConfig) -> FinetuneResult:
    cfg = resolve_config(cfg)
    spec = ModelSpec(cfg.model, cfg.pretrained, cfg.cache_dir)
    layout = Layout(Path(cfg.checkpoint_root), Path(cfg.results_root))
    paths = RunPaths.of(layout, spec.model_id, cfg.task, cfg.run)
    if metadata_path(paths.weights).is_file() and not cfg.force:
        steps = int(read_json(metadata_path(paths.weights)).get("steps", 0))
        print(f"{cfg.task} {cfg.run}: already finished ({paths.weights}); pass --force to train again", file=sys.stderr)
        return FinetuneResult("skipped", paths.weights, steps, cfg)
    # The stop signals are handled from here to the end, so a SIGTERM during set-up or the final
    # save still ends with a saved state and EXIT_PREEMPTED (or a finished run), never 143.
    with StopFlag() as stop:
        ctx, device = init_distributed(cfg.device)
        try:
            with owned_run_folder(paths.run_dir, ctx, device, temp_folders=(paths.state,)):
                return _train(cfg, spec, layout, paths, ctx, device, stop)
        finally:
            shutdown(ctx)


def _train(cfg: FinetuneConfig, spec: ModelSpec, layout: Layout, paths: RunPaths, ctx: DistContext, device: torch.device, stop: StopFlag) -> FinetuneResult:
    assert cfg.batch_size is not None and cfg.penalty_batch is not None and cfg.penalty_coef is not None
    if cfg.batch_size % ctx.world:
        raise UserError(f"--batch-size {cfg.batch_size} is not divisible by the {ctx.world} processes; choose a multiple of {ctx.world}")
    limit_threads()
    cfg = dataclasses.replace(cfg, num_workers=loader_workers(cfg.num_workers, device, get_task(cfg.task).tensor_native))
    if cfg.force and ctx.is_main:
        # Start over, but the finished model stays until the new one replaces it (save_weights).
        shutil.rmtree(paths.state, ignore_errors=True)
    # The finished model's log stays with it: a forced re-run logs beside it, and its log
    # replaces the old one only together with its weights (a failed re-run loses nothing).
    final_log = paths.log
    if cfg.force and metadata_path(paths.weights).is_file():
        paths = dataclasses.replace(paths, log=paths.pending_log)
    barrier(ctx)

    # theta_0 is shared by every run of the model: with random weights (pretrained=None) it must
    # not depend on which run happened to create it first, hence a fixed seed here.
    seed_everything(0)
    encoder, head = _theta0_and_head(spec, cfg, layout, ctx)
    seed_everything(cfg.seed)
    init_weights = _init_weights(cfg, spec)
    train_set = subsample(load_dataset(cfg.task, "train", Path(cfg.data_location), encoder.train_preprocess), cfg.max_train_samples)
    penalty_sets = [load_dataset(t, "train", Path(cfg.data_location), encoder.val_preprocess) for t in cfg.penalty_tasks or ()]
    _check_nonempty(cfg.task, train_set, cfg.penalty_tasks or (), penalty_sets)

    encoder, head = encoder.to(device), head.to(device)
    trainee = build_trainee(encoder, head, cfg.mode or "standard", needs_theta0=cfg.reg == "tau_jp", init_weights=init_weights)
    params = trainee.parameters()
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.wd)

    plan = EpochPlan(dataset_size=len(train_set), global_batch=cfg.batch_size, rank=ctx.rank, world=ctx.world, seed=cfg.seed)  # type: ignore[arg-type]
    total_steps = cfg.max_steps if cfg.max_steps is not None else cfg.epochs * plan.steps_per_epoch  # type: ignore[operator]
    fingerprint = cfg.training_settings()
    resumed = load_train_state(paths.state, trainee.visual, optimizer, fingerprint)
    start = resumed.step if resumed else 0
    if resumed and ctx.is_main:
        print(f"{cfg.task} {cfg.run}: resuming at step {start}/{total_steps} from {paths.state}", file=sys.stderr)

    penalty = None
    if cfg.reg == "tau_jp":
        # Penalty batches are small: one loader worker per penalty task keeps them ahead of the
        # step without starting num_workers processes for every task.
        penalty = PenaltySource.create(cfg.variant, penalty_sets, cfg.penalty_batch, cfg.seed, start, ctx.rank, ctx.world, min(cfg.num_workers or 0, 1))

    loop = _Loop(cfg, trainee, optimizer, params, plan, train_set, penalty, total_steps, paths, ctx, device)
    status = loop.run(start, stop)
    if status == "preempted":
        return FinetuneResult("preempted", paths.weights, loop.step, cfg, ctx.is_main)
    if ctx.is_main:
        extra = _final_metadata(cfg, total_steps, ctx.world)
        companions = {paths.log: final_log} if paths.log != final_log and paths.log.is_file() else None
        trainee.encoder.save(paths.weights, extra, companions=companions)
        shutil.rmtree(paths.state, ignore_errors=True)
        if stop.requested:  # after the last step there is nothing to resume: the run completes
            print(f"{cfg.task} {cfg.run}: stop signal received after the last step; the final save completed, nothing to resume", file=sys.stderr)
    barrier(ctx)
    return FinetuneResult("finished", paths.weights, total_steps, cfg, ctx.is_main)


def _theta0_and_head(spec: ModelSpec, cfg: FinetuneConfig, layout: Layout, ctx: DistContext) -> tuple[ImageEncoder, ClassificationHead]:
    """theta_0 and the frozen head; rank 0 creates the caches first so ranks never race on them."""
    data = Path(cfg.data_location)
    if ctx.is_main:
        encoder, head = zeroshot_encoder(spec, layout, "cpu", cfg.progress), task_head(spec, cfg.task, layout, data, "cpu")
    barrier(ctx)
    if not ctx.is_main:
        encoder, head = zeroshot_encoder(spec, layout, "cpu"), task_head(spec, cfg.task, layout, data, "cpu")
    return encoder, head


def _init_weights(cfg: FinetuneConfig, spec: ModelSpec) -> dict[str, torch.Tensor] | None:
    if cfg.init_from is None:
        return None
    start = load_encoder(Path(cfg.init_from), "cpu", expect_model=cfg.model)
    source_id = start.metadata.get("model_id")
    if source_id is not None and source_id != spec.model_id:
        raise UserError(
            f"--init-from {cfg.init_from} was fine-tuned from {source_id}, but this run's theta_0 is {spec.model_id}; "
            "pass the matching --model/--pretrained"
        )
    return start.weights()


def _check_nonempty(task: str, train_set: Dataset, penalty_tasks: tuple[str, ...], penalty_sets: list[Dataset]) -> None:
    if len(train_set) == 0:  # type: ignore[arg-type]
        raise UserError(f"the train split of {task} is empty; check --data-location")
    for name, ds in zip(penalty_tasks, penalty_sets):
        if len(ds) == 0:  # type: ignore[arg-type]
            raise UserError(f"penalty task {name} has no training inputs; check --data-location or drop it from --penalty-tasks")


def _final_metadata(cfg: FinetuneConfig, steps: int, world: int) -> dict[str, Any]:
    return {
        "mode": cfg.mode,
        "reg": cfg.reg,
        "variant": cfg.variant,
        "task": cfg.task,
        "run": cfg.run,
        "config": cfg.to_json(),
        "seed": cfg.seed,
        "code_revision": code_revision(),
        "steps": steps,
        "world_size": world,
    }


class _Loop:
    """The optimiser-step loop over epochs, from a resume point to total_steps."""

    def __init__(self, cfg: FinetuneConfig, trainee: Trainee, optimizer: torch.optim.Optimizer, params: list, plan: EpochPlan,
                 train_set: Dataset, penalty: PenaltySource | None, total_steps: int, paths: RunPaths, ctx: DistContext, device: torch.device):
        self.cfg, self.trainee, self.optimizer, self.params, self.plan = cfg, trainee, optimizer, params, plan
        self.train_set, self.penalty, self.total, self.paths, self.ctx, self.device = train_set, penalty, total_steps, paths, ctx, device
        self.step = 0
        self.micro_batch = min(cfg.micro_batch or plan.local_batch, plan.local_batch)

    def run(self, start: int, stop: StopFlag) -> str:
        self.step = start
        cfg, main = self.cfg, self.ctx.is_main
        log = StepLog(self.paths.log, start) if main else None
        progress = Progress(main and cfg.progress, self.total, start, f"{cfg.task} {cfg.run}")
        wandb_run = WandbRun(cfg.wandb, f"{cfg.task}-{cfg.run}", cfg.to_json(), self.paths.run_dir, start) if main else None
        self.trainee.train()
        reseed = not get_task(cfg.task).tensor_native  # only augmenting datasets need per-sample RNGs
        try:
            if self._agreed(stop.requested):  # a signal during set-up: the saved state is the resume point
                if main:
                    print(f"{cfg.task} {cfg.run}: stop signal received during set-up; re-run the same command to resume from step {self.step}", file=sys.stderr)
                return "preempted"
            with stop:
                while self.step < self.total:
                    epoch, batch_index = divmod(self.step, self.plan.steps_per_epoch)
                    loader = epoch_loader(
                        self.train_set, self.plan, epoch, batch_index, cfg.num_workers, self.device.type == "cuda",
                        reseed=reseed,
                    )
                    for images, labels in loader:
                        record, stop_now = self._one_step(images, labels, epoch, batch_index, stop.requested)
                        batch_index += 1
                        if main:
                            log.write(record)  # type: ignore[union-attr]
                            progress.update(record["loss"], record["acc"], record.get("penalty"))
                            wandb_run.log(record, self.step)  # type: ignore[union-attr]
                        if self.step >= self.total:
                            break
                        if stop_now:
                            self._save()
                            if main:
                                print(f"{cfg.task} {cfg.run}: stop signal received; state saved at step {self.step}, re-run the same command to resume", file=sys.stderr)
                            return "preempted"
                        if self.step % cfg.save_every == 0:
                            self._save()
        finally:
            progress.close()
            if log is not None:
                log.close()
            if wandb_run is not None:
                wandb_run.finish()
        return "finished"

    def _one_step(self, images: torch.Tensor, labels: torch.Tensor, epoch: int, batch_index: int, stop_requested: bool) -> tuple[dict[str, Any], bool]:
        cfg, ctx = self.cfg, self.ctx
        images = images.to(self.device, non_blocking=True)
        labels = torch.as_tensor(labels).to(self.device, non_blocking=True)
        pen_x, pen_count = (None, 0)
        if self.penalty is not None:
            pen_x, pen_count = self.penalty.inputs_for_step(self.step)
            pen_x = pen_x.to(self.device, non_blocking=True) if pen_x is not None else None
        self.optimizer.zero_grad(set_to_none=True)
        local = accumulate_gradients(
            self.trainee, images, labels, self.micro_batch, global_count=images.shape[0] * ctx.world, world=ctx.world,
            penalty_inputs=pen_x, global_penalty_count=pen_count, penalty_coef=cfg.penalty_coef or 0.0,
        )
        average_gradients(self.params, ctx)
        # One small reduction carries the metrics and the stop request, so every process stops
        # after the same step.
        reduced = sum_over_processes(torch.cat([local.as_tensor(), torch.tensor([float(stop_requested)], dtype=torch.float64)]), ctx, self.device)
        stats, stop_now = StepStats.from_tensor(reduced[:5]), bool(reduced[5] > 0)
        grad_norm = self._clip()
        self._check_finite(stats, grad_norm, epoch, batch_index)
        lr = learning_rate(self.step, cfg.lr, cfg.warmup, self.total)  # type: ignore[arg-type]
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        try:
            self.optimizer.step()
        except RuntimeError as err:
            if "overflow" not in str(err):
                raise
            raise TrainingDiverged(
                f"training diverged: the optimiser update overflowed at step {self.step + 1} (--lr {cfg.lr:g}); "
                "lower --lr (the paper uses 1e-5)"
            ) from err
        self.step += 1
        record: dict[str, Any] = {
            "step": self.step, "epoch": epoch, "batch": batch_index, "lr": lr, "loss": stats.loss,
            "acc": stats.accuracy, "grad_norm": grad_norm, "time": time.time(),
        }
        if self.penalty is not None:
            record["tau_jp"] = stats.tau_jp
            record["penalty"] = (cfg.penalty_coef or 0.0) * stats.tau_jp
        return record, stop_now

    def _agreed(self, flag: bool) -> bool:
        """True on every process when any process has the flag set."""
        return bool(sum_over_processes(torch.tensor([float(flag)], dtype=torch.float64), self.ctx, self.device)[0] > 0)

    def _clip(self) -> float:
        clip = self.cfg.clip or 0.0
        max_norm = clip if clip > 0 else math.inf
        return float(torch.nn.utils.clip_grad_norm_(self.params, max_norm))

    def _check_finite(self, stats: StepStats, grad_norm: float, epoch: int, batch_index: int) -> None:
        bad = [(name, value) for name, value in (("loss", stats.loss), ("tau-Jp penalty", stats.tau_jp), ("gradient norm", grad_norm)) if not math.isfinite(value)]
        if not bad:
            return
        name, value = bad[0]
        last = saved_step(self.paths.state)
        kept = f"the last good state (step {last}) is kept in {self.paths.state}" if last is not None else "no state had been saved yet"
        raise TrainingDiverged(
            f"training diverged: the {name} is {value} at step {self.step + 1} (epoch {epoch}, batch {batch_index}); "
            f"{kept}; lower --lr or check the inputs of {self.cfg.task}"
        )

    def _save(self) -> None:
        if self.ctx.is_main:
            save_train_state(self.paths.state, self.step, self.trainee.visual, self.optimizer, self.cfg.training_settings())
        barrier(self.ctx)
