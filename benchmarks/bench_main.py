"""The README's main command, timed as a new user meets it: its stage times and its total.

    python benchmarks/bench_main.py [--root DIR] [--pretrained-from DIR] [-- extra run_embedded flags]

Runs `python src/run_embedded.py` as its own process on fresh data, checkpoint and results folders
under --root (a new temporary folder by default, removed afterwards unless --root is given), so
nothing cached in the repository counts: the data are generated, TinyCLIP is pretrained and every
run, evaluation and the report are made, exactly as after `bash setup.sh` in a fresh clone.
--pretrained-from copies an existing `checkpoints/pretrained/` first (the time of a second study,
when the model is cached). Prints the study's own per-step times (pipeline/study.py: each group of
units, summed over the workers that ran side by side, and their wall time) and the process's wall
time from start to exit, import time included.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STEP = re.compile(r"^  (\S.*?)\s+(\d+(?:\.\d+)?) s$")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=None, help="where the study's folders go (kept); default: a temporary folder")
    parser.add_argument("--pretrained-from", type=Path, default=None, help="a checkpoints/pretrained/ folder to start from")
    parser.add_argument("extra", nargs="*", help="flags passed on to src/run_embedded.py (after --)")
    args = parser.parse_args()
    root = args.root or Path(tempfile.mkdtemp(prefix="bench_main_"))
    try:
        if args.pretrained_from is not None:
            shutil.copytree(args.pretrained_from, root / "checkpoints" / "pretrained")
        command = [sys.executable, str(REPO / "src" / "run_embedded.py"), "--data-location", str(root / "data"),
                   "--checkpoint-root", str(root / "checkpoints"), "--results-root", str(root / "results"), "--no-progress", *args.extra]
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        started = time.perf_counter()
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            sys.exit(f"run_embedded.py exited {done.returncode}:\n{done.stderr[-3000:]}")
        lines = done.stdout.splitlines()
        steps = [(m.group(1), float(m.group(2))) for line in lines if (m := STEP.match(line))]
        notices = [line for line in (done.stdout + done.stderr).splitlines() if "pretrain" in line.lower() and " in " in line and "steps" in line]
        print(f"main command ({os.cpu_count()} cores seen, {'cached' if args.pretrained_from else 'fresh'} pretrained model):")
        for name, seconds in steps:
            print(f"  {name:<42s} {seconds:7.1f} s")
        for line in notices[-2:]:
            print(f"  {line.strip()}")
        print(f"  {'process wall time':<42s} {wall:7.1f} s   ({int(wall // 60)} min {wall % 60:.0f} s)")
    finally:
        if args.root is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
