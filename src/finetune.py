"""Fine-tune a CLIP image encoder on one task with one recipe (a mode and a regulariser).

    python src/finetune.py --task Cars                      # standard fine-tuning
    python src/finetune.py --task Cars --mode linear        # linearised (tangent) fine-tuning
    python src/finetune.py --task Cars --reg tau_jp         # linearised + tau-Jp (efficient)
    python src/finetune.py --task Cars --reg l2_sp          # standard + coef * ||theta - theta_0||^2
    python src/finetune.py --task Cars --mode attn_only     # only the attention projections train
    python src/finetune.py --task Cars --mode talos         # TaLoS: low-sensitivity entries only
    torchrun --nproc_per_node=4 src/finetune.py --task Cars --reg tau_jp   # data-parallel

Hyper-parameters left out come from the task's defaults, else the paper's recipe. Re-running
the same command resumes an interrupted run and skips a finished one (--force redoes it).
Writes checkpoints/<model_id>/<task>/<run>/finetuned.safetensors (+ .json, log.jsonl).

TA_EXTRA_TASKS=/path/to/module.py registers more tasks first (the module's register_tasks()),
e.g. private datasets or the tests' toy tasks.
"""

from __future__ import annotations

if __name__ == "__main__":  # first: the imports below take seconds, and a stop signal meanwhile must exit 75
    from task_arithmetic.training.preemption import exit_preempted_on_stop_signals

    exit_preempted_on_stop_signals()

import argparse
import sys

from task_arithmetic import flags
from task_arithmetic.cli_help import EXIT_CODES
from task_arithmetic.cli_help import parser as help_parser
from task_arithmetic.data.choices import DECODE_CACHE_CHOICES, TRAIN_CROPS
from task_arithmetic.errors import cli_entry
from task_arithmetic.paths import DEFAULT_CHECKPOINT_ROOT, DEFAULT_DATA_LOCATION, DEFAULT_RESULTS_ROOT
from task_arithmetic.precision import PRECISION_CHOICES
from task_arithmetic.recipes import MODES, REGULARIZERS
from task_arithmetic.recipes.registry import all_variants
from task_arithmetic.training.config import PAPER_DEFAULTS, WANDB_MODES, FinetuneConfig

EXITS = {**{c: EXIT_CODES[c] for c in (0, 2)}, 2: EXIT_CODES[2] + ", or a diverged run (NaN loss; the last good state is kept)",
         75: EXIT_CODES[75], 130: EXIT_CODES[130]}


