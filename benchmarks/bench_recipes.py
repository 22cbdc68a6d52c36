"""Training step time of every registered recipe against standard fine-tuning, side by side.

    python benchmarks/bench_recipes.py --data-location data --pretrained-from checkpoints/pretrained \
        [--task Digits] [--steps 40] [--rounds 3] [--groups paper,field]

Each round fine-tunes the task once with every recipe of the groups, in the study's order (a run
another reads first: matched L2-SP reads the tau-Jp run), for --steps steps each, as the embedded
study configures it (pipeline/definition.py: the same options), in this process on one thread,
into fresh folders. Each run records its own seconds per step (training/cost.py: the steady steps,
set-up such as TAK's curvature apart); a recipe's ratio is its step time over the standard run's of
the same round, and the median over rounds is printed, so load that comes and goes during a round
moves numerator and denominator alike as far as it can. Embedded world (TinyCLIP, the default
preset's pretrained weights).
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import statistics
import tempfile
from pathlib import Path

import torch

from task_arithmetic.io import metadata_path, read_json
from task_arithmetic.pipeline.study import StudyConfig, embedded_study
from task_arithmetic.recipes import Group, recipes_in
from task_arithmetic.training import run_finetune


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-location", type=Path, required=True)
    parser.add_argument("--pretrained-from", type=Path, required=True, help="a checkpoints/pretrained/ folder holding TinyCLIP-embedded")
    parser.add_argument("--task", default="Digits")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--groups", default="paper,field")
    args = parser.parse_args()
    torch.set_num_threads(1)
    groups = [Group(g) for g in args.groups.split(",")]
    ratios: dict[str, list[float]] = {}
    seconds: dict[str, list[float]] = {}
    for r in range(args.rounds):
        root = Path(tempfile.mkdtemp(prefix=f"bench_recipes_{r}_"))
        try:
            shutil.copytree(args.pretrained_from, root / "checkpoints" / "pretrained")
            study = embedded_study(StudyConfig("default", args.data_location, root / "checkpoints", root / "results", "cpu", False,
                                               recipes=recipes_in(*groups)))
            per_step: dict[str, float] = {}
            for run in study.trainings():
                cfg = dataclasses.replace(study.finetune_config(args.task, run), max_steps=args.steps, save_every=10**6)
                path = run_finetune(cfg).path
                per_step[run.name] = float(read_json(metadata_path(path))["cost"]["seconds_per_step"])
            for name, value in per_step.items():
                seconds.setdefault(name, []).append(value)
                ratios.setdefault(name, []).append(value / per_step[study.trainings()[0].name])
        finally:
            shutil.rmtree(root, ignore_errors=True)
    print(f"{args.task}, {args.steps} steps per run, {args.rounds} rounds, one thread; median over rounds")
    print(f"  {'run':<24s}{'s / step':>10s}{'x standard':>12s}")
    for name in seconds:
        print(f"  {name:<24s}{statistics.median(seconds[name]):10.4f}{statistics.median(ratios[name]):12.2f}")


if __name__ == "__main__":
    main()
