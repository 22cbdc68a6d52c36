"""The user's fine-tuning request, and the fully typed plan resolved from it before any work.

`FinetuneConfig` is the request: what was asked, None where nothing was given. `resolve_config`
validates it and fills the defaults, first from the task's `TaskSpec.defaults` (the embedded
benchmark's tiny tasks need other values than the paper's; a key suffixed with the mode, e.g.
"lr_linear", wins over the plain key in that mode), then from the paper's recipe (protocol.md),
and returns a `TrainingPlan`: every value final, the mode's and the regulariser's own options
resolved by their plug-ins (recipes/). The plan is what a run records.

Plug-in options (e.g. tau-Jp's `penalty_coef`) travel in `FinetuneConfig.options`, keyed by
their field names (= their flags without the dashes).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..data.choices import DECODE_CACHE_CHOICES, TRAIN_CROPS
from ..data.registry import get_task
from ..errors import UserError
from ..flags import check_float, check_seed
from ..paths import DEFAULT_CHECKPOINT_ROOT, DEFAULT_DATA_LOCATION, DEFAULT_RESULTS_ROOT, check_folder_flag
from ..precision import resolve_precision
from ..recipes import MODES, REGULARIZERS, Mode, Regularizer, RunId
from ..recipes.base import Context, Plugin, Settings, StepCost, flag
from ..recipes.identity import from_flags
from ..wandb_logging import MODES as WANDB_MODES
from ..wandb_logging import WandbSettings

# The paper's recipe (protocol.md); a task's TaskSpec.defaults take precedence.
PAPER_DEFAULTS: dict[str, Any] = {"lr": 1e-5, "wd": 0.1, "warmup": 500, "batch_size": 128, "clip": 1.0}

# Operational settings: they do not change the trained weights, so a run may be resumed with
# different values (another device, more workers, wandb switched on).
# Activation checkpointing recomputes the same activations, so it is operational too.
OPERATIONAL_FIELDS = frozenset(
    {"device", "data_location", "checkpoint_root", "results_root", "save_every", "wandb", "wandb_project", "wandb_entity", "num_workers", "force",
     "progress", "grad_checkpointing", "decode_cache"}
)
# Settings added after runs were first saved, with the value those runs implied: a saved state
# of such a run (whose fingerprint lacks the key) resumes when the value is unchanged.
LATER_SETTINGS: dict[str, Any] = {"precision": "fp32", "train_crop": "pil"}


@dataclass(frozen=True)
class FinetuneConfig:
    """The request, as given on the command line (None: not given)."""

    task: str
    model: str = "ViT-B-32"
    pretrained: str | None = "openai"
    cache_dir: str | None = None
    mode: str | None = None  # None: the regulariser's default mode (linear for tau_jp, as the paper does)
    reg: str | None = None  # None: no regulariser
    variant: str | None = None  # None: the regulariser's default variant
    options: Mapping[str, Any] = field(default_factory=dict)  # the plug-ins' own options, by field name
    init_from: str | None = None  # start theta from this fine-tuned checkpoint
    lr: float | None = None
    wd: float | None = None
    warmup: int | None = None
    batch_size: int | None = None  # global batch per optimiser step, over all processes
    micro_batch: int | None = None  # per-process forward/backward chunk; None: the whole batch
    epochs: int | None = None
    max_steps: int | None = None  # overrides epochs * steps_per_epoch
    steps_fraction: float | None = None  # train this fraction of epochs * steps_per_epoch (and of the warm-up); None: all
    clip: float | None = None  # gradient-norm clipping; 0 disables it
    seed: int = 0
    device: str = "auto"
    data_location: str = str(DEFAULT_DATA_LOCATION)
    checkpoint_root: str = str(DEFAULT_CHECKPOINT_ROOT)
    results_root: str = str(DEFAULT_RESULTS_ROOT)
    save_every: int = 250  # optimiser steps between resumable checkpoints
    wandb: str = "off"
    wandb_project: str | None = None  # None: WANDB_PROJECT, else "task-arithmetic" (wandb_logging.py)
    wandb_entity: str | None = None  # None: WANDB_ENTITY, else wandb's default
    num_workers: int | None = None  # data-loading processes; None: data.sampling.loader_workers decides
    max_train_samples: int | None = None  # a fixed random subset of the train split, for quick runs
    tag: str = ""
    run: str | None = None  # --run NAME: the whole run name instead of mode/reg/variant/tag
    force: bool = False
    progress: bool = True
    precision: str = "auto"  # fp32 | tf32 | bf16 | auto (bf16 on CUDA, fp32 on the CPU): task_arithmetic/precision.py
    grad_checkpointing: bool = False  # recompute each block's activations in the backward (memory for time)
    decode_cache: str = "on"  # on: images decoded once into data/decoded.py's cache (exact for the eval transform)
    train_crop: str = "pil"  # pil: RandomResizedCrop on decoded images; cache: on cached records (data/decoded.py)

    def run_id(self) -> RunId:
        """The run these flags name (the same in every script)."""
        evaluated = from_flags(self.mode, self.reg, self.variant, self.tag, self.run)
        if evaluated.posthoc:
            raise UserError(f"'{evaluated.name}' is evaluation-only (a non-linear run read out linearised); fine-tune {evaluated.run.name} and evaluate it post hoc")
        return evaluated.run


@dataclass(frozen=True)
class TrainingPlan:
    """Every setting of one fine-tuning run with its final value."""

    task: str
    model: str
    pretrained: str | None  # None: random weights (a real choice, not a missing value)
    cache_dir: str | None
    run: RunId  # which plug-ins train it, their variant and the tag: the run's folder name
    mode_settings: Settings
    reg_settings: Settings
    init_from: str | None  # None: start from theta_0
    lr: float
    wd: float
    warmup: int
    batch_size: int
    micro_batch: int | None  # None: each process's whole share of the batch at once
    epochs: int | None  # None when max_steps decides
    max_steps: int | None  # None: epochs * steps_per_epoch
    steps_fraction: float | None  # None: all of epochs * steps_per_epoch; else that fraction, warm-up scaled alike
    clip: float
    seed: int
    device: str
    data_location: str
    checkpoint_root: str
    results_root: str
    save_every: int
    wandb: str
    wandb_project: str | None
    wandb_entity: str | None
    num_workers: int | None  # None: chosen per device when the run starts
    max_train_samples: int | None  # None: the whole train split
    force: bool
    progress: bool
    precision: str  # a Precision value, never "auto"
    grad_checkpointing: bool
    decode_cache: str
    train_crop: str

    @property
    def mode_plugin(self) -> Mode[Any, Any]:
        return self.run.mode

    @property
    def reg_plugin(self) -> Regularizer[Any, Any]:
        return self.run.reg

    def references(self) -> tuple[RunId, ...]:
        """Runs of the same model and task whose finished weights this run reads."""
        return self.run.reg.references(self.reg_settings)

    def step_cost(self) -> StepCost:
        """Image passes of one optimiser step: the batch through the mode, plus the penalty's inputs."""
        return self.run.mode.step_cost(self.batch_size) + self.run.reg.step_cost(self.reg_settings)

    def setup_cost(self) -> StepCost:
        return self.run.reg.setup_cost(self.reg_settings)

    def to_json(self) -> dict[str, Any]:
        """Flat, as runs have always recorded it: the plug-ins' settings sit beside the rest."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("run", "mode_settings", "reg_settings")}
        out.update(mode=self.run.mode.name, reg=self.run.reg.name, variant=self.run.variant, tag=self.run.tag)
        out.update(self.mode_settings.to_json())
        out.update(self.reg_settings.to_json())
        return out

    def wandb_settings(self) -> WandbSettings:
        return WandbSettings(self.wandb, self.wandb_project, self.wandb_entity)

    def training_settings(self) -> dict[str, Any]:
        """The settings that determine the trained weights (a resumed run must match them)."""
        return {k: v for k, v in self.to_json().items() if k not in OPERATIONAL_FIELDS and not (k in LATER_SETTINGS and v == LATER_SETTINGS[k])}


def resolve_config(cfg: FinetuneConfig | TrainingPlan, check_files: bool = True) -> TrainingPlan:
    """Validate every setting and fill the defaults; raises UserError before any work is done.

    check_files=False: a plan made before the runs it reads exist (the study's graph and dry run)."""
    if isinstance(cfg, TrainingPlan):
        return cfg
    run = cfg.run_id()
    mode = run.mode.name
    for flag_name, value, choices in (("--wandb", cfg.wandb, WANDB_MODES), ("--decode-cache", cfg.decode_cache, DECODE_CACHE_CHOICES),
                                      ("--train-crop", cfg.train_crop, TRAIN_CROPS)):
        if value not in choices:
            raise UserError(f"unknown {flag_name} '{value}'; choose one of {', '.join(choices)}")
    if cfg.train_crop == "cache" and cfg.decode_cache == "off":
        raise UserError("--train-crop cache crops cached images; it cannot be combined with --decode-cache off")
    _refuse_foreign_options(cfg.options, run.mode, run.reg)  # before the task lookup loads any dataset code
    task = get_task(cfg.task)

    def default(key: str) -> Any:
        value = getattr(cfg, key)
        if value is None:
            value = task.defaults.get(f"{key}_{mode}", task.defaults.get(key))
        return PAPER_DEFAULTS.get(key) if value is None else value

    values = {key: default(key) for key in PAPER_DEFAULTS}
    epochs = cfg.epochs if cfg.epochs is not None else task.defaults.get(f"epochs_{mode}", task.defaults.get("epochs"))
    if epochs is None and cfg.max_steps is None:
        raise UserError(f"task {task.name} has no default number of epochs; pass --epochs N or --max-steps N")
    micro_batch = cfg.micro_batch if cfg.micro_batch is not None else task.defaults.get(f"micro_batch_{mode}", task.defaults.get("micro_batch"))
    _check_numbers(values, epochs, micro_batch, cfg)
    if check_files and cfg.init_from is not None and not Path(cfg.init_from).is_file():
        state = "is a folder" if Path(cfg.init_from).is_dir() else "does not exist"
        raise UserError(f"--init-from {cfg.init_from} {state}; pass a finetuned.safetensors written by this suite")
    for flag_name, root in (("--checkpoint-root", cfg.checkpoint_root), ("--results-root", cfg.results_root), ("--data-location", cfg.data_location)):
        check_folder_flag(flag_name, root)

    precision = resolve_precision(cfg.precision, cfg.device).value
    ctx = Context(task.name, task.benchmark, cfg.model, mode, run.variant, values["batch_size"], dict(task.defaults))
    mode_settings = run.mode.resolve(run.mode.request(dict(cfg.options)), ctx)
    reg_settings = run.reg.resolve(run.reg.request(dict(cfg.options)), ctx)
    request_only = ("options", "mode", "reg", "variant", "tag", "run", "task", "epochs", "micro_batch", "precision")
    common = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.name not in request_only}
    return TrainingPlan(
        **{**common, **values},
        precision=precision,
        task=task.name,
        run=run,
        mode_settings=mode_settings,
        reg_settings=reg_settings,
        epochs=epochs,
        micro_batch=micro_batch,
    )


