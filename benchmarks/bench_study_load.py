"""The study under load: one process with every core's threads (--jobs 1) against single-threaded
worker processes (--jobs auto), on a quiet machine and beside one busy-looping process.

    .venv/bin/python benchmarks/bench_study_load.py                   # smoke preset, 4 conditions
    .venv/bin/python benchmarks/bench_study_load.py --preset default --conditions quiet

Each condition runs `src/run_embedded.py` from scratch in its own folders (the pretrained
TinyCLIP and the generated data are made once, before any timing, and shared), so the times are
the fine-tuning runs, evaluations and report alone. The ratio to read is each condition's wall
time against the quiet --jobs 1 run, measured in the same invocation.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def study(preset: str, root: Path, data: Path, jobs: str, timeout: float) -> float | None:
    cmd = [sys.executable, "src/run_embedded.py", "--preset", preset, "--jobs", jobs, "--no-progress", "--device", "cpu",
           "--data-location", str(data), "--checkpoint-root", str(root / "ck"), "--results-root", str(root / "res")]
    start = time.perf_counter()
    try:
        done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="smoke")
    p.add_argument("--conditions", default="quiet,busy", help="quiet, busy (one busy-looping process beside the study), or both")
    p.add_argument("--jobs", default="1,auto", help="the --jobs values to compare")
    p.add_argument("--timeout", type=float, default=1800, help="seconds before a condition is reported as not finished")
    args = p.parse_args()
    from task_arithmetic.pipeline.parallel import auto_jobs, usable_cores

    work = Path(tempfile.mkdtemp(prefix="bench_study_load_"))
    data, shared = work / "data", work / "shared"
    # Pretraining and data generation happen here, untimed (a one-recipe study of the same preset):
    # each condition then starts from the pretrained weights and the generated data.
    warm = [sys.executable, "src/run_embedded.py", "--preset", args.preset, "--recipes", "standard", "--evaluations", "single_task",
            "--jobs", "1", "--no-progress", "--device", "cpu", "--data-location", str(data), "--checkpoint-root", str(work / "warm"),
            "--results-root", str(work / "warm-results")]
    subprocess.run(warm, cwd=REPO, check=True, capture_output=True)
    shutil.copytree(work / "warm" / "pretrained", shared / "pretrained")
    cores = usable_cores()
    print(f"{args.preset} study, {cores} usable cores; --jobs auto = {auto_jobs('cpu')} single-threaded process(es)")
    print(f"{'condition':<12}{'--jobs':>8}{'wall s':>10}{'vs quiet --jobs 1':>20}")
    reference = None
    for condition in args.conditions.split(","):
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if condition == "busy" else None
        try:
            for jobs in args.jobs.split(","):
                root = work / f"{condition}-{jobs}"
                shutil.copytree(shared, root / "ck")
                seconds = study(args.preset, root, data, jobs, args.timeout)
                if condition == "quiet" and jobs == "1":
                    reference = seconds
                shown = "not done" if seconds is None else f"{seconds:.1f}"
                ratio = "" if seconds is None or reference is None else f"{seconds / reference:.2f}x"
                print(f"{condition:<12}{jobs:>8}{shown:>10}{ratio:>20}", flush=True)
                shutil.rmtree(root)
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
