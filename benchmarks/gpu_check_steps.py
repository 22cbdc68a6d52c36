"""The GPU check's measuring steps: environment, CUDA tests, train-step benchmarks, evaluation.

Each step takes the check's Context and fills one StepRecord; heavy work runs in subprocesses
(their own CUDA context and peak-memory counters, and a timeout) or in this process for the
evaluation sweep. Sizes come from Context.sizes: the GPU sizes, or toy ones for --quick.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from gpu_check_report import StepRecord

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Sizes:
    """Everything the check's steps size by; GPU (full) or --quick (toy, runs on a CPU)."""

    base_model: str  # train-step benchmark, "ViT-B-32" at batch 128
    base_batch: int
    base_penalty: int
    large_model: str  # "ViT-L-14" at the paper's micro-batch
    large_batch: int
    large_micro: int
    large_penalty: int
    repeats: int
    eval_model: str
    eval_tasks: int
    eval_val: int
    eval_test: int
    image_size: int  # fake JPEGs for the loading and DDP steps
    per_class: int
    loader_batch: int
    ddp_model: str
    ddp_batch: int
    ddp_steps: int
    ddp_stop_after: int


FULL = Sizes(
    base_model="ViT-B-32", base_batch=128, base_penalty=16,
    # The reference code fine-tunes ViT-L-14 in micro-batches of 64, accumulated to 128;
    # the penalty batch is 4 per task for ViT-L (protocol.md).
    large_model="ViT-L-14", large_batch=128, large_micro=64, large_penalty=4, repeats=5,
    eval_model="ViT-B-32", eval_tasks=8, eval_val=100, eval_test=200,
    image_size=224, per_class=700, loader_batch=128,
    ddp_model="ViT-B-32", ddp_batch=32, ddp_steps=200, ddp_stop_after=20,
)
QUICK = Sizes(
    base_model="TinyCLIP", base_batch=16, base_penalty=2,
    large_model="TinyCLIP", large_batch=16, large_micro=8, large_penalty=1, repeats=1,
    eval_model="TinyCLIP", eval_tasks=3, eval_val=8, eval_test=16,
    image_size=224, per_class=12, loader_batch=8,
    ddp_model="TinyCLIP", ddp_batch=8, ddp_steps=16, ddp_stop_after=3,
)


