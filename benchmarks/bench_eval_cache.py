"""The linearity shortcut, measured: the full evaluation suite of a linear run, cached vs direct.

Suite: single task, addition sweep (21 alphas), negation of every task, all pairs, the tau-Jp
matrix (tasks + control) and one 21 x 21 disentanglement grid. "direct" runs a JVP pass per
(edit, dataset); "cached" computes f(x; theta_0) and every J(x) tau_t once per example and
derives everything from them (the cache build is included in its time). Both use in-memory
weight edits and memoise repeated (edit, dataset) points, so the ratio is the shortcut alone.

    .venv/bin/python benchmarks/bench_eval_cache.py            # ~2 min on 1 CPU thread
    .venv/bin/python benchmarks/bench_eval_cache.py --n 32     # quicker

TinyCLIP with random weights, toy tensor tasks, fake fine-tuned runs (tests/toyruns.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the toy world is a test fixture

from toyruns import build_toy_world  # noqa: E402

from task_arithmetic.data import registry  # noqa: E402
from task_arithmetic.evaluation.addition import evaluate_addition  # noqa: E402
from task_arithmetic.evaluation.disentanglement import GRID_LIMIT, evaluate_disentanglement  # noqa: E402
from task_arithmetic.evaluation.negation import evaluate_negation  # noqa: E402
from task_arithmetic.evaluation.pairs import evaluate_pairs  # noqa: E402
from task_arithmetic.evaluation.selection import symmetric_grid  # noqa: E402
from task_arithmetic.evaluation.session import EvalOptions, EvalSession, RunSelection  # noqa: E402
from task_arithmetic.evaluation.single_task import evaluate_single_task  # noqa: E402
from task_arithmetic.evaluation.tau_jp import evaluate_tau_jp  # noqa: E402
from task_arithmetic.recipes import EvaluatedRun  # noqa: E402
from task_arithmetic.typed_json import dump  # noqa: E402


def suite(session: EvalSession, world, grid_points: int) -> tuple[dict, dict]:
    timings, results = {}, {}
    steps = {
        "single_task": lambda: evaluate_single_task(session),
        "addition": lambda: evaluate_addition(session),
        "negation": lambda: evaluate_negation(session, world.control),
        "pairs": lambda: evaluate_pairs(session),
        "tau_jp": lambda: evaluate_tau_jp(session, [*world.tasks, world.control]),
        "disentanglement": lambda: evaluate_disentanglement(session, [world.tasks[:2]], symmetric_grid(GRID_LIMIT, grid_points)),
    }
    for name, step in steps.items():
        start = time.perf_counter()
        results[name] = step()
        timings[name] = time.perf_counter() - start
    return timings, results


def compare(a, b, path="", out=None) -> list[str]:
    """Paths where two result trees differ: accuracies exactly, tau-Jp norms to 1e-4 relative."""
    out = [] if out is None else out
    if isinstance(a, dict):
        for k in a:
            compare(a[k], b[k], f"{path}/{k}", out)
    elif isinstance(a, list):
        for i, (x, y) in enumerate(zip(a, b)):
            compare(x, y, f"{path}[{i}]", out)
    elif isinstance(a, float) and isinstance(b, float):
        tolerance = 1e-4 * max(abs(a), 1.0) if "/tau_jp/" in path or path.endswith("loss") or "/loss" in path else 1e-9
        if abs(a - b) > tolerance:
            out.append(f"{path}: {a} vs {b}")
    elif a != b:
        out.append(f"{path}: {a} vs {b}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--n", type=int, default=64, help="examples in each Val part and test set")
    parser.add_argument("--grid-points", type=int, default=21)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    registry._BENCHMARK_LOADERS.clear()  # only the toy tasks: no dataset downloads or generation
    root = Path(tempfile.mkdtemp(prefix="bench_eval_cache_"))
    world = build_toy_world(root, n_tasks=args.tasks, n_val=args.n, n_test=args.n, recipes=(("linear", "none"),))
    selection = RunSelection(world.spec, world.layout, world.data_location, EvaluatedRun.parse("linear"), world.tasks)

    measured: dict = {}
    for label, use_cache in (("direct", False), ("cached", True)):
        session = EvalSession(selection, EvalOptions(device="cpu", batch_size=args.batch_size, use_cache=use_cache, disk_cache=False))
        start, cpu_start = time.perf_counter(), time.process_time()
        timings, results = suite(session, world, args.grid_points)
        measured[label] = {"total": time.perf_counter() - start, "cpu": time.process_time() - cpu_start, "steps": timings, "results": results}
        measured["jvp"] = f"{session.direct.jvp_fn.__module__}.{session.direct.jvp_fn.__name__}"

    direct, cached = measured["direct"], measured["cached"]
    print(f"TinyCLIP (random), {args.tasks} tasks + control, {args.n} Val + {args.n} test examples each, "
          f"{args.grid_points}x{args.grid_points} disentanglement grid, {args.threads} CPU thread(s), JVP: {measured['jvp']}")
    print(f"{'evaluation':<18}{'direct s':>10}{'cached s':>10}{'speed-up':>10}")
    for name in direct["steps"]:
        d, c = direct["steps"][name], cached["steps"][name]
        print(f"{name:<18}{d:>10.2f}{c:>10.2f}{d / c:>9.1f}x")
    print(f"{'whole suite':<18}{direct['total']:>10.2f}{cached['total']:>10.2f}{direct['total'] / cached['total']:>9.1f}x")
    # CPU time is less sensitive than wall time to other jobs on a shared machine
    print(f"{'suite CPU time':<18}{direct['cpu']:>10.2f}{cached['cpu']:>10.2f}{direct['cpu'] / cached['cpu']:>9.1f}x")
    differences = compare(json.loads(json.dumps(dump(direct["results"]))), json.loads(json.dumps(dump(cached["results"]))))
    print(f"result differences (accuracies exact, tau-Jp/loss within 1e-4): {len(differences)}")
    for line in differences[:10]:
        print("  ", line)


if __name__ == "__main__":
    main()
