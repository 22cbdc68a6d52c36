"""Every fine-tuning setting in one dataclass, validated before any work starts.

Hyper-parameters left as None are filled by `resolve_config`, first from the task's
`TaskSpec.defaults` (the embedded benchmark's tiny tasks need other values than the paper's;
a key suffixed with the mode, e.g. "lr_linear", wins over the plain key in that mode), then from
the paper's recipe (protocol.md). The resolved config is what a run records.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.registry import benchmark_names, benchmark_tasks, control_task, get_task, parse_task_list
from ..errors import UserError
from ..paths import DEFAULT_CHECKPOINT_ROOT, DEFAULT_DATA_LOCATION, DEFAULT_RESULTS_ROOT, TAU_JP_VARIANTS, check_folder_flag, run_name

TRAIN_MODES = ("standard", "linear")
REGULARIZERS = ("none", "tau_jp")
WANDB_MODES = ("off", "offline", "online")

# The paper's recipe (protocol.md); a task's TaskSpec.defaults take precedence.
PAPER_DEFAULTS: dict[str, Any] = {
    "lr": 1e-5,
    "wd": 0.1,
    "warmup": 500,
    "batch_size": 128,
    "clip": 1.0,
    "penalty_coef": 0.1,
    "penalty_batch": 16,
}
# ViT-L needs a smaller penalty batch per task to fit in memory (protocol.md).
LARGE_MODEL_DEFAULTS: dict[str, Any] = {"penalty_batch": 4}

# Operational settings: they do not change the trained weights, so a run may be resumed with
# different values (another device, more workers, wandb switched on).
OPERATIONAL_FIELDS = frozenset(
    {"device", "data_location", "checkpoint_root", "results_root", "save_every", "wandb", "num_workers", "force", "progress"}
)


@dataclass(frozen=True)
class FinetuneConfig:
    task: str
    model: str = "ViT-B-32"
    pretrained: str | None = "openai"
    cache_dir: str | None = None
    mode: str | None = None  # None: linear when reg is tau_jp (as the paper does), standard otherwise
    reg: str = "none"
    variant: str = "efficient"
    penalty_coef: float | None = None
    penalty_batch: int | None = None  # inputs per penalty task per step
    penalty_tasks: tuple[str, ...] | None = None  # None: the benchmark's other tasks + its control task
    task_order: tuple[str, ...] | None = None  # the learning order, for variant=continual
    init_from: str | None = None  # start theta from this fine-tuned checkpoint
    lr: float | None = None
    wd: float | None = None
    warmup: int | None = None
    batch_size: int | None = None  # global batch per optimiser step, over all processes
    micro_batch: int | None = None  # per-process forward/backward chunk; None: the whole batch
    epochs: int | None = None
    max_steps: int | None = None  # overrides epochs * steps_per_epoch
    clip: float | None = None  # gradient-norm clipping; 0 disables it
    seed: int = 0
    device: str = "auto"
    data_location: str = str(DEFAULT_DATA_LOCATION)
    checkpoint_root: str = str(DEFAULT_CHECKPOINT_ROOT)
    results_root: str = str(DEFAULT_RESULTS_ROOT)
    save_every: int = 250  # optimiser steps between resumable checkpoints
    wandb: str = "off"
    num_workers: int | None = None  # data-loading processes; None: training.data.loader_workers decides
    max_train_samples: int | None = None  # a fixed random subset of the train split, for quick runs
    tag: str = ""
    force: bool = False
    progress: bool = True
    # Filled by resolve_config: never set by hand.
    resolved: bool = field(default=False, repr=False)

    @property
    def run(self) -> str:
        mode = self.mode or ("linear" if self.reg == "tau_jp" else "standard")
        return run_name(mode, self.reg, self.variant, self.tag)

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out.pop("resolved")
        for key in ("penalty_tasks", "task_order"):
            if out[key] is not None:
                out[key] = list(out[key])
        return out

    def training_settings(self) -> dict[str, Any]:
        """The settings that determine the trained weights (a resumed run must match them)."""
        return {k: v for k, v in self.to_json().items() if k not in OPERATIONAL_FIELDS}


def resolve_config(cfg: FinetuneConfig) -> FinetuneConfig:
    """Validate every setting and fill the defaults; raises UserError before any work is done."""
    if cfg.resolved:
        return cfg
    _check_choice("--reg", cfg.reg, REGULARIZERS)
    _check_choice("--variant", cfg.variant, TAU_JP_VARIANTS)
    _check_choice("--wandb", cfg.wandb, WANDB_MODES)
    if cfg.mode == "posthoc":
        raise UserError("--mode posthoc is evaluation-only; fine-tune with --mode standard and evaluate its task vector linearised")
    mode = cfg.mode if cfg.mode is not None else ("linear" if cfg.reg == "tau_jp" else "standard")
    _check_choice("--mode", mode, TRAIN_MODES)
    task = get_task(cfg.task)
    if cfg.tag and not all(c.isalnum() or c in "_.+" for c in cfg.tag):
        raise UserError(f"--tag '{cfg.tag}' may only contain letters, digits, '_', '.' and '+' (it becomes part of a folder name)")

    values = {key: _resolved_value(cfg, key, task.defaults, mode) for key in PAPER_DEFAULTS}
    epochs = cfg.epochs if cfg.epochs is not None else _task_default(task.defaults, "epochs", mode)
    if epochs is None and cfg.max_steps is None:
        raise UserError(f"task {task.name} has no default number of epochs; pass --epochs N or --max-steps N")
    micro_batch = cfg.micro_batch
    if micro_batch is None:
        micro_batch = _task_default(task.defaults, "micro_batch", mode)
    _check_numbers(values, epochs, micro_batch, cfg)
    penalty_tasks, task_order = _penalty_setup(cfg, task.name, task.benchmark)

    if cfg.init_from is not None and not Path(cfg.init_from).is_file():
        state = "is a folder" if Path(cfg.init_from).is_dir() else "does not exist"
        raise UserError(f"--init-from {cfg.init_from} {state}; pass a finetuned.safetensors written by this suite")
    for flag, root in (("--checkpoint-root", cfg.checkpoint_root), ("--results-root", cfg.results_root), ("--data-location", cfg.data_location)):
        check_folder_flag(flag, root)
    return dataclasses.replace(
        cfg,
        task=task.name,
        mode=mode,
        epochs=epochs,
        micro_batch=micro_batch,
        penalty_tasks=penalty_tasks,
        task_order=task_order,
        resolved=True,
        **values,
    )


def _check_choice(flag: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UserError(f"unknown {flag} '{value}'; choose one of {', '.join(choices)}")


def _task_default(task_defaults: dict, key: str, mode: str) -> Any:
    return task_defaults.get(f"{key}_{mode}", task_defaults.get(key))


def _resolved_value(cfg: FinetuneConfig, key: str, task_defaults: dict, mode: str) -> Any:
    explicit = getattr(cfg, key)
    if explicit is not None:
        return explicit
    from_task = _task_default(task_defaults, key, mode)
    if from_task is not None:
        return from_task
    if cfg.model.startswith("ViT-L") and key in LARGE_MODEL_DEFAULTS:
        return LARGE_MODEL_DEFAULTS[key]
    return PAPER_DEFAULTS[key]


def _check_numbers(values: dict[str, Any], epochs: int | None, micro_batch: int | None, cfg: FinetuneConfig) -> None:
    def need(ok: bool, message: str) -> None:
        if not ok:
            raise UserError(message)

    need(values["lr"] > 0 and math.isfinite(values["lr"]), f"--lr must be a positive number, got {values['lr']}")
    need(values["wd"] >= 0, f"--wd must be >= 0, got {values['wd']}")
    need(values["warmup"] >= 0, f"--warmup must be >= 0 steps, got {values['warmup']}")
    need(values["batch_size"] >= 1, f"--batch-size must be >= 1, got {values['batch_size']}")
    need(values["clip"] >= 0, f"--clip must be >= 0 (0 disables clipping), got {values['clip']}")
    need(values["penalty_coef"] >= 0, f"--penalty-coef must be >= 0, got {values['penalty_coef']}")
    need(values["penalty_batch"] >= 1, f"--penalty-batch must be >= 1, got {values['penalty_batch']}")
    need(epochs is None or epochs >= 1, f"--epochs must be >= 1, got {epochs}")
    need(cfg.max_steps is None or cfg.max_steps >= 1, f"--max-steps must be >= 1, got {cfg.max_steps}")
    need(
        micro_batch is None or 1 <= micro_batch <= values["batch_size"],
        f"--micro-batch must be between 1 and --batch-size ({values['batch_size']}), got {micro_batch}",
    )
    need(cfg.save_every >= 1, f"--save-every must be >= 1 step, got {cfg.save_every}")
    need(cfg.num_workers is None or cfg.num_workers >= 0, f"--num-workers must be >= 0, got {cfg.num_workers}")
    need(cfg.max_train_samples is None or cfg.max_train_samples >= 1, f"--max-train-samples must be >= 1, got {cfg.max_train_samples}")


def _names_benchmark(names: tuple[str, ...]) -> bool:
    return len(names) == 1 and names[0] in benchmark_names()


def _penalty_setup(cfg: FinetuneConfig, task: str, benchmark: str) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
    """The tasks whose inputs feed the tau-Jp penalty, and the task order for continual runs."""
    if cfg.reg != "tau_jp":
        for flag, value in (
            ("--penalty-tasks", cfg.penalty_tasks),
            ("--task-order", cfg.task_order),
            ("--penalty-coef", cfg.penalty_coef),
            ("--penalty-batch", cfg.penalty_batch),
        ):
            if value is not None:
                raise UserError(f"{flag} only applies to --reg tau_jp; add --reg tau_jp or drop {flag}")
        if cfg.variant != "efficient":
            raise UserError(f"--variant {cfg.variant} only applies to --reg tau_jp; add --reg tau_jp or drop --variant")
        return None, None

    if cfg.variant == "continual":
        if cfg.task_order is None:
            raise UserError("--variant continual needs --task-order T1,T2,... (the penalty uses the tasks learned before this one)")
        if cfg.penalty_tasks is not None:
            raise UserError("--variant continual takes its penalty tasks from --task-order; drop --penalty-tasks")
        order = tuple(parse_task_list(list(cfg.task_order)))
        if task not in order:
            raise UserError(f"--task-order {','.join(order)} does not contain the task {task}; add it at its place in the order")
        earlier = order[: order.index(task)]
        if not earlier:
            raise UserError(f"{task} is the first task of --task-order, so continual tau-Jp has no earlier task to regularise on; train it without --reg or move it later")
        return earlier, order

    if cfg.task_order is not None:
        raise UserError("--task-order only applies to --variant continual; drop it or add --variant continual")
    if cfg.penalty_tasks is not None and not _names_benchmark(cfg.penalty_tasks):
        chosen = tuple(dict.fromkeys(parse_task_list(list(cfg.penalty_tasks))))
        if task in chosen:
            raise UserError(f"--penalty-tasks contains the task being fine-tuned ({task}); the penalty uses OTHER tasks' inputs, so remove it")
    else:
        # `--penalty-tasks real20` means what the default means for a task of real20: the suite's
        # other tasks and its control (a real8 task trained for the 20-task study needs this).
        benchmark = cfg.penalty_tasks[0] if cfg.penalty_tasks is not None else benchmark
        control = control_task(benchmark)
        others = [t for t in benchmark_tasks(benchmark) if t != task]
        chosen = tuple(others + ([control] if control is not None and control != task else []))
    if not chosen:
        raise UserError(f"--reg tau_jp needs inputs from other tasks but benchmark {benchmark} has no task besides {task}; pass --penalty-tasks or drop --reg")
    return chosen, None