def python_env(ctx, **extra: str) -> dict[str, str]:
    """The environment of a child process: this one's (carried wheels on PYTHONPATH), src first."""
    path = os.pathsep.join(p for p in (str(REPO / "src"), os.environ.get("PYTHONPATH", "")) if p)
    # The CPU dry run shares its cores with other work: one thread each avoids OpenMP spinning
    # against descheduled threads, which made a toy step 100x slower on a loaded 2-core machine.
    threads = {"OMP_NUM_THREADS": "1"} if ctx.device == "cpu" else {}
    return {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1", "WANDB_MODE": "disabled", "HF_HUB_OFFLINE": "1", **threads, **extra}


def run_logged(ctx, command: list[str], timeout: float, **extra_env: str) -> subprocess.CompletedProcess:
    """Run a child with its output kept in the check's log folder; raise with its tail on failure."""
    started = time.perf_counter()
    out = subprocess.run(command, cwd=REPO, env=python_env(ctx, **extra_env), capture_output=True, text=True, timeout=timeout)
    ctx.log(f"$ {' '.join(command)}  (rc {out.returncode}, {time.perf_counter() - started:.0f} s)\n{out.stdout}{out.stderr}")
    if out.returncode != 0:
        tail = (out.stderr or out.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"{Path(command[1]).name if len(command) > 1 else command[0]} exited {out.returncode}: {tail[0][:300]}")
    return out


# --- 1. environment -------------------------------------------------------------------------


def step_env(ctx, record: StepRecord) -> None:
    import torch

    record.add("python", platform.python_version())
    record.add("torch", torch.__version__)
    record.add("torch CUDA build", torch.version.cuda or "none")
    record.add("cuDNN", torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else "none")
    try:
        import open_clip

        record.add("open_clip", getattr(open_clip, "__version__", "?"), note=str(Path(open_clip.__file__).parent.parent))
    except ImportError as err:
        raise RuntimeError(f"open_clip is not importable ({err}); carry the wheels: bash benchmarks/gpu_wheels.sh") from err
    record.add("CPU cores", len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    if ctx.device == "cuda":
        props = torch.cuda.get_device_properties(0)
        record.add("GPU", props.name)
        record.add("GPU memory", round(props.total_memory / 2**30, 1), "GiB")
        record.add("compute capability", f"{props.major}.{props.minor}")
        record.add("GPUs visible", torch.cuda.device_count())
        record.add("bf16 supported", torch.cuda.is_bf16_supported())
        try:  # a tuple in recent torch, an int in older ones
            nccl = torch.cuda.nccl.version()
            record.add("NCCL", ".".join(map(str, nccl)) if isinstance(nccl, tuple) else str(nccl))
        except (AttributeError, RuntimeError) as err:
            record.add("NCCL", f"unknown ({err})")


# --- 2. CUDA tests --------------------------------------------------------------------------


def step_tests(ctx, record: StepRecord) -> None:
    junit = Path(tempfile.mkdtemp(prefix="gpu_check_tests_")) / "junit.xml"
    # Only the files that hold CUDA tests: collecting the whole suite would import modules whose
    # optional packages the GPU machine may lack, and a collection error there is not a CUDA result.
    files = sorted(str(f.relative_to(REPO)) for f in (REPO / "tests").glob("test_*.py") if "pytest.mark.cuda" in f.read_text())
    command = [sys.executable, "-m", "pytest", "-q", "-rA", "-m", "cuda", "-p", "no:cacheprovider", f"--junitxml={junit}", *files]
    extra = {"TA_TEST_DEVICE": "cpu"} if ctx.device == "cpu" else {}
    started = time.perf_counter()
    out = subprocess.run(command, cwd=REPO, env=python_env(ctx, **extra), capture_output=True, text=True, timeout=ctx.timeout(240))
    ctx.log(f"$ {' '.join(command)}  (rc {out.returncode}, {time.perf_counter() - started:.0f} s)\n{out.stdout}{out.stderr}")
    if not junit.is_file():
        raise RuntimeError(f"pytest wrote no report (rc {out.returncode}): {(out.stdout + out.stderr).strip().splitlines()[-1:]}")
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    for case in ET.parse(junit).getroot().iter("testcase"):
        outcome = "failed" if case.find("failure") is not None or case.find("error") is not None else "skipped" if case.find("skipped") is not None else "passed"
        counts[outcome] += 1
        props = ", ".join(f"{p.get('name')} {p.get('value')}" for p in case.iter("property"))
        record.add(case.get("name", "?"), outcome, note=props)
    for outcome, n in counts.items():
        record.add(f"tests {outcome}", n)
    if counts["failed"] or out.returncode not in (0, 5):  # 5: nothing collected
        raise RuntimeError(f"{counts['failed']} CUDA test(s) failed (pytest rc {out.returncode}); see the log")
    if ctx.device == "cuda" and counts["skipped"]:
        raise RuntimeError(f"{counts['skipped']} CUDA test(s) skipped on a GPU machine")


# --- 3./4. train-step benchmarks ------------------------------------------------------------


def _train_bench(ctx, record: StepRecord, model: str, batch: int, penalty: int, micro: int | None, timeout: float,
                 autocast: str = "bf16", checkpointing: bool = False, kinds: tuple[str, ...] | None = None) -> dict:
    from bench_train_step import STEP_KINDS, targets

    out_json = Path(tempfile.mkdtemp(prefix="gpu_check_train_")) / "result.json"
    command = [sys.executable, str(REPO / "benchmarks/bench_train_step.py"), "--models", model, "--batch", str(batch),
               "--penalty-batch", str(penalty), "--penalty-tasks", "8", "--device", ctx.device, "--autocast", autocast,
               "--repeats", str(ctx.sizes.repeats), "--json", str(out_json), "--kinds", ",".join(kinds or STEP_KINDS)]
    if micro:
        command += ["--micro-batch", str(micro)]
    if checkpointing:
        command += ["--grad-checkpointing"]
    run_logged(ctx, command, timeout)
    result = json.loads(out_json.read_text())[0]
    extra = ", activation checkpointing" if checkpointing else ""
    record.add("setting" + (" (checkpointing)" if checkpointing else ""),
               f"{model} random weights, batch {batch}, micro-batch {result['micro_batch']}, precision {autocast.replace('none', 'fp32')}{extra}, "
               f"penalty {penalty} x 8 tasks (strict), JVP {result['jvp']}")
    by_mode = result.get("by_autocast", {result["autocast"]: result})
    for mode, figures in by_mode.items():
        t, peak = figures["time"], figures["peak_mb"]
        label = ("fp32" if mode == "none" else mode) + (" checkpointing" if checkpointing else "")
        for kind in t:
            rel = f"{t[kind] / t['standard']:.2f}x standard" if "standard" in t else ""
            record.add(f"{kind} step, {label}", round(t[kind] * 1000, 1), "ms", rel)
            record.add(f"{kind} images/s, {label}", round(batch / t[kind], 1), "images/s")
            if peak.get(kind) is not None:
                record.add(f"{kind} peak memory, {label}", round(peak[kind]), "MB", "above weights + Adam state")
        for name, ratio, target in targets({"time": t}):
            record.add(f"target {name} <= {target}, {label}", round(ratio, 2), "x", "met" if ratio <= target else "NOT met")
    if "none" in by_mode and "bf16" in by_mode:
        for kind in by_mode["bf16"]["time"]:
            record.add(f"{kind}: bf16 speed-up over fp32", round(by_mode["none"]["time"][kind] / by_mode["bf16"]["time"][kind], 2), "x",
                       "same process, interleaved")
    fastest = by_mode["bf16"] if "bf16" in by_mode else next(iter(by_mode.values()))
    label = f"{model} batch {batch}" + (f" (micro-batch {micro})" if micro else "") + extra
    ctx.train_rate[label] = {kind: batch / v for kind, v in fastest["time"].items()}
    if not checkpointing and {"standard", "linear"} <= set(fastest["time"]):
        # the dry run's images/s table (pipeline/calibration.py): plain and linearised passes per architecture
        ctx.calibration[model] = {"precision": "bf16" if "bf16" in by_mode else "fp32",
                                  "plain": round(batch / fastest["time"]["standard"], 1), "linearized": round(batch / fastest["time"]["linear"], 1)}
    return result


def step_train_base(ctx, record: StepRecord) -> None:
    """ViT-B-32 in fp32 and bf16, side by side (--precision's two main settings)."""
    s = ctx.sizes
    _train_bench(ctx, record, s.base_model, s.base_batch, s.base_penalty, None, ctx.timeout(180), autocast="none,bf16")


def step_train_large(ctx, record: StepRecord) -> None:
    """ViT-L-14 in micro-batches (bf16), then the whole batch at once with activation checkpointing."""
    s = ctx.sizes
    _train_bench(ctx, record, s.large_model, s.large_batch, s.large_penalty, s.large_micro, ctx.timeout(150))
    _train_bench(ctx, record, s.large_model, s.large_batch, s.large_penalty, None, ctx.timeout(120), checkpointing=True,
                 kinds=("standard", "linear", "tau-Jp efficient"))
    if ctx.device == "cuda":
        import torch

        record.add("GPU memory", round(torch.cuda.get_device_properties(0).total_memory / 2**20), "MB", "the peaks above fit if smaller")


# --- 5. evaluation --------------------------------------------------------------------------


def step_eval(ctx, record: StepRecord) -> None:
    """Tangent-cache build + the full addition sweep (21 alphas) of a linear run, on the device."""
    import torch
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the toy world is a test fixture
    from toyruns import build_toy_world

    from task_arithmetic.data import registry
    from task_arithmetic.evaluation.addition import evaluate_addition
    from task_arithmetic.evaluation.session import EvalOptions, EvalSession, RunSelection
    from task_arithmetic.recipes import EvaluatedRun

    s = ctx.sizes
    saved = dict(registry._BENCHMARK_LOADERS), dict(registry._TASKS)
    registry._BENCHMARK_LOADERS.clear()  # only the toy tasks: no dataset generation
    try:
        started = time.perf_counter()
        world = build_toy_world(ctx.work / "eval", n_tasks=s.eval_tasks, n_val=s.eval_val, n_test=s.eval_test,
                                recipes=(("linear", "none"),), model=s.eval_model, device=ctx.device)
        record.add("world built", round(time.perf_counter() - started, 1), "s", f"{s.eval_model} random theta_0, {s.eval_tasks} fake linear runs")
        selection = RunSelection(world.spec, world.layout, world.data_location, EvaluatedRun.parse("linear"), world.tasks)
        session = EvalSession(selection, EvalOptions(device=ctx.device, batch_size=128, disk_cache=False))
        images = s.eval_tasks * (s.eval_val + s.eval_test)
        if ctx.device == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        result = evaluate_addition(session)  # builds the cache (theta_0 output + every J tau_t), then sweeps
        if ctx.device == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        record.add("cache build + addition sweep", round(seconds, 3), "s",
                   f"{images} images (Val + test of {s.eval_tasks} tasks) x (1 primal + {s.eval_tasks} tangents), 21 alphas")
        record.add("cache build + addition sweep images/s", round(images / seconds, 1), "images/s")
        record.add("tuned alpha", result["tuned"]["alpha"], note="random weights: a plumbing figure, not a result")
    finally:
        registry._BENCHMARK_LOADERS.clear()
        registry._BENCHMARK_LOADERS.update(saved[0])
        registry._TASKS.clear()
        registry._TASKS.update(saved[1])
