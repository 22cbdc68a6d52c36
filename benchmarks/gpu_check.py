"""The CUDA path, proven in one command: environment, CUDA tests, train-step and evaluation
benchmarks, data loading, and a DDP run stopped by SIGTERM and resumed; every figure goes into
benchmarks/results/gpu-<gpu name>.{md,json}. Run it through benchmarks/gpu_check.sh, which puts
carried wheels on the path first.

    bash benchmarks/gpu_check.sh                                   # on a GPU machine, <= 8 min
    bash benchmarks/gpu_check.sh --device cpu --quick              # every step at toy size, here
    bash benchmarks/gpu_check.sh --steps ddp,data --results-dir "$OUT"

A failing step is recorded (status, message, the log) and the next one runs; the exit code is 1
unless every step passed. --budget stops starting steps once that many seconds have passed.
"""

from __future__ import annotations

import argparse
import datetime
import shlex
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from gpu_check_data import step_data, step_ddp  # noqa: E402
from gpu_check_report import StepRecord, results_name, write  # noqa: E402
from gpu_check_steps import FULL, QUICK, REPO, Sizes, step_env, step_eval, step_tests, step_train_base, step_train_large  # noqa: E402

from task_arithmetic.errors import UserError, cli_entry  # noqa: E402

StepFn = Callable[["Context", StepRecord], None]
# name -> (title, function); in the order they run (the data step compares with the train steps).
STEPS: dict[str, tuple[str, StepFn]] = {
    "env": ("1. environment", step_env),
    "tests": ("2. CUDA tests", step_tests),
    "train-base": ("3. train step, base model, fp32 vs bf16", step_train_base),
    "train-large": ("4. train step, large model, + checkpointing", step_train_large),
    "eval": ("5. evaluation", step_eval),
    "data": ("6. data loading, decode vs cache", step_data),
    "ddp": ("7. DDP resume", step_ddp),
}
DEFAULT_BUDGET_S = 480.0  # the 8 minutes on one GPU
# The CPU dry run: toy sizes, but on a shared 2-core machine importing torch alone can take 20 s.
QUICK_CPU_BUDGET_S, QUICK_CPU_SLACK = 1500.0, 4.0


@dataclass
class Context:
    device: str
    quick: bool
    sizes: Sizes
    work: Path
    log_path: Path
    deadline: float
    slack: float = 1.0  # multiplies every child's time limit
    train_rate: dict[str, dict[str, float]] = field(default_factory=dict)
    calibration: dict[str, dict[str, object]] = field(default_factory=dict)  # model -> images/s of plain and linearised steps

    def log(self, text: str) -> None:
        with self.log_path.open("a") as f:
            f.write(text.rstrip() + "\n")

    def timeout(self, cap: float) -> float:
        """A child's time limit: `cap` seconds, or what is left of the budget if that is less."""
        return max(5.0, min(cap * self.slack, self.deadline - time.monotonic()))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    p.add_argument("--quick", action="store_true", help="toy sizes (TinyCLIP, a few images): checks every step in minutes on a CPU")
    p.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated subset of: {', '.join(STEPS)}")
    p.add_argument("--results-dir", default=str(REPO / "benchmarks/results"), help="where <name>.md, <name>.json and <name>.log go")
    p.add_argument("--budget", type=float, default=None,
                   help=f"seconds after which no further step starts (default {DEFAULT_BUDGET_S:.0f}; {QUICK_CPU_BUDGET_S:.0f} for --device cpu --quick)")
    p.add_argument("--keep-work", action="store_true", help="keep the temporary folder (fake data, runs) for inspection")
    return p.parse_args(argv)


def check_args(args: argparse.Namespace) -> list[str]:
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = [s for s in steps if s not in STEPS]
    if unknown or not steps:
        raise UserError(f"unknown step(s) {', '.join(unknown) or '(none given)'} in --steps; choose from {', '.join(STEPS)}")
    if args.budget is None:
        args.budget = QUICK_CPU_BUDGET_S if args.device == "cpu" else DEFAULT_BUDGET_S
    if args.budget <= 0:
        raise UserError(f"--budget must be a positive number of seconds, got {args.budget:g}")
    if args.device == "cpu" and not args.quick:
        raise UserError("--device cpu runs the GPU sizes (ViT-L-14, batch 128) for hours; add --quick for the toy-size dry run")
    try:
        import torch
    except ImportError:
        raise UserError(f"torch is not importable by {sys.executable}; run with the Python that has it (PYTHON=/path/to/python bash benchmarks/gpu_check.sh)") from None
    if args.device == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"no CUDA GPU is visible (torch {torch.__version__}, CUDA build {torch.version.cuda}); "
                            "run this on a GPU machine, or pass --device cpu --quick for the dry run")
    return steps


def gpu_name(device: str) -> str | None:
    if device != "cuda":
        return None
    import torch

    return torch.cuda.get_device_name(0)


def header(args: argparse.Namespace, argv: list[str], device_name: str | None) -> dict:
    import torch

    from task_arithmetic.runtime import code_revision

    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": "bash benchmarks/gpu_check.sh " + " ".join(shlex.quote(a) for a in argv),
        "device": args.device + (" (quick: toy sizes)" if args.quick else ""),
        "gpu": device_name,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "code_revision": code_revision(),
    }


@cli_entry
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    selected = check_args(args)
    device_name = gpu_name(args.device)
    name = results_name(device_name, args.quick)
    results_dir = Path(args.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    log_path = results_dir / f"{name}.log"
    log_path.write_text("")
    started = time.monotonic()
    slack = QUICK_CPU_SLACK if args.device == "cpu" else 1.0
    ctx = Context(args.device, args.quick, QUICK if args.quick else FULL, work, log_path, started + args.budget, slack)
    head = header(args, argv, device_name)
    records = [StepRecord(step, STEPS[step][0]) for step in selected]
    print(f"GPU check on {device_name or args.device}{' (quick)' if args.quick else ''}: steps {', '.join(selected)}; log {log_path}", flush=True)
    try:
        for record in records:
            if time.monotonic() > ctx.deadline:
                record.status, record.message = "skipped", f"the {args.budget:.0f} s budget was spent"
            else:
                t0 = time.monotonic()
                try:
                    STEPS[record.step][1](ctx, record)
                    record.status = "ok"
                except Exception as err:  # noqa: BLE001 - a failed step is a result; the next one still runs
                    record.status, record.message = "failed", f"{type(err).__name__}: {err}".splitlines()[0][:400]
                    ctx.log(f"--- {record.step} failed ---\n{traceback.format_exc()}")
                record.seconds = time.monotonic() - t0
            print(f"  {record.title}: {record.status} ({record.seconds:.0f} s){' - ' + record.message if record.message else ''}", flush=True)
            head["total_seconds"] = round(time.monotonic() - started)
            head["calibration"] = ctx.calibration  # read by the dry run's cost table (pipeline/calibration.py)
            js, md = write(results_dir, name, head, records)
    finally:
        if not args.keep_work:
            shutil.rmtree(work, ignore_errors=True)
    print(f"results: {md} and {js}")
    return 0 if all(r.status == "ok" for r in records) else 1  # a skipped step proves nothing either


if __name__ == "__main__":
    sys.exit(main())
