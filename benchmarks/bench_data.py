"""Images per second per core: decoding every pass vs the decode-once cache (data/decoded.py).

    .venv/bin/python benchmarks/bench_data.py                  # 4 fake datasets at their real image sizes
    .venv/bin/python benchmarks/bench_data.py --images 400 --rounds 3

Fake copies of four datasets in their real on-disk layouts (tests/fakedata.py, split by the
dataset tool) at their real image sizes: SUN397-like 500x375 JPEGs, RESISC45 256x256 JPEGs,
EuroSAT 64x64 JPEGs (photo-like textures, quality 90: a solid colour would decode unrealistically
fast) and MNIST 28x28 in its idx files. Each dataset is read through ViT-B-32's transforms, item by
item in this one process on one thread (one core), four ways:
  eval  decode   the evaluation transform on every pass (PIL: decode, resize, centre crop)
  eval  cache    records of the cache (bit-identical tensors)
  train decode   the training transform (PIL RandomResizedCrop) on every pass
  train cache    --train-crop cache: the same crop taken from a 256 px record on tensors
The four are interleaved in rounds (median reported), so load from other processes hits them
alike. The caches' one-off build (one decoding pass, written to disk) is reported beside them.
Target: the cache path >= 20x the decode path per core. A data loader runs one such reader per
worker process, so `--num-workers` workers deliver about workers x this rate.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests"))  # the fake datasets are a test fixture

# name -> (width, height) of the real images; MNIST's idx files hold 28x28 grey digits.
SIZES = {"SUN397": (500, 375), "RESISC45": (256, 256), "EuroSAT": (64, 64), "MNIST": (28, 28)}
PATHS = ("eval decode", "eval cache", "train decode", "train cache")
# Published ViT-B/32 training throughput on one GPU: timm's benchmark of vit_base_patch32_224,
# mixed precision, batch 512, RTX 3090 (huggingface/pytorch-image-models,
# results/benchmark-train-amp-nchw-pt112-cu113-rtx3090.csv): 1703.6 images/s.
GPU_IMAGES_PER_S = 1703.6
DEFAULT_WORKERS = 8  # data.sampling.MAX_AUTO_WORKERS: --num-workers' default on a CUDA node with >= 9 cores


def photo(path: Path, width: int, height: int, seed: int) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize((width, height), Image.BICUBIC)
    pixels = np.asarray(coarse, dtype=np.int16) + rng.integers(-24, 25, (height, width, 3))
    Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(path, quality=90)


def make_data(root: Path, images: int) -> None:
    import fakedata

    from task_arithmetic.data.real import tool

    fakedata.SIZE = 28  # MNIST's real size; the JPEGs are re-saved at their own sizes below
    fakedata.make_mnist(root, n_train=images, n_test=10)
    fakedata.make_sun397_raw(root, per_list=images // 3)
    fakedata.make_resisc45_raw(root, per_class=images // 3)
    fakedata.make_eurosat_raw(root, per_class=images // 3)
    for task, folder in (("SUN397", "SUN397"), ("RESISC45", "resisc45"), ("EuroSAT", "EuroSAT_RGB")):
        width, height = SIZES[task]
        for i, path in enumerate(sorted((root / folder).rglob("*.jpg"))):
            photo(path, width, height, i)
    tool.split(root)


def measure(images: int, rounds: int) -> dict:
    import torch

    torch.set_num_threads(1)
    from task_arithmetic.data.decoded import cached_dataset
    from task_arithmetic.data.splits import load_dataset
    from task_arithmetic.models.factory import ModelSpec, transforms_for
    from task_arithmetic.plugins import register_builtin_plugins

    register_builtin_plugins()
    train_tf, val_tf = transforms_for(ModelSpec("ViT-B-32", None))
    root = Path(tempfile.mkdtemp(prefix="bench_data_"))
    started = time.perf_counter()
    make_data(root, images)
    print(f"fake data made in {time.perf_counter() - started:.0f} s under {root}", file=sys.stderr)
    readers, builds = {}, {}
    for task in SIZES:
        start = time.perf_counter()
        cached_eval = cached_dataset(task, "train", root, val_tf)
        built_eval = time.perf_counter() - start
        start = time.perf_counter()
        cached_train = cached_dataset(task, "train", root, train_tf, train_crop=True)
        builds[task] = {"eval": built_eval, "train": time.perf_counter() - start, "n": len(cached_eval)}
        readers[task] = {
            "eval decode": load_dataset(task, "train", root, val_tf), "eval cache": cached_eval,
            "train decode": load_dataset(task, "train", root, train_tf), "train cache": cached_train,
        }
    times: dict = {task: {path: [] for path in PATHS} for task in SIZES}
    for _ in range(rounds):
        for task, paths in readers.items():
            for path, dataset in paths.items():
                torch.manual_seed(0)
                start = time.perf_counter()
                for i in range(len(dataset)):
                    dataset[i]
                times[task][path].append(len(dataset) / (time.perf_counter() - start))
    return {"rates": {t: {p: statistics.median(v) for p, v in paths.items()} for t, paths in times.items()}, "builds": builds}


def report(result: dict) -> None:
    rates, builds = result["rates"], result["builds"]
    print("\nimages per second on one core (one process, one thread), median over rounds")
    print(f"{'dataset':<10}{'image':>10}{'n':>6}" + "".join(f"{p:>14}" for p in PATHS) + f"{'eval x':>9}{'train x':>9}{'build s':>9}")
    worst = {"eval": float("inf"), "train": float("inf")}
    for task, r in rates.items():
        size = "x".join(map(str, SIZES[task]))
        eval_x, train_x = r["eval cache"] / r["eval decode"], r["train cache"] / r["train decode"]
        worst = {"eval": min(worst["eval"], eval_x), "train": min(worst["train"], train_x)}
        build = builds[task]["eval"] + builds[task]["train"]
        print(f"{task:<10}{size:>10}{builds[task]['n']:>6}" + "".join(f"{r[p]:14.0f}" for p in PATHS) + f"{eval_x:8.1f}x{train_x:8.1f}x{build:9.1f}")
    for kind, ratio in worst.items():
        print(f"target {kind} cache >= 20x decode per core: worst {ratio:.1f}x -> {'met' if ratio >= 20 else 'NOT met'}")
    need = GPU_IMAGES_PER_S / DEFAULT_WORKERS
    slowest = {p: min(r[p] for r in rates.values()) for p in PATHS}
    print(f"\none GPU's ViT-B/32 training step (timm, RTX 3090, mixed precision): {GPU_IMAGES_PER_S:.0f} images/s; with the default "
          f"{DEFAULT_WORKERS} loader workers each must deliver {need:.0f} images/s")
    for path in PATHS:
        enough = slowest[path] * DEFAULT_WORKERS
        print(f"  {path:<13} slowest dataset {slowest[path]:7.0f}/s per core -> {enough:8.0f}/s with {DEFAULT_WORKERS} workers: "
              f"{'keeps up' if enough >= GPU_IMAGES_PER_S else 'starves the GPU'}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=240, help="training images per dataset (the timed pass reads the train split less Val)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = p.parse_args()
    started = time.perf_counter()
    result = measure(args.images, args.rounds)
    report(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
