"""Cost of one fine-tuning step: standard, linear, tau-Jp-efficient and tau-Jp-strict, side by side.

    .venv/bin/python benchmarks/bench_train_step.py                      # TinyCLIP and ViT-B-32, CPU
    .venv/bin/python benchmarks/bench_train_step.py --models TinyCLIP --repeats 5 --jvp functorch
    python benchmarks/bench_train_step.py --models ViT-B-32 --batch 128 --penalty-batch 16 --device cuda --autocast bf16
    .venv/bin/python benchmarks/bench_train_step.py --autocast none,bf16   # fp32 and bf16 side by side, same process

Each model runs in its own process (random weights; one CPU thread unless --threads says
otherwise, which keeps the ratios steady on a shared machine). One step = the training loop's
accumulate_gradients (cross-entropy on the batch + penalty) + clipping + AdamW. The four step kinds
share one model, optimiser and batch, and their timed steps are interleaved so that load from other
processes hits all of them alike. Peak memory is the step's transient peak above the resident
weights and optimiser state, gradients included (CPU: peak RSS after /proc/self/clear_refs, with
malloc returning large blocks to the OS; CUDA: max_memory_allocated). Resident besides: theta and
two Adam moments (3 model sizes); linear steps also keep the frozen theta_0 copy (4).
--autocast bf16 runs each step as `--precision bf16` fine-tuning does (the forward, loss and penalty
under torch.autocast, the backward outside it); `--autocast none,bf16` times both precisions in one
process, interleaved with each other, and prints bf16's speed-up per step kind. --micro-batch
accumulates the batch in chunks as --micro-batch does in fine-tuning (the penalty rides on the first).
Targets: linear <= 1.8x standard, tau-Jp-efficient <= 1.25x linear.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

# Paper proportions: batch 128 with 16 penalty inputs per task and 8 penalty tasks (7 others +
# control). ViT-B-32 on CPU keeps the 8:1 ratio at a size that fits the time budget.
DEFAULT_BATCH = {"TinyCLIP": 128, "ViT-B-32": 8}
DEFAULT_PENALTY_BATCH = {"TinyCLIP": 16, "ViT-B-32": 1}
STEP_KINDS = ("standard", "linear", "tau-Jp efficient", "tau-Jp strict")


def _proc_status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


class PeakMemory:
    """Transient peak of one step, in MB (None where it cannot be measured)."""

    def __init__(self, device):
        import torch

        self.torch, self.device = torch, device
        self.cpu_ok = device.type == "cpu" and os.access("/proc/self/clear_refs", os.W_OK)

    def start(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize()
            self.base = self.torch.cuda.memory_allocated()
            self.torch.cuda.reset_peak_memory_stats()
        elif self.cpu_ok:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            self.base = _proc_status_kb("VmRSS") * 1024

    def stop(self) -> float | None:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize()
            return (self.torch.cuda.max_memory_allocated() - self.base) / 2**20
        if self.cpu_ok:
            return (_proc_status_kb("VmHWM") * 1024 - self.base) / 2**20
        return None


def worker(model: str, batch: int, penalty_batch: int, penalty_tasks: int, repeats: int, device_name: str, jvp: str, threads: int | None,
           autocast: str = "none", micro_batch: int | None = None, checkpointing: bool = False, only: tuple[str, ...] = STEP_KINDS) -> dict:
    import torch

    if threads:
        torch.set_num_threads(threads)
    import torch.nn.functional as F

    from task_arithmetic.models.encoder import build_encoder
    from task_arithmetic.models.factory import ModelSpec
    from task_arithmetic.models.heads import ClassificationHead
    from task_arithmetic.models.linearize import LinearizedModel, functorch_jvp
    from task_arithmetic.precision import Precision
    from task_arithmetic.recipes.base import PenaltyInputs
    from task_arithmetic.recipes.tau_jp import TauJpPenalty
    from task_arithmetic.training.model import Trainee
    from task_arithmetic.training.step import accumulate_gradients

    device = torch.device(device_name)
    torch.manual_seed(0)
    encoder = build_encoder(ModelSpec(model), device)
    size = encoder.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    embed = encoder(torch.zeros(1, 3, size, size, device=device)).shape[-1]
    head = ClassificationHead(F.normalize(torch.randn(10, embed), dim=-1) * 100).to(device)
    linear = LinearizedModel(encoder.visual, jvp_fn=functorch_jvp if jvp == "functorch" else None)
    jvp_name = getattr(linear.jvp_fn, "__module__", "?").rsplit(".", 1)[-1] + "." + linear.jvp_fn.__name__
    with torch.no_grad():  # theta != theta_0, as during training
        for p in encoder.visual.parameters():
            p.add_(1e-3 * torch.randn_like(p))
    standard, linearised = Trainee(encoder, head, False, linear), Trainee(encoder, head, True, linear)
    standard.set_grad_checkpointing(checkpointing)  # the same switches serve both (one encoder, one theta_0 copy)
    params = standard.parameters()
    optimizer = torch.optim.AdamW(params, lr=1e-5, weight_decay=0.1)
    images = torch.randn(batch, 3, size, size, device=device)
    labels = torch.randint(0, 10, (batch,), device=device)
    penalty_pool = torch.randn(penalty_batch * penalty_tasks, 3, size, size, device=device)
    modes = autocast.split(",")
    kinds = {
        (mode, kind): (trainee, n)
        for mode in modes
        for kind, (trainee, n) in (("standard", (standard, 0)), ("linear", (linearised, 0)), ("tau-Jp efficient", (linearised, 1)),
                                   ("tau-Jp strict", (linearised, penalty_tasks)))
        if kind in only
    }

    chunk = micro_batch or batch

    def step(trainee: Trainee, n_tasks: int, mode: str) -> None:
        pen = penalty_pool[: n_tasks * penalty_batch] if n_tasks else None
        accumulate_gradients(trainee, images, labels, micro_batch=chunk, global_count=batch, world=1,
                             penalty=TauJpPenalty(0.1, source=None) if n_tasks else None,
                             penalty_inputs=PenaltyInputs(pen, n_tasks * penalty_batch) if n_tasks else None,
                             precision=Precision.BF16 if mode == "bf16" else Precision.FP32)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        # Freed here rather than before the next step, so the measured peak includes the gradients.
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()

    memory = PeakMemory(device)
    for (mode, _), (trainee, n) in kinds.items():  # warm-up: kernels, allocator, Adam state
        step(trainee, n, mode)
    times: dict[tuple[str, str], list[float]] = {k: [] for k in kinds}
    peaks: dict[tuple[str, str], float | None] = {}
    for round_ in range(repeats):
        for (mode, kind), (trainee, n) in kinds.items():
            if round_ == 0:
                memory.start()
            start = time.perf_counter()
            step(trainee, n, mode)
            times[(mode, kind)].append(time.perf_counter() - start)
            if round_ == 0:
                peaks[(mode, kind)] = memory.stop()
    param_mb = sum(p.numel() * p.element_size() for p in params) / 2**20
    by_mode = {mode: {"time": {kind: statistics.median(times[(m, kind)]) for (m, kind) in kinds if m == mode},
                      "peak_mb": {kind: peaks[(m, kind)] for (m, kind) in kinds if m == mode}} for mode in modes}
    return {
        "model": model, "batch": batch, "micro_batch": chunk, "autocast": modes[-1], "penalty_batch": penalty_batch, "checkpointing": checkpointing,
        "penalty_tasks": penalty_tasks, "jvp": jvp_name,
        "threads": torch.get_num_threads(), "device": str(device), "param_mb": param_mb,
        # the last precision's figures at the top level (what --autocast bf16 alone reports), every one by mode
        "time": by_mode[modes[-1]]["time"], "peak_mb": by_mode[modes[-1]]["peak_mb"], "by_autocast": by_mode,
    }


def print_table(result: dict) -> None:
    for mode, figures in result.get("by_autocast", {result["autocast"]: result}).items():
        print_mode(result, mode, figures["time"], figures["peak_mb"])
    modes = list(result.get("by_autocast", {}))
    if len(modes) > 1:
        base, other = (result["by_autocast"][m]["time"] for m in modes[:2])
        print(f"\n{modes[1]} vs {modes[0]}, same process, interleaved: speed-up of each step (time {modes[0]} / time {modes[1]})")
        for kind in base:
            print(f"  {kind:<18}{base[kind] / other[kind]:6.2f}x")


def print_mode(result: dict, autocast: str, t: dict, m: dict) -> None:
    result = {**result, "autocast": autocast}
    print(f"\n{result['model']}  batch {result['batch']} (micro-batch {result['micro_batch']}, autocast {result['autocast']}), penalty {result['penalty_batch']} x {result['penalty_tasks']} tasks (strict), "
          f"{result['device']} {result['threads']} threads, JVP {result['jvp']}, model {result['param_mb']:.0f} MB")
    print(f"{'step':<18}{'time s':>9}{'images/s':>10}{'x standard':>12}{'x linear':>10}{'peak MB':>10}{'x standard':>12}{'resident':>11}")
    for kind in t:
        peak = m.get(kind)
        peak_s = f"{peak:10.0f}" if peak is not None else f"{'n/a':>10}"
        ratio = f"{peak / m['standard']:12.2f}" if peak is not None and m.get("standard") else f"{'n/a':>12}"
        resident = "3 models" if kind == "standard" else "4 models"  # theta, 2 Adam moments (+ theta_0)
        rel = {ref: f"{t[kind] / t[ref]:{w}.2f}" if ref in t else f"{'n/a':>{w}}" for ref, w in (("standard", 12), ("linear", 10))}
        print(f"{kind:<18}{t[kind]:9.3f}{result['batch'] / t[kind]:10.1f}{rel['standard']}{rel['linear']}{peak_s}{ratio}{resident:>11}")
    for name, ratio, target in targets({"time": t}):
        print(f"target {name} <= {target}x: {ratio:.2f}x -> {'met' if ratio <= target else 'NOT met'}")


def targets(result: dict) -> list[tuple[str, float, float]]:
    """(what, measured ratio, target) for the step-time targets."""
    t = result["time"]
    pairs = (("linear / standard", "linear", "standard", 1.8), ("tau-Jp efficient / linear", "tau-Jp efficient", "linear", 1.25))
    return [(name, t[a] / t[b], target) for name, a, b, target in pairs if a in t and b in t]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="TinyCLIP,ViT-B-32")
    p.add_argument("--repeats", type=int, default=3, help="timed steps per kind (median reported)")
    p.add_argument("--batch", type=int, default=None, help="default: 128 TinyCLIP, 8 ViT-B-32")
    p.add_argument("--penalty-batch", type=int, default=None, help="per penalty task; default 16 TinyCLIP, 1 ViT-B-32")
    p.add_argument("--penalty-tasks", type=int, default=8, help="tasks in a strict step")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads; 1 (default) keeps ratios steady on a shared machine, 0 = torch's choice")
    p.add_argument("--jvp", choices=("auto", "functorch"), default="auto", help="auto: the fast path where supported")
    p.add_argument("--autocast", default="none", help="none, bf16, or none,bf16 for both side by side (as --precision fp32 / bf16 trains)")
    p.add_argument("--micro-batch", type=int, default=None, help="accumulate the batch in chunks of this size (default: one chunk)")
    p.add_argument("--grad-checkpointing", action="store_true", help="activation checkpointing, as finetune.py --grad-checkpointing")
    p.add_argument("--kinds", default=",".join(STEP_KINDS), help=f"step kinds to time, of: {', '.join(STEP_KINDS)}")
    p.add_argument("--json", default=None, help="also write every model's result to this JSON file (a list)")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if not args.autocast or any(m not in ("none", "bf16") for m in args.autocast.split(",")):
        p.error(f"--autocast takes none, bf16 or none,bf16; got {args.autocast!r}")
    if not set(args.kinds.split(",")) <= set(STEP_KINDS):
        p.error(f"--kinds takes some of {', '.join(STEP_KINDS)}; got {args.kinds!r}")
    if args.worker:
        batch = args.batch or DEFAULT_BATCH.get(args.worker, 16)
        pen = args.penalty_batch or DEFAULT_PENALTY_BATCH.get(args.worker, 2)
        print(json.dumps(worker(args.worker, batch, pen, args.penalty_tasks, args.repeats, args.device, args.jvp, args.threads,
                                args.autocast, args.micro_batch, args.grad_checkpointing, tuple(args.kinds.split(",")))))
        return
    # Large freed blocks go back to the OS at once, so peak RSS measures what a step really holds.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    started = time.perf_counter()
    results = []
    for model in args.models.split(","):
        command = [sys.executable, __file__, "--worker", model, "--repeats", str(args.repeats), "--penalty-tasks", str(args.penalty_tasks),
                   "--device", args.device, "--jvp", args.jvp, "--autocast", args.autocast]
        if args.micro_batch:
            command += ["--micro-batch", str(args.micro_batch)]
        if args.grad_checkpointing:
            command += ["--grad-checkpointing"]
        command += ["--kinds", args.kinds]
        if args.batch:
            command += ["--batch", str(args.batch)]
        if args.penalty_batch:
            command += ["--penalty-batch", str(args.penalty_batch)]
        if args.threads:
            command += ["--threads", str(args.threads)]
        out = subprocess.run(command, env=env, capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"{model} failed:\n{out.stderr[-3000:]}")
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print_table(results[-1])
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
