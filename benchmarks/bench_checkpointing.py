"""Peak memory and time of one training step with and without activation checkpointing.

    .venv/bin/python benchmarks/bench_checkpointing.py                          # ViT-L-14, micro-batch 16, CPU
    .venv/bin/python benchmarks/bench_checkpointing.py --model ViT-B-32 --batch 8

One step = the training loop's accumulate_gradients (cross-entropy through a frozen head, forward
and backward; linear mode through the fast JVP) on one micro-batch, random weights. Each of
standard / linear x plain / --grad-checkpointing runs in its own process (its own allocator, so
one configuration's peak never hides another's), one CPU thread. Peak memory is the step's
transient peak above the resident weights (theta, and theta_0 in linear mode), gradients
included: peak RSS after /proc/self/clear_refs with malloc returning large blocks to the OS, as
benchmarks/bench_train_step.py measures it (on CUDA: max_memory_allocated). A step's gradients
with and without checkpointing are compared too (they must be equal).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

CONFIGS = [(mode, ckpt) for mode in ("standard", "linear") for ckpt in (False, True)]


def worker(model: str, batch: int, mode: str, checkpointing: bool, device_name: str, precision: str) -> dict:
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    from bench_train_step import PeakMemory

    from task_arithmetic.models.encoder import build_encoder
    from task_arithmetic.models.factory import ModelSpec
    from task_arithmetic.models.heads import ClassificationHead
    from task_arithmetic.precision import Precision
    from task_arithmetic.training.model import build_trainee
    from task_arithmetic.training.step import accumulate_gradients

    device = torch.device(device_name)
    torch.manual_seed(0)
    encoder = build_encoder(ModelSpec(model), device)
    size = encoder.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    with torch.no_grad():
        embed = encoder(torch.zeros(1, 3, size, size, device=device)).shape[-1]
    head = ClassificationHead(F.normalize(torch.randn(10, embed), dim=-1) * 100).to(device)
    trainee = build_trainee(encoder, head, mode, needs_theta0=mode == "linear", init_weights=None)
    with torch.no_grad():  # theta != theta_0, as during training
        generator = torch.Generator().manual_seed(1)
        for p in encoder.visual.parameters():
            p.add_(1e-3 * torch.randn(p.shape, generator=generator).to(device))
    trainee.set_grad_checkpointing(checkpointing)
    trainee.train()
    images = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(2)).to(device)
    labels = torch.randint(0, 10, (batch,), generator=torch.Generator().manual_seed(3)).to(device)
    memory = PeakMemory(device)
    memory.start()
    started = time.perf_counter()
    accumulate_gradients(trainee, images, labels, micro_batch=batch, global_count=batch, world=1, precision=Precision(precision))
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    peak = memory.stop()
    grads = [p.grad.double().flatten() for p in encoder.visual.parameters() if p.grad is not None]
    flat = torch.cat(grads)
    return {"model": model, "batch": batch, "mode": mode, "checkpointing": checkpointing, "precision": precision, "seconds": seconds,
            "peak_mb": peak, "weights_mb": sum(p.numel() * p.element_size() for p in encoder.visual.parameters()) / 2**20,
            "grad_norm": float(flat.norm()), "grad_checksum": float((flat * torch.arange(1, flat.numel() + 1, dtype=torch.float64).remainder(97)).sum())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="ViT-L-14")
    p.add_argument("--batch", type=int, default=16, help="the micro-batch (one forward and backward)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    p.add_argument("--json", default=None)
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        mode, ckpt = args.worker.split(":")
        print(json.dumps(worker(args.model, args.batch, mode, ckpt == "1", args.device, args.precision)))
        return
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    results = []
    for mode, ckpt in CONFIGS:
        command = [sys.executable, __file__, "--worker", f"{mode}:{int(ckpt)}", "--model", args.model, "--batch", str(args.batch),
                   "--device", args.device, "--precision", args.precision]
        out = subprocess.run(command, env=env, capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{mode} checkpointing={ckpt}: failed (rc {out.returncode}): {out.stderr.strip().splitlines()[-1:] or ''}", flush=True)
            continue
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        r = results[-1]
        print(f"{mode:<9} checkpointing {'on ' if ckpt else 'off'}  step {r['seconds']:7.1f} s  peak {r['peak_mb']:8.0f} MB above weights "
              f"({r['weights_mb']:.0f} MB a copy)", flush=True)
    print(f"\n{args.model}, micro-batch {args.batch}, {args.precision}, {args.device}, one thread, random weights")
    for mode in ("standard", "linear"):
        pair = {r["checkpointing"]: r for r in results if r["mode"] == mode}
        if len(pair) == 2:
            off, on = pair[False], pair[True]
            same = off["grad_checksum"] == on["grad_checksum"] and off["grad_norm"] == on["grad_norm"]
            print(f"  {mode:<9} peak {off['peak_mb']:.0f} -> {on['peak_mb']:.0f} MB ({on['peak_mb'] / off['peak_mb']:.2f}x), "
                  f"time {off['seconds']:.1f} -> {on['seconds']:.1f} s ({on['seconds'] / off['seconds']:.2f}x), gradients equal: {same}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