def _refuse_foreign_options(options: Mapping[str, Any], mode: Mode[Any, Any], reg: Regularizer[Any, Any]) -> None:
    """An option given for a plug-in that this run does not use is a mistake, not a no-op."""
    owners: dict[str, tuple[str, Plugin[Any, Any]]] = {}
    for kind, table in (("--mode", MODES), ("--reg", REGULARIZERS)):
        for plugin in table.values():
            for name in plugin.option_names():
                owners[name] = (kind, plugin)
    for name, value in options.items():
        if value is None:
            continue
        if name not in owners:
            raise UserError(f"unknown option {flag(name)}; see src/finetune.py --help")
        kind, owner = owners[name]
        if owner != mode and owner != reg:
            raise UserError(f"{flag(name)} only applies to {kind} {owner.name}; add {kind} {owner.name} or drop {flag(name)}")


def _check_numbers(values: dict[str, Any], epochs: int | None, micro_batch: int | None, cfg: FinetuneConfig) -> None:
    def need(ok: bool, message: str) -> None:
        if not ok:
            raise UserError(message)

    need(values["lr"] > 0 and math.isfinite(values["lr"]), f"--lr must be a positive number, got {values['lr']}")
    need(values["wd"] >= 0 and math.isfinite(values["wd"]), f"--wd must be a finite number >= 0, got {values['wd']}")
    need(values["warmup"] >= 0, f"--warmup must be >= 0 steps, got {values['warmup']}")
    need(values["batch_size"] >= 1, f"--batch-size must be >= 1, got {values['batch_size']}")
    need(values["clip"] >= 0 and not math.isnan(values["clip"]), f"--clip must be >= 0 (0 disables clipping), got {values['clip']}")
    need(epochs is None or epochs >= 1, f"--epochs must be >= 1, got {epochs}")
    need(cfg.max_steps is None or cfg.max_steps >= 1, f"--max-steps must be >= 1, got {cfg.max_steps}")
    if cfg.steps_fraction is not None:
        check_float("--steps-fraction", cfg.steps_fraction, 0.0, 1.0, lo_open=True)
    need(
        micro_batch is None or 1 <= micro_batch <= values["batch_size"],
        f"--micro-batch must be between 1 and --batch-size ({values['batch_size']}), got {micro_batch}",
    )
    need(cfg.save_every >= 1, f"--save-every must be >= 1 step, got {cfg.save_every}")
    need(cfg.num_workers is None or cfg.num_workers >= 0, f"--num-workers must be >= 0, got {cfg.num_workers}")
    need(cfg.max_train_samples is None or cfg.max_train_samples >= 1, f"--max-train-samples must be >= 1, got {cfg.max_train_samples}")
    check_seed("--seed", cfg.seed)
