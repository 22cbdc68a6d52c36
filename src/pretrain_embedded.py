"""Pretrain the embedded benchmark's TinyCLIP (contrastively, on the generated corpus) and cache it.

    python src/pretrain_embedded.py                    # the default preset -> checkpoints/pretrained/TinyCLIP-embedded.safetensors
    python src/pretrain_embedded.py --preset smoke     # the tests' quick preset (tag embedded-smoke)
    python src/pretrain_embedded.py --zeroshot         # also print zero-shot accuracy on every embedded task

A second run reuses the cached file. Any script given `--model TinyCLIP --pretrained embedded`
triggers the same pretraining on first use; this script just makes the step explicit.
"""

from __future__ import annotations

if __name__ == "__main__":  # first: the imports below take seconds, and a stop signal meanwhile must exit 75
    from task_arithmetic.training.preemption import exit_preempted_on_stop_signals

    exit_preempted_on_stop_signals()

import argparse
import sys

from task_arithmetic.cli_help import parser as help_parser
from task_arithmetic.errors import cli_entry
from task_arithmetic.paths import DEFAULT_DATA_LOCATION


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = help_parser(__doc__, (0, 2, 75, 130))
    p.add_argument("--preset", default="default", help="default or smoke")
    p.add_argument("--cache-dir", default=None, help="folder for the weights (default: checkpoints/pretrained)")
    p.add_argument("--zeroshot", action="store_true", help="report zero-shot test accuracy on the embedded tasks")
    p.add_argument("--data-location", default=str(DEFAULT_DATA_LOCATION), help="where the embedded tasks are cached (for --zeroshot)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (for the zero-shot check)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar: plain periodic log lines")
    return p.parse_args(argv)


@cli_entry
def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from task_arithmetic.embedded.presets import get_preset
    from task_arithmetic.embedded.weights import resolve_weights

    preset = get_preset(args.preset)
    path = resolve_weights(preset.weight_tag, args.cache_dir, progress=not args.no_progress)
    print(f"pretrained TinyCLIP ({preset.name} preset): {path}")
    if args.zeroshot:
        from task_arithmetic.data.registry import benchmark_tasks, get_task
        from task_arithmetic.embedded.zeroshot import zeroshot_accuracy
        from task_arithmetic.models.factory import ModelSpec, create_clip
        from task_arithmetic.runtime import pick_device

        device = pick_device(args.device)
        clip_model, _, _ = create_clip(ModelSpec("TinyCLIP", pretrained=preset.weight_tag, cache_dir=args.cache_dir), device)
        for task in benchmark_tasks("embedded", include_control=True):
            chance = 1.0 / len(get_task(task).load_classnames(args.data_location))
            acc = zeroshot_accuracy(clip_model, task, args.data_location, device=device)
            print(f"{task:14s} zero-shot {acc:6.1%}   chance {chance:5.1%}")


if __name__ == "__main__":
    sys.exit(main())