def paper(key: str) -> str:
    return f"default: the task's, else the paper's {PAPER_DEFAULTS[key]:g}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = help_parser(__doc__, EXITS, tasks=True)
    p.add_argument("--task", required=True, type=flags.name("--task"), help="task to fine-tune on (one of the tasks listed below)")
    p.add_argument("--model", default="ViT-B-32", help="open_clip architecture (ViT-B-32, ViT-B-16, ViT-L-14, TinyCLIP, ...)")
    p.add_argument("--pretrained", default="openai", help="weights tag (openai; embedded for TinyCLIP), a local weights file, or 'none' for random weights")
    p.add_argument("--cache-dir", default=None, help="where open_clip weights are cached (default: open_clip's)")
    modes = ", ".join(f"{m.name} ({m.summary})" for m in MODES.values())
    p.add_argument("--run", default=None, help="the run's folder name, e.g. linear-tau_jp (instead of --mode/--reg/--variant/--tag)")
    p.add_argument("--mode", choices=tuple(MODES), default=None, help=f"{modes}; default: the regulariser's (linear for tau_jp)")
    p.add_argument("--reg", choices=tuple(REGULARIZERS), default=None, help=", ".join(f"{r.name} ({r.summary})" for r in REGULARIZERS.values()) + "; default none")
    p.add_argument("--variant", choices=all_variants(), default=None, help="the regulariser's variant, e.g. tau_jp: which penalty tasks feed each step (default: its first)")
    p.add_argument("--init-from", default=None, help="start from this finetuned.safetensors (e.g. continue with tau-Jp)")
    p.add_argument("--lr", type=flags.positive_float, default=None, help=f"peak learning rate ({paper('lr')})")
    p.add_argument("--wd", type=flags.nonnegative_float, default=None, help=f"AdamW weight decay ({paper('wd')})")
    p.add_argument("--warmup", type=flags.nonnegative_int, default=None, help=f"warm-up steps, then cosine decay ({paper('warmup')})")
    p.add_argument("--batch-size", type=flags.positive_int, default=None, help=f"global batch per optimiser step ({paper('batch_size')})")
    p.add_argument("--micro-batch", type=flags.positive_int, default=None, help="per-process chunk for exact gradient accumulation (default: the whole batch)")
    p.add_argument("--epochs", type=flags.positive_int, default=None, help="default: the task's (the paper's per-task epochs; Cars 35, DTD 76, ...)")
    p.add_argument("--max-steps", type=flags.positive_int, default=None, help="optimiser steps; overrides --epochs")
    p.add_argument("--steps-fraction", type=flags.float_in(0.0, 1.0, lo_open=True), default=None,
                   help="train this fraction of the epochs' steps, warm-up scaled alike (e.g. a continuation)")
    p.add_argument("--clip", type=flags.nonnegative_float, default=None, help=f"gradient-norm clip, 0 disables ({paper('clip')})")
    p.add_argument("--seed", type=flags.seed, default=0, help=f"fine-tuning seed, 0 to {flags.MAX_SEED} (default 0)")
    p.add_argument("--device", default="auto", help="auto (CUDA when visible), cpu, cuda or cuda:N")
    p.add_argument("--data-location", default=str(DEFAULT_DATA_LOCATION), help="folder holding the datasets")
    p.add_argument("--checkpoint-root", default=str(DEFAULT_CHECKPOINT_ROOT), help="where theta_0, heads and runs are kept")
    p.add_argument("--results-root", default=str(DEFAULT_RESULTS_ROOT), help="where evaluation results go")
    p.add_argument("--save-every", type=flags.positive_int, default=250, help="steps between resumable checkpoints")
    p.add_argument("--wandb", choices=WANDB_MODES, default="off", help="log to Weights & Biases; a resumed run continues its W&B run")
    p.add_argument("--wandb-project", default=None, help="W&B project (default: WANDB_PROJECT, else task-arithmetic)")
    p.add_argument("--wandb-entity", default=None, help="W&B entity (default: WANDB_ENTITY, else wandb's)")
    p.add_argument("--num-workers", type=flags.nonnegative_int, default=None, help="data-loading processes (default: 0 on CPU, up to 8 per process on CUDA)")
    p.add_argument("--max-train-samples", type=flags.positive_int, default=None, help="train on a fixed random subset (quick runs)")
    p.add_argument("--precision", choices=PRECISION_CHOICES, default="auto",
                   help="fp32, tf32 (CUDA), bf16 (autocast, float32 weights and optimiser state), auto (default: bf16 on CUDA, fp32 on CPU)")
    p.add_argument("--grad-checkpointing", action="store_true", help="recompute each block's activations in the backward: less memory, ~1.3x time")
    p.add_argument("--decode-cache", choices=DECODE_CACHE_CHOICES, default="on",
                   help="on (default): decode each image once into <data-location>/decoded/ (exact for the evaluation transform); off: decode every pass")
    p.add_argument("--train-crop", choices=TRAIN_CROPS, default="pil",
                   help="pil (default): random crop of each decoded image; cache: the same crop taken from a cached 8/7-size record, on tensors (faster, not bit-identical)")
    p.add_argument("--tag", default="", type=flags.name("--tag", allow_empty=True), help="suffix of the run name, to keep variants apart")
    p.add_argument("--force", action="store_true", help="train again even if the run finished")
    p.add_argument("--no-progress", action="store_true", help="no progress bar: plain periodic log lines instead (as when stdout is not a terminal)")
    for plugin in (*MODES.values(), *REGULARIZERS.values()):
        plugin.add_arguments(p)  # each recipe's own options
    return p.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> FinetuneConfig:
    return FinetuneConfig(
        task=args.task, model=args.model, pretrained=flags.pretrained(args.pretrained),
        cache_dir=args.cache_dir, mode=args.mode, reg=args.reg, variant=args.variant, options=plugin_options(args),
        init_from=args.init_from, lr=args.lr, wd=args.wd, warmup=args.warmup, batch_size=args.batch_size,
        micro_batch=args.micro_batch, epochs=args.epochs, max_steps=args.max_steps, steps_fraction=args.steps_fraction, clip=args.clip, seed=args.seed,
        device=args.device, data_location=args.data_location, checkpoint_root=args.checkpoint_root,
        results_root=args.results_root, save_every=args.save_every, wandb=args.wandb, wandb_project=args.wandb_project, wandb_entity=args.wandb_entity,
        num_workers=args.num_workers,
        max_train_samples=args.max_train_samples, tag=args.tag, run=args.run, force=args.force, progress=not args.no_progress,
        precision=args.precision, grad_checkpointing=args.grad_checkpointing, decode_cache=args.decode_cache, train_crop=args.train_crop,
    )


def plugin_options(args: argparse.Namespace) -> dict[str, object]:
    """The recipes' own flags that were given, by field name."""
    names = [n for plugin in (*MODES.values(), *REGULARIZERS.values()) for n in plugin.option_names()]
    return {n: getattr(args, n) for n in names if getattr(args, n) is not None}


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from task_arithmetic.training.config import resolve_config

    plan = resolve_config(config_from_args(args))  # every setting checked before the training code (torch, open_clip) loads
    from task_arithmetic.training import run_finetune

    result = run_finetune(plan)
    if result.status == "preempted":
        from task_arithmetic.training.preemption import EXIT_PREEMPTED

        return EXIT_PREEMPTED
    if result.status == "finished" and result.is_main:  # under torchrun only rank 0 reports
        print(f"saved {result.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
