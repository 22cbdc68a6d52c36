"""Verified reads: loading the same unchanged weights file repeatedly, hashed every time vs once.

load_weights checks the sha256 recorded in the file's JSON on every read (a flipped byte must
never change a published number). sha256 costs about 1 s/GB, and one evaluation or merge reads
theta_0, heads and checkpoints many times; the digest is memoised per process while the file's
identity (path, device, inode, size, mtime, ctime) is unchanged. Both sides run here, one after
the other, on the same file:

    .venv/bin/python benchmarks/bench_verified_reads.py             # 100 MB, 5 reads
    .venv/bin/python benchmarks/bench_verified_reads.py --mb 1000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from task_arithmetic.io import load_weights, save_weights  # noqa: E402
from task_arithmetic.storage import checksums  # noqa: E402


def timed_reads(path: Path, reads: int, forget: bool) -> list[float]:
    checksums._digest_of.cache_clear()
    seconds = []
    for _ in range(reads):
        if forget:  # what every read cost before the memo
            checksums._digest_of.cache_clear()
        start = time.perf_counter()
        load_weights(path)
        seconds.append(time.perf_counter() - start)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100, help="file size in MB")
    parser.add_argument("--reads", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = save_weights(Path(folder) / "w.safetensors", {"w": torch.randn(args.mb * 2**20 // 4)}, {"bench": True})
        load_weights(path)  # page cache warm for both sides
        every = timed_reads(path, args.reads, forget=True)
        once = timed_reads(path, args.reads, forget=False)
    mean = lambda values: sum(values) / len(values) * 1000  # noqa: E731
    print(f"{args.mb} MB file, {args.reads} reads: hashed every read {mean(every):.0f} ms/read; memoised: first read "
          f"{once[0] * 1000:.0f} ms, later reads {mean(once[1:]):.0f} ms/read ({mean(every) / mean(once[1:]):.1f}x faster); "
          f"{args.reads} reads in all {sum(every):.2f} s vs {sum(once):.2f} s")

if __name__ == "__main__":
    main()
