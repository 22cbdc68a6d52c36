"""Peak memory of merging 8 ViT-B-32 checkpoints from disk, in multiples of one model's size.

    .venv/bin/python benchmarks/bench_merge_memory.py [--models 8] [--keep DIR]

Writes a pre-trained ViT-B-32 image encoder (random init) and N "fine-tuned" copies (plus noise)
in the suite's weight format to a temporary folder, then merges them in fresh subprocesses, one
per strategy, each measuring (peak RSS - peak RSS after its imports) / model size:

  streamed      TaskArithmeticAlgorithm over a file pool: theta_0 + accumulator + one tensor
  ties          TiesMergingAlgorithm over the same pool (three passes, a few accumulators)
  all-at-once   every state dict loaded first, then the same formula (what a naive merge holds)

and the largest difference between the streamed and the all-at-once results. Target: streamed
task arithmetic <= 3.5 (pre-trained + accumulator + one model = 3).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

SCALING = 0.3


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def start_measuring() -> int:
    """Reset the peak-RSS mark to the current RSS and return it (bytes).

    getrusage's ru_maxrss survives exec (a child starts with its parent's peak), so the peak of
    this process's own memory map (VmHWM) is used, reset through clear_refs where allowed.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return _status_kib("VmHWM") * 1024
    return _status_kib("VmRSS") * 1024


def peak_rss_bytes() -> int:
    return _status_kib("VmHWM") * 1024


def make_checkpoints(folder: Path, n: int) -> dict[str, str]:
    import torch

    from task_arithmetic.io import save_weights
    from task_arithmetic.models.encoder import ENCODER_FORMAT, build_encoder
    from task_arithmetic.models.factory import ModelSpec

    torch.manual_seed(0)
    encoder = build_encoder(ModelSpec("ViT-B-32"))
    paths = {"_pretrained_": str(encoder.save(folder / "pretrained.safetensors"))}
    base = encoder.weights()
    meta = {**encoder.metadata, "format": ENCODER_FORMAT}
    for i in range(n):
        gen = torch.Generator().manual_seed(i + 1)
        noisy = {k: v + 1e-3 * torch.randn(v.shape, generator=gen) if v.is_floating_point() else v for k, v in base.items()}
        paths[f"task{i}"] = str(save_weights(folder / f"task{i}.safetensors", noisy, meta))
        del noisy
    return paths


def child(strategy: str, paths: dict[str, str], out: Path) -> None:
    import torch

    from task_arithmetic.io import save_weights
    from task_arithmetic.merging import OpenCLIPVisionModelPool, TaskArithmeticAlgorithm, TiesMergingAlgorithm
    from task_arithmetic.merging.streaming import SafetensorsReader

    torch.set_num_threads(2)
    baseline = start_measuring()
    start = time.perf_counter()
    if strategy in ("streamed", "ties"):
        pool = OpenCLIPVisionModelPool(model="ViT-B-32", models=paths)
        algorithm = TaskArithmeticAlgorithm(SCALING) if strategy == "streamed" else TiesMergingAlgorithm(SCALING, threshold=20)
        merged = algorithm.run(pool).visual.state_dict()
    else:
        states = {name: {k: v.clone() for k, v in SafetensorsReader(Path(p)).items()} for name, p in paths.items()}
        base = states.pop("_pretrained_")
        merged = {}
        for key, value in base.items():
            if value.is_floating_point():
                total = sum(s[key] - value for s in states.values())
                merged[key] = value + SCALING * total
            else:
                merged[key] = value
    seconds = time.perf_counter() - start
    peak = peak_rss_bytes()
    if strategy != "ties":
        save_weights(out / f"{strategy}.safetensors", merged, {})
    print(json.dumps({"baseline": baseline, "peak": peak, "seconds": seconds}))


def run_child(strategy: str, paths: object, out: Path) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, "--child", strategy, "--paths", json.dumps(paths), "--out", str(out)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=8, help="number of fine-tuned checkpoints")
    parser.add_argument("--keep", type=Path, help="keep the checkpoints in this folder (reused when already there)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--paths", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "make":
        print(json.dumps(make_checkpoints(args.out, int(args.paths))))
        return
    if args.child:
        child(args.child, json.loads(args.paths), args.out)
        return

    with tempfile.TemporaryDirectory(prefix="bench_merge_") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        # The checkpoints are made in a child too: this process stays small, so nothing of a large
        # parent can leak into the children's measurements.
        paths = {"_pretrained_": str(folder / "pretrained.safetensors"), **{f"task{i}": str(folder / f"task{i}.safetensors") for i in range(args.models)}}
        if not all(Path(p).with_suffix(".json").is_file() for p in paths.values()):
            paths = run_child("make", args.models, folder)
        model_bytes = Path(paths["_pretrained_"]).stat().st_size
        print(f"{args.models} ViT-B-32 fine-tuned checkpoints + pre-trained ready in {time.perf_counter() - start:.1f} s; "
              f"model size {model_bytes / 2**20:.1f} MiB (float32 image encoder)")
        rows = {}
        for strategy in ("streamed", "ties", "all-at-once"):
            rows[strategy] = run_child(strategy, paths, Path(tmp))
        print(f"{'strategy':14s} {'peak-baseline MiB':>18s} {'x model size':>13s} {'seconds':>8s}")
        for strategy, row in rows.items():
            extra = row["peak"] - row["baseline"]
            print(f"{strategy:14s} {extra / 2**20:18.1f} {extra / model_bytes:13.2f} {row['seconds']:8.1f}")

        from safetensors.torch import load_file

        streamed, naive = load_file(str(Path(tmp) / "streamed.safetensors")), load_file(str(Path(tmp) / "all-at-once.safetensors"))
        diff = max(float((streamed[k].double() - naive[k].double()).abs().max()) for k in naive if naive[k].numel())
        ratio = (rows["streamed"]["peak"] - rows["streamed"]["baseline"]) / model_bytes
        print(f"max |streamed - all-at-once| = {diff:.3g}")
        print(f"streamed task arithmetic: {ratio:.2f} x model size (target <= 3.5): {'OK' if ratio <= 3.5 else 'ABOVE TARGET'}")


if __name__ == "__main__":
    main()
