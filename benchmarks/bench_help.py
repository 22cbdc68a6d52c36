"""--help of every entry script, against the imports it no longer waits for, side by side.

Each script's `--help` runs in a fresh interpreter (as a user types it), `--repeats` times; the
median wall time is printed beside the same interpreter's start-up (`python -c pass`) and its
`import torch` and `import open_clip` times, measured in the same run:

    .venv/bin/python benchmarks/bench_help.py             # 5 repeats
    .venv/bin/python benchmarks/bench_help.py --repeats 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = ("finetune", "evaluate", "run_study", "run_embedded", "merge", "report", "import_checkpoints", "export_checkpoints",
           "prepare_datasets", "download_weights", "pretrain_embedded")


def median_seconds(argv: list[str], repeats: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    python = sys.executable
    rows = [("python -c pass", median_seconds([python, "-c", "pass"], args.repeats)),
            ("python -c 'import torch'", median_seconds([python, "-c", "import torch"], args.repeats)),
            ("python -c 'import open_clip'", median_seconds([python, "-c", "import open_clip"], args.repeats))]
    rows += [(f"src/{s}.py --help", median_seconds([python, f"src/{s}.py", "--help"], args.repeats)) for s in SCRIPTS]
    rows.append(("src/evaluate.py negation --help", median_seconds([python, "src/evaluate.py", "negation", "--help"], args.repeats)))
    torch_s = rows[1][1]
    print(f"{'command':<40s} {'median s':>9s} {'/ import torch':>15s}")
    for name, seconds in rows:
        print(f"{name:<40s} {seconds:9.3f} {seconds / torch_s:15.2f}")


if __name__ == "__main__":
    main()
