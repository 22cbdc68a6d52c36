"""Linearised training cost: torch.func reference vs the hand-written ViT JVP (fast_jvp).

Measured side by side in one run, per model (random weights, one batch reused):
  plain        standard step: forward, cross-entropy through a frozen head, backward
  func-linear  linearised step f(x;θ0) + J·(θ-θ0) with torch.func.jvp, same loss, backward
  fast-linear  the same step through fast_jvp
  func-penalty the τJp term: mean ‖J·(θ-θ0)‖₂ and its backward, torch.func
  fast-penalty the same through fast_jvp
A round runs plain, v1, plain, v2, ..., plain (ABAB interleaving: the machine is shared); the
ratio of a variant is the median over rounds of its time over the mean of the two plain steps
bracketing it, with the min-max over rounds beside it. Wall-clock
and process CPU time are both reported: CPU time is less disturbed by other jobs on the cores.

Peak memory (CPU): each variant runs in its own subprocess with glibc's mmap threshold fixed at
64 KiB, so every tensor buffer is its own mapping and is returned to the OS when freed; after a
warm-up step the kernel's RSS high-water mark is reset (/proc/self/clear_refs) and the step's
peak = VmHWM after the step − VmRSS before it. That includes the parameter gradients allocated by
the step (set to None before it, as optimiser.zero_grad does) but not the weights themselves
(the linearised model also holds θ0: one more copy of the weights, outside the step peak).
On CUDA: torch.cuda.max_memory_allocated over the step, minus the allocation before it.

    .venv/bin/python benchmarks/bench_linearize.py                       # ViT-B-32:16 and TinyCLIP:64, CPU
    .venv/bin/python benchmarks/bench_linearize.py --device cuda --autocast bf16 --models ViT-B-32:128
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from task_arithmetic.models import fast_jvp  # noqa: E402
from task_arithmetic.models.factory import ModelSpec, create_clip  # noqa: E402
from task_arithmetic.models.linearize import LinearizedModel, functorch_jvp  # noqa: E402

VARIANTS = ("plain", "func-linear", "fast-linear", "func-penalty", "fast-penalty")
NUM_CLASSES = 10


@dataclass
class Case:
    model: torch.nn.Module
    lin_func: LinearizedModel
    lin_fast: LinearizedModel
    images: torch.Tensor
    labels: torch.Tensor
    head: torch.Tensor
    autocast: torch.dtype | None


def build_case(name: str, batch: int, device: torch.device, autocast: torch.dtype | None) -> Case:
    torch.manual_seed(0)
    clip, _, _ = create_clip(ModelSpec(name), device)
    model = clip.visual.train()
    lin_func = LinearizedModel(model, jvp_fn=functorch_jvp)
    lin_fast = LinearizedModel(model, jvp_fn=fast_jvp.linearized_forward)
    assert fast_jvp.supports(lin_fast.frozen), f"fast path does not support {name}"
    with torch.no_grad():  # theta != theta_0, as after some fine-tuning
        for p in model.parameters():
            p.add_(torch.randn_like(p), alpha=1e-3)
    size = model.image_size[0]
    images = torch.randn(batch, 3, size, size, device=device)
    labels = torch.randint(0, NUM_CLASSES, (batch,), device=device)
    head = F.normalize(torch.randn(NUM_CLASSES, model.output_dim, device=device), dim=-1)
    return Case(model, lin_func, lin_fast, images, labels, head, autocast)


def _loss(case: Case, features: torch.Tensor) -> torch.Tensor:
    logits = 100.0 * F.normalize(features.float(), dim=-1) @ case.head.t()
    return F.cross_entropy(logits, case.labels)


def step_fn(case: Case, variant: str) -> Callable[[], None]:
    lin = case.lin_fast if variant.startswith("fast") else case.lin_func

    def compute() -> torch.Tensor:
        if variant == "plain":
            return _loss(case, case.model(case.images))
        if variant.endswith("linear"):
            return _loss(case, lin(case.images))
        return lin.tangent(case.images).float().norm(dim=-1).mean()

    def run() -> None:
        for p in case.model.parameters():
            p.grad = None
        device_type = case.images.device.type
        with torch.autocast(device_type, dtype=case.autocast or torch.float32, enabled=case.autocast is not None):
            loss = compute()
        loss.backward()

    return run


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], None], repeats: int, device: torch.device) -> tuple[float, float]:
    _sync(device)
    w0, c0 = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        fn()
    _sync(device)
    return (time.perf_counter() - w0) / repeats, (time.process_time() - c0) / repeats


def time_variants(case: Case, rounds: int, warmup: int, min_seconds: float) -> dict[str, dict[str, list[float]]]:
    """Per-step seconds of every variant and its ratio to the plain steps right before and after it.

    A round is plain, v1, plain, v2, ..., plain: every variant is bracketed by plain steps, so a
    ratio compares measurements seconds apart even while other jobs come and go on the cores.
    A sample repeats the step until the plain step would take `min_seconds` (tiny models).
    """
    device = case.images.device
    fns = {v: step_fn(case, v) for v in VARIANTS}
    out: dict[str, dict[str, list[float]]] = {v: {"wall": [], "cpu": [], "wall_ratio": [], "cpu_ratio": []} for v in VARIANTS}
    for _ in range(warmup):
        plain_wall = _timed(fns["plain"], 1, device)[0]
        for v in VARIANTS[1:]:
            _timed(fns[v], 1, device)
    repeats = max(1, math.ceil(min_seconds / plain_wall)) if warmup else 1
    for _ in range(rounds):
        before = _timed(fns["plain"], repeats, device)
        for v in VARIANTS[1:]:
            sample = _timed(fns[v], repeats, device)
            after = _timed(fns["plain"], repeats, device)
            for i, kind in enumerate(("wall", "cpu")):
                out[v][kind].append(sample[i])
                out[v][f"{kind}_ratio"].append(2 * sample[i] / (before[i] + after[i]))
                out["plain"][kind].append(before[i])
                out["plain"][f"{kind}_ratio"].append(1.0)
            before = after
    return out


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def probe_memory(name: str, batch: int, variant: str, device: torch.device, autocast: torch.dtype | None) -> float:
    """Peak extra memory (MiB) of one step of `variant`, measured as the module docstring says."""
    case = build_case(name, batch, device, autocast)
    run = step_fn(case, variant)
    run()
    for p in case.model.parameters():
        p.grad = None
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        run()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    base = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")
    run()
    return (_status_kib("VmHWM") - base) / 1024


MEMORY_VARIANTS = ("plain", "func-linear", "fast-linear")  # a penalty step builds the same graph as its linear step


def measure_memory(name: str, batch: int, args: argparse.Namespace) -> dict[str, float]:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "PYTHONWARNINGS": "ignore"}
    peaks = {}
    variants = VARIANTS if args.all_memory else MEMORY_VARIANTS
    for variant in variants:
        cmd = [sys.executable, __file__, "--probe", variant, "--models", f"{name}:{batch}", "--device", args.device,
               "--autocast", args.autocast, "--threads", str(args.threads)]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
        peaks[variant] = json.loads(out.strip().splitlines()[-1])["peak_mib"]
    return peaks


def report(name: str, batch: int, times: dict, peaks: dict[str, float] | None) -> None:
    def ratios(v: str, kind: str) -> list[float]:
        return times[v][f"{kind}_ratio"]

    def ratio(v: str, kind: str) -> float:
        return statistics.median(ratios(v, kind))

    print(f"\n{name}, batch {batch}: medians over {len(times['fast-linear']['wall'])} rounds; ratio = step / mean of the plain steps around it")
    print(f"{'variant':<14}{'wall s':>9}{'ratio':>8}{'(min-max)':>12}{'cpu s':>9}{'ratio':>8}{'peak MiB':>10}{'ratio':>8}")
    for v in VARIANTS:
        wall, cpu = statistics.median(times[v]["wall"]), statistics.median(times[v]["cpu"])
        spread = f"{min(ratios(v, 'wall')):.2f}-{max(ratios(v, 'wall')):.2f}"
        mem = f"{peaks[v]:>10.0f}{peaks[v] / peaks['plain']:>8.2f}" if peaks and v in peaks else ""
        print(f"{v:<14}{wall:>9.3f}{ratio(v, 'wall'):>8.2f}{spread:>12}{cpu:>9.3f}{ratio(v, 'cpu'):>8.2f}{mem}")
    print(f"speed-up of fast over torch.func: linear step {ratio('func-linear', 'wall') / ratio('fast-linear', 'wall'):.2f}x, "
          f"penalty {ratio('func-penalty', 'wall') / ratio('fast-penalty', 'wall'):.2f}x (wall)")


def parse_models(text: str) -> list[tuple[str, int]]:
    out = []
    for item in text.split(","):
        name, _, batch = item.partition(":")
        out.append((name, int(batch or 16)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="ViT-B-32:16,TinyCLIP:64", help="name:batch,...")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--min-seconds", type=float, default=1.0, help="repeat short steps up to this long per sample")
    # One thread by default: on cores shared with other jobs, a descheduled OpenMP worker stalls
    # its partner at every barrier, which made 2-thread timings here swing by 3x between runs.
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--autocast", choices=["none", "bf16"], default="none")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--all-memory", action="store_true", help="also measure the penalty variants' peak memory")
    parser.add_argument("--probe", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    autocast = torch.bfloat16 if args.autocast == "bf16" else None
    if args.probe:
        name, batch = parse_models(args.models)[0]
        print(json.dumps({"peak_mib": probe_memory(name, batch, args.probe, device, autocast)}))
        return
    print(f"torch {torch.__version__}, device {device}, threads {args.threads}, autocast {args.autocast}")
    for name, batch in parse_models(args.models):
        case = build_case(name, batch, device, autocast)
        times = time_variants(case, args.rounds, args.warmup, args.min_seconds)
        del case
        peaks = None if args.no_memory else measure_memory(name, batch, args)
        report(name, batch, times, peaks)


if __name__ == "__main__":
    main()
