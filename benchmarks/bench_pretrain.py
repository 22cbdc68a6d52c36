"""Pretraining step time of the embedded TinyCLIP: one thread, two intra-op threads, two lanes, and
one thread under bf16 autocast (whether this processor's bf16 units speed up the pretraining).

    python benchmarks/bench_pretrain.py [--steps 60] [--batch 128]

The same corpus, model initialisation and steps in every condition, run one after another in
this process; prints ms per step and each condition's speed relative to one thread. `two lanes`
is what pretraining uses on a CPU with two or more threads (embedded/pretrain.py, TwoLanes).
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from task_arithmetic.embedded.presets import PretrainConfig, get_preset
from task_arithmetic.embedded.pretrain import pretrain_clip
from task_arithmetic.plugins import register_builtin_plugins


def step_ms(cfg: PretrainConfig, threads: int, lanes: bool, bf16: bool = False) -> float:
    torch.set_num_threads(threads)
    # autocast is per thread: the one-lane step runs in this thread, so it covers the whole step
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        _, summary = pretrain_clip(cfg, progress=False, lanes=lanes)
    return 1000 * summary["train_seconds"] / cfg.steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    register_builtin_plugins()
    default = get_preset("default").pretrain
    cfg = dataclasses.replace(default, corpus_size=4000, steps=args.steps, batch_size=args.batch)
    rows = [("1 thread", step_ms(cfg, 1, False)), ("2 threads, one lane", step_ms(cfg, 2, False)), ("2 threads, two lanes", step_ms(cfg, 2, True)),
            ("1 thread, bf16 autocast", step_ms(cfg, 1, False, bf16=True))]
    base = rows[0][1]
    print(f"pretraining step, batch {args.batch}, {args.steps} steps each (corpus build not counted)")
    for name, ms in rows:
        print(f"  {name:<22s} {ms:7.1f} ms/step   {base / ms:4.2f}x one thread")


if __name__ == "__main__":
    main()
