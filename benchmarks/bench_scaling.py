"""How every cost grows with the number of tasks T (8, 14, 20: the field's three benchmarks).

    .venv/bin/python benchmarks/bench_scaling.py                       # TinyCLIP + ViT-B-32 steps, TinyCLIP suite
    .venv/bin/python benchmarks/bench_scaling.py --models TinyCLIP --n 32 --parts steps,cache

Measured side by side in one run, each printed with its ratio to T = 8:
- steps: one tau-Jp-efficient and one tau-Jp-strict optimiser step (linear mode) with T penalty
  tasks (T - 1 others + the control), drawn by the training loop's own PenaltySource from T
  synthetic datasets; the two kinds and the three T are interleaved so load from other processes
  hits them alike. A strict step stacks the inputs of every penalty task into the same JVP as the
  training batch, so the frozen model's primal pass is shared; its cost grows with the number of
  penalty inputs (batch + T x penalty batch).
- cache: building the whole tangent matrix (f(x; theta_0) and every J(x) tau_t on the Val and
  test parts of the T tasks and the control; what the tau-Jp matrix and the pairs need) and its
  size, against the tangents single-task, addition and negation alone need (each task's own, the
  sum's, each on the control), which is what the cache builds for them on demand.
- suite: the whole evaluation suite (single task, addition sweep, negation of every task, all
  pairs, the tau-Jp matrix, one disentanglement grid) of a linear run with the tangent cache
  (each evaluation builds the tangents it reads, counted in its time) and of a standard run
  (in-memory weight edits, a forward pass per edit and dataset).
TinyCLIP and ViT-B-32 have random weights; tasks are toy tensor tasks (tests/toyruns.py).
Targets: efficient step <= 1.05x from T = 8 to 20; cached suite without pairs <= 1.1x linear growth in T.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

TS = (8, 14, 20)
# Paper proportions (batch 128, 16 penalty inputs a task); ViT-B-32 on CPU at 1/16 of that.
DEFAULT_BATCH = {"TinyCLIP": 128, "ViT-B-32": 8}
DEFAULT_PENALTY_BATCH = {"TinyCLIP": 16, "ViT-B-32": 1}
SUITE_STEPS = ("single_task", "addition", "negation", "pairs", "tau_jp", "disentanglement")


def step_worker(model: str, batch: int, penalty_batch: int, repeats: int, device_name: str, threads: int) -> dict:
    """Median step time of tau-Jp efficient and strict for each T, in one process and one model."""
    import torch
    import torch.nn.functional as F
    from torch.utils.data import TensorDataset

    if threads:
        torch.set_num_threads(threads)
    from task_arithmetic.models.encoder import build_encoder
    from task_arithmetic.models.factory import ModelSpec
    from task_arithmetic.models.heads import ClassificationHead
    from task_arithmetic.models.linearize import LinearizedModel
    from task_arithmetic.recipes.base import PenaltyInputs
    from task_arithmetic.recipes.tau_jp import PenaltySource, TauJpPenalty
    from task_arithmetic.training.model import Trainee
    from task_arithmetic.training.step import accumulate_gradients

    device = torch.device(device_name)
    torch.manual_seed(0)
    encoder = build_encoder(ModelSpec(model), device)
    size = encoder.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    embed = encoder(torch.zeros(1, 3, size, size, device=device)).shape[-1]
    head = ClassificationHead(F.normalize(torch.randn(10, embed), dim=-1) * 100).to(device)
    linear = LinearizedModel(encoder.visual)
    with torch.no_grad():  # theta != theta_0, as during training
        for p in encoder.visual.parameters():
            p.add_(1e-3 * torch.randn_like(p))
    trainee = Trainee(encoder, head, True, linear)
    params = trainee.parameters()
    optimizer = torch.optim.AdamW(params, lr=1e-5, weight_decay=0.1)
    images = torch.randn(batch, 3, size, size, device=device)
    labels = torch.randint(0, 10, (batch,), device=device)
    # Penalty data on the host, as a data loader serves it; 4 draws' worth per task.
    pool = [TensorDataset(torch.randn(4 * penalty_batch, 3, size, size), torch.zeros(4 * penalty_batch)) for _ in range(max(TS))]
    sources = {
        (variant, t): PenaltySource.create(variant, pool[:t], penalty_batch, seed=0, start_step=0, rank=0, world=1, num_workers=0)
        for variant in ("efficient", "strict")
        for t in TS
    }
    counters = dict.fromkeys(sources, 0)

    def step(key) -> None:
        pen, count = sources[key].inputs_for_step(counters[key])
        counters[key] += 1
        accumulate_gradients(trainee, images, labels, micro_batch=batch, global_count=batch, world=1,
                             penalty=TauJpPenalty(0.1, sources[key]), penalty_inputs=PenaltyInputs(pen.to(device), count))
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()

    for key in sources:  # warm-up: kernels, allocator, Adam state, each shape once
        step(key)
    times: dict = {key: [] for key in sources}
    for _ in range(repeats):
        for key in sources:
            start = time.perf_counter()
            step(key)
            times[key].append(time.perf_counter() - start)
    return {
        "model": model, "batch": batch, "penalty_batch": penalty_batch, "device": str(device), "threads": torch.get_num_threads(),
        "time": {f"{variant}/{t}": statistics.median(times[(variant, t)]) for variant, t in sources},
    }


def _tensor_bytes(cache) -> int:
    tensors = [cache.features0, cache.labels, *cache.tangents.values()]
    return sum(t.numel() * t.element_size() for t in tensors)


def eval_worker(n: int, grid_points: int, batch_size: int, threads: int, parts: set[str]) -> dict:
    """Tangent-cache build and whole-suite times for each T (toy tasks, TinyCLIP random weights)."""
    import torch

    torch.set_num_threads(threads)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the toy world is a test fixture
    from toyruns import build_toy_world

    from task_arithmetic.data import registry
    from task_arithmetic.evaluation.addition import evaluate_addition
    from task_arithmetic.evaluation.disentanglement import GRID_LIMIT, evaluate_disentanglement
    from task_arithmetic.evaluation.negation import evaluate_negation
    from task_arithmetic.evaluation.pairs import evaluate_pairs
    from task_arithmetic.evaluation.selection import symmetric_grid
    from task_arithmetic.evaluation.session import EvalOptions, EvalSession, RunSelection
    from task_arithmetic.evaluation.single_task import evaluate_single_task
    from task_arithmetic.evaluation.tau_jp import evaluate_tau_jp
    from task_arithmetic.recipes import EvaluatedRun

    registry._BENCHMARK_LOADERS.clear()  # only the toy tasks: no dataset generation
    out: dict = {}
    for t in TS:
        root = Path(tempfile.mkdtemp(prefix=f"bench_scaling_{t}_"))
        world = build_toy_world(root, n_tasks=t, n_val=n, n_test=n, recipes=(("standard", "none"), ("linear", "none")), prefix=f"Scale{t}T")
        datasets = [*world.tasks, world.control]

        def session_for(mode: str, use_cache: bool) -> EvalSession:
            selection = RunSelection(world.spec, world.layout, world.data_location, EvaluatedRun.parse(mode), world.tasks)
            return EvalSession(selection, EvalOptions(device="cpu", batch_size=batch_size, use_cache=use_cache, disk_cache=False))

        entry: dict = {}
        if "cache" in parts:
            session = session_for("linear", True)
            start = time.perf_counter()
            for split in ("val", "test"):
                session.cached.prefetch_tangents(world.tasks, datasets, split)
            entry["cache_build"] = time.perf_counter() - start
            entry["cache_mb"] = sum(_tensor_bytes(c) for c in session.cached.store._memory.values()) / 2**20
            session = session_for("linear", True)  # what single-task, addition and negation build on demand
            start = time.perf_counter()
            evaluate_single_task(session)
            evaluate_addition(session)
            evaluate_negation(session, world.control)
            entry["linear_build"] = time.perf_counter() - start
            entry["linear_mb"] = sum(_tensor_bytes(c) for c in session.cached.store._memory.values()) / 2**20
        if "suite" in parts:
            for label, mode, use_cache in (("cached", "linear", True), ("standard", "standard", False)):
                session = session_for(mode, use_cache)
                steps = {
                    "single_task": lambda: evaluate_single_task(session),
                    "addition": lambda: evaluate_addition(session),
                    "negation": lambda: evaluate_negation(session, world.control),
                    "pairs": lambda: evaluate_pairs(session),
                    "tau_jp": lambda: evaluate_tau_jp(session, datasets),
                    "disentanglement": lambda: evaluate_disentanglement(session, [world.tasks[:2]], symmetric_grid(GRID_LIMIT, grid_points)),
                }
                timings = {}
                for name, run in steps.items():
                    start = time.perf_counter()
                    run()
                    timings[name] = time.perf_counter() - start
                entry[label] = timings
        out[str(t)] = entry
    return out


def _row(label: str, values: list[float], fmt: str = "{:9.3f}", reference: list[float] | None = None) -> str:
    cells = "".join(fmt.format(v) for v in values)
    ratios = "".join(f"{v / values[0]:8.2f}x" for v in values[1:])
    ref = "" if reference is None else "   (" + ", ".join(f"{r:.2f}x" for r in reference) + ")"
    return f"{label:<28}{cells}{ratios}{ref}"


def _header(unit: str) -> str:
    return f"{'':<28}" + "".join(f"{'T=' + str(t) + ' ' + unit:>9}" for t in TS) + "".join(f"{str(t) + '/8':>9}" for t in TS[1:])


LINEAR = [t / TS[0] for t in TS[1:]]
# What strict's penalty inputs alone would predict: (batch + T * penalty batch) / (batch + 8 * penalty batch)


def print_steps(result: dict) -> None:
    t = result["time"]
    b, pb = result["batch"], result["penalty_batch"]
    inputs = [(b + k * pb) / (b + TS[0] * pb) for k in TS[1:]]
    print(f"\n{result['model']} step (linear mode), batch {b}, {pb} penalty inputs per task, {result['device']} {result['threads']} thread(s)")
    print(_header("s"))
    efficient = [t[f"efficient/{k}"] for k in TS]
    strict = [t[f"strict/{k}"] for k in TS]
    print(_row("tau-Jp efficient", efficient))
    print(_row("tau-Jp strict", strict, reference=inputs) + "  <- inputs ratio")
    print(_row("strict / efficient", [s / e for s, e in zip(strict, efficient)], fmt="{:8.2f}x"))
    ratio = efficient[-1] / efficient[0]
    print(f"target efficient step <= 1.05x from T=8 to 20: {ratio:.2f}x -> {'met' if ratio <= 1.05 else 'NOT met'}")


def print_eval(result: dict, n: int, grid_points: int) -> None:
    print(f"\nTinyCLIP evaluation, toy tasks with {n} Val + {n} test examples each, {grid_points}x{grid_points} disentanglement grid")
    if "cache_build" in result[str(TS[0])]:
        quadratic = [(t + 1) ** 2 / (TS[0] + 1) ** 2 for t in TS[1:]]
        print(_header("s"))
        print(_row("whole tangent matrix build", [result[str(t)]["cache_build"] for t in TS], reference=quadratic) + "  <- (T+1)^2")
        print(_row("single+addition+negation", [result[str(t)]["linear_build"] for t in TS], reference=LINEAR) + "  <- T (build included)")
        print(_header("MB"))
        print(_row("whole tangent matrix size", [result[str(t)]["cache_mb"] for t in TS], fmt="{:9.2f}", reference=quadratic) + "  <- (T+1)^2")
        print(_row("their tangents' size", [result[str(t)]["linear_mb"] for t in TS], fmt="{:9.2f}", reference=LINEAR) + "  <- T")
    if "cached" not in result[str(TS[0])]:
        return
    pairs = [t * (t - 1) / 2 / 28 for t in TS[1:]]
    for label in ("cached", "standard"):
        print(f"\nwhole suite, {label}" + (" (linear run, tangent cache, build included)" if label == "cached" else " (standard run, weight edits)"))
        print(_header("s"))
        for name in SUITE_STEPS:
            reference = pairs if name == "pairs" else LINEAR
            print(_row(name, [result[str(t)][label][name] for t in TS], reference=reference))
        totals = [sum(result[str(t)][label].values()) for t in TS]
        print(_row("whole suite", totals, reference=LINEAR))
        without = [sum(v for k, v in result[str(t)][label].items() if k != "pairs") for t in TS]
        print(_row("whole suite without pairs", without, reference=LINEAR))
        linear_part = [sum(v for k, v in result[str(t)][label].items() if k not in ("pairs", "tau_jp")) for t in TS]
        print(_row("without pairs and tau-Jp", linear_part, reference=LINEAR))
        if label == "cached":
            worst = max(w / without[0] / lin for w, lin in zip(without[1:], LINEAR))
            print(f"target cached suite without pairs <= 1.1x linear growth in T: worst ratio / (T/8) = {worst:.2f} -> {'met' if worst <= 1.1 else 'NOT met'}")
            worst = max(w / linear_part[0] / lin for w, lin in zip(linear_part[1:], LINEAR))
            print(f"  without pairs and the tau-Jp matrix (T x (T+1) JVPs by definition): worst ratio / (T/8) = {worst:.2f} -> {'met' if worst <= 1.1 else 'NOT met'}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="TinyCLIP,ViT-B-32", help="models for the step timings")
    p.add_argument("--parts", default="steps,cache,suite", help="any of steps, cache, suite")
    p.add_argument("--repeats", type=int, default=3, help="timed steps per (kind, T); the median is reported")
    p.add_argument("--n", type=int, default=32, help="examples in each toy task's Val part and test set")
    p.add_argument("--grid-points", type=int, default=11)
    p.add_argument("--batch-size", type=int, default=64, help="evaluation batch")
    p.add_argument("--device", default="cpu", help="for the step timings")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads; 1 keeps ratios steady on a shared machine")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    parts = {part.strip() for part in args.parts.split(",") if part.strip()}
    if args.worker == "eval":
        print(json.dumps(eval_worker(args.n, args.grid_points, args.batch_size, args.threads, parts)))
        return
    if args.worker:
        batch, pen = DEFAULT_BATCH.get(args.worker, 16), DEFAULT_PENALTY_BATCH.get(args.worker, 2)
        print(json.dumps(step_worker(args.worker, batch, pen, args.repeats, args.device, args.threads)))
        return
    started = time.perf_counter()
    common = ["--threads", str(args.threads), "--repeats", str(args.repeats), "--device", args.device]
    jobs = [[m, ["--worker", m, *common]] for m in args.models.split(",")] if "steps" in parts else []
    if parts & {"cache", "suite"}:
        jobs.append(["eval", ["--worker", "eval", "--parts", args.parts, "--n", str(args.n), "--grid-points", str(args.grid_points),
                              "--batch-size", str(args.batch_size), *common]])
    for name, extra in jobs:  # each in its own process: one model's memory never slows another's timings
        out = subprocess.run([sys.executable, __file__, *extra], capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"{name} failed:\n{out.stderr[-3000:]}")
        result = json.loads(out.stdout.strip().splitlines()[-1])
        if name == "eval":
            print_eval(result, args.n, args.grid_points)
        else:
            print_steps(result)
    print("\nratios in parentheses: what a cost linear in T (pairs: in T(T-1)/2; strict: in its penalty inputs) would give")
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
