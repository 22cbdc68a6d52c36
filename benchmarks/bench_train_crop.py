"""Accuracy effect of `--train-crop cache` against the PIL path, on the embedded world as images.

    .venv/bin/python benchmarks/bench_train_crop.py                    # 3 tasks x 2 image sizes x 2 paths, seed 0
    .venv/bin/python benchmarks/bench_train_crop.py --steps 150 --seeds 0,1

The embedded tasks Digits, LandUse and Landscapes (and the control) are written as PNG folders
(benchmarks/embedded_as_images.py) at the 32x32 they are rendered at and upsampled to 64x48, and
fine-tuned from the smoke preset's pretrained TinyCLIP (standard mode, --max-steps, batch 128)
twice per task: decoding and cropping with PIL every pass (--train-crop pil), and cropping the
cached records (--train-crop cache; the evaluation transform is cached either way, exactly).
Both draw the same crop boxes for a seed. At 32x32 the records keep the images as they are, so
the two paths must give the same weights bit for bit; at 64x48 the images are squashed into
37x37 records (32 * 8/7) and resampled twice. Test accuracy of each run from
`src/evaluate.py single_task`, and the difference, are printed per task and seed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import embedded_as_images as images  # noqa: E402

TASKS = ("Digits", "LandUse", "Landscapes")


def run(command: list[str], env: dict[str, str]) -> None:
    out = subprocess.run([sys.executable, *command], cwd=REPO, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{out.stderr[-2000:]}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", type=Path, default=None, help="work folder (default: a new temporary one)")
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--seeds", default="0")
    p.add_argument("--cache-dir", type=Path, default=None, help="where the smoke TinyCLIP is (or is pretrained into); default <root>/ck/pretrained")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    root = args.root or Path(tempfile.mkdtemp(prefix="bench_train_crop_"))
    data, ck, res = root / "data", root / "ck", root / "res"
    env = {**os.environ, "TA_EXTRA_TASKS": str(Path(images.__file__).resolve()), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    from task_arithmetic.plugins import register_builtin_plugins

    register_builtin_plugins()
    started = time.perf_counter()
    for size in images.SIZES:
        images.export(data, size)
    print(f"images written under {data} in {time.perf_counter() - started:.0f} s", flush=True)
    roots = ["--data-location", str(data), "--checkpoint-root", str(ck), "--results-root", str(res)]
    model = ["--model", "TinyCLIP", "--pretrained", "embedded-smoke", "--cache-dir", str(args.cache_dir or ck / "pretrained")]
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    for size, seed in itertools.product(images.SIZES, seeds):
        tasks = [images.name(t, size) for t in TASKS]
        for crop in ("pil", "cache"):
            tag = f"{crop}{seed}"
            t0 = time.perf_counter()
            for task in tasks:
                run(["src/finetune.py", "--task", task, *model, *roots, "--device", "cpu", "--no-progress", "--max-steps", str(args.steps),
                     "--train-crop", crop, "--seed", str(seed), "--tag", tag], env)
            run(["src/evaluate.py", "single_task", *model, *roots, "--device", "cpu", "--tasks", ",".join(tasks), "--tag", tag], env)
            result = json.loads((res / "TinyCLIP-embedded-smoke" / f"standard-{tag}" / "single_task.json").read_text())["results"]
            for task in tasks:
                rows.append({"size": f"{size[0]}x{size[1]}", "seed": seed, "crop": crop, "task": task,
                             "test": result["finetuned"][task]["test"]["accuracy"], "seconds": time.perf_counter() - t0})
            print(f"  {size[0]}x{size[1]} seed {seed} {crop}: done in {time.perf_counter() - t0:.0f} s", flush=True)
    from task_arithmetic.io import load_weights

    print(f"\nTinyCLIP (smoke pretraining), standard fine-tuning, {args.steps} steps of 128, test accuracy %")
    print(f"{'images':<8}{'seed':>5}  {'task':<22}{'PIL crop':>10}{'cache crop':>12}{'diff':>8}  same weights")
    diffs: dict[str, list[float]] = {}
    for size, seed in itertools.product(images.SIZES, seeds):
        label = f"{size[0]}x{size[1]}"
        for task in (images.name(t, size) for t in TASKS):
            pil, cache = (next(r["test"] for r in rows if r["size"] == label and r["seed"] == seed and r["crop"] == c and r["task"] == task)
                          for c in ("pil", "cache"))
            weights = [load_weights(ck / "TinyCLIP-embedded-smoke" / task / f"standard-{c}{seed}" / "finetuned.safetensors")[0] for c in ("pil", "cache")]
            same = all(__import__("torch").equal(weights[0][k], weights[1][k]) for k in weights[0])
            diffs.setdefault(label, []).append(100 * (cache - pil))
            print(f"{label:<8}{seed:>5}  {task:<22}{100 * pil:10.1f}{100 * cache:12.1f}{100 * (cache - pil):+8.1f}  {same}")
    for label, values in diffs.items():
        print(f"{label}: mean difference cache - PIL {sum(values) / len(values):+.2f} points over {len(values)} runs")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    print(f"total {time.perf_counter() - started:.0f} s ({root})")


if __name__ == "__main__":
    main()
