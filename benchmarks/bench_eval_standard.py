"""Standard-mode evaluation, measured: the evaluation suite of a standard run, per-edit vs batched.

Suite (as in bench_eval_cache.py): single task, addition sweep (21 alphas), negation of every
task, all pairs, the tau-Jp matrix (tasks + control, served by the tangent cache in both) and one
disentanglement grid. "per-edit" runs one forward pass per (edit, dataset); "batched" groups the
edits a protocol announces, builds each edit's weights once and evaluates several per data pass.
Both memoise repeated (edit, metric) points; only the batched path also memoises predictions.
Per-edit and batched run side by side in one process for each model and thread count, so load
from other processes affects both; the ratio is what to read.

    .venv/bin/python benchmarks/bench_eval_standard.py                 # TinyCLIP and ViT-B-32, 1 and 2 threads
    .venv/bin/python benchmarks/bench_eval_standard.py --models TinyCLIP --threads 1
    .venv/bin/python benchmarks/bench_eval_standard.py --models TinyCLIP --busy   # + one busy process on a core

Random weights, toy tensor tasks, fake fine-tuned runs (tests/toyruns.py).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_eval_cache import compare  # noqa: E402

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

# per model: tasks, examples per Val part and test set, alpha points, disentanglement grid points,
# batch size. ViT-B-32 costs ~240x TinyCLIP per image, so its suite is smaller to fit minutes.
SIZES = {"TinyCLIP": (4, 64, 21, 21, 64), "ViT-B-32": (2, 4, 6, 5, 64)}


def suite(session: EvalSession, world, alpha_points: int, grid_points: int) -> tuple[dict, dict]:
    alphas = tuple(round(i / (alpha_points - 1), 4) for i in range(alpha_points))
    timings, results = {}, {}
    steps = {
        "single_task": lambda: evaluate_single_task(session),
        "addition": lambda: evaluate_addition(session, alphas),
        "negation": lambda: evaluate_negation(session, world.control, alphas),
        "pairs": lambda: evaluate_pairs(session, alphas),
        "tau_jp": lambda: evaluate_tau_jp(session, [*world.tasks, world.control]),
        "disentanglement": lambda: evaluate_disentanglement(session, [world.tasks[:2]], symmetric_grid(GRID_LIMIT, grid_points)),
    }
    for name, step in steps.items():
        start = time.perf_counter()
        results[name] = step()
        timings[name] = time.perf_counter() - start
    return timings, results


def bound(model: str, batch: int, threads: int, repeats: int = 20) -> float:
    """The most any evaluator of the same edits could gain on this CPU: one edit's forward as the
    per-edit path runs it, against the FLOPs the batched path needs per edit (class token only in
    the last block) done at the speed of one large matrix product. Returns that ceiling."""
    from torch.utils.flop_counter import FlopCounterMode

    from task_arithmetic.evaluation.stacked_vit import StackedWeights, stacked_forward
    from task_arithmetic.models.encoder import build_encoder
    from task_arithmetic.models.factory import ModelSpec

    torch.set_num_threads(threads)
    vit = build_encoder(ModelSpec(model)).visual.eval()
    size = vit.image_size[0] if isinstance(vit.image_size, (tuple, list)) else vit.image_size
    images = torch.randn(batch, 3, size, size)
    one_copy = StackedWeights(1, dict(vit.named_parameters()), {})

    def flops(fn) -> int:
        # nn.MultiheadAttention's fused inference path is invisible to the counter: count through
        # its unfused form (same products), time the model as evaluation runs it
        fastpath = torch.backends.mha.get_fastpath_enabled()
        torch.backends.mha.set_fastpath_enabled(False)
        try:
            with FlopCounterMode(display=False) as counter:
                fn()
        finally:
            torch.backends.mha.set_fastpath_enabled(fastpath)
        return counter.get_total_flops()

    def median_seconds(fn) -> float:
        fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return sorted(times)[len(times) // 2]

    with torch.inference_mode():
        full = flops(lambda: vit(images))
        needed = flops(lambda: stacked_forward(vit, one_copy, images))
        forward = median_seconds(lambda: vit(images))
        n = 1024
        a, b = torch.randn(n, n), torch.randn(n, n)
        peak = 2 * n**3 / median_seconds(lambda: a @ b)
    achieved = full / forward
    ceiling = forward / (needed / peak)
    print(f"\n{model}, one edit's forward of {batch} images at {threads} thread(s): {full / 1e9:.2f} GFLOP in {1e3 * forward:.1f} ms "
          f"= {achieved / 1e9:.1f} GFLOP/s; a {n}^3 matrix product runs at {peak / 1e9:.1f} GFLOP/s ({100 * achieved / peak:.0f} % of it reached). "
          f"The batched path needs {needed / full:.2f} of those FLOPs, so no evaluator of these edits gains more than {ceiling:.1f}x "
          f"on the forward passes here")
    return ceiling


def run(model: str, world, threads: int, sizes: tuple[int, int, int, int, int]) -> dict:
    n_tasks, n, alpha_points, grid, batch = sizes
    torch.set_num_threads(threads)
    selection = RunSelection(world.spec, world.layout, world.data_location, EvaluatedRun.parse("standard"), world.tasks)
    measured = {}
    for label, batched in (("per-edit", False), ("batched", True)):
        session = EvalSession(selection, EvalOptions(device="cpu", batch_size=batch, disk_cache=False, batched=batched))
        # the tau-Jp tangent cache is the same in both; build it outside the timing
        session.tangent_norm_mean(world.tasks[0], world.tasks[0], "test")
        start, cpu_start = time.perf_counter(), time.process_time()
        timings, results = suite(session, world, alpha_points, grid)
        measured[label] = {"total": time.perf_counter() - start, "cpu": time.process_time() - cpu_start, "steps": timings, "results": results}
        if session.batched is not None:
            measured["k"] = session.batched.edits_per_pass(batch)
            measured["edits"] = session.batched.edits_evaluated
    per_edit, batched = measured["per-edit"], measured["batched"]
    print(f"\n{model} (random weights), {n_tasks} tasks + control, {n} Val + {n} test examples each, batch {batch}, "
          f"{alpha_points} alphas, {grid}x{grid} disentanglement grid, {threads} CPU thread(s); batched: K = {measured['k']} edits per pass, "
          f"{measured['edits']} distinct (edit, datasets) evaluations")
    print(f"{'evaluation':<18}{'per-edit s':>12}{'batched s':>12}{'speed-up':>10}")
    for name in per_edit["steps"]:
        a, b = per_edit["steps"][name], batched["steps"][name]
        print(f"{name:<18}{a:>12.2f}{b:>12.2f}{a / b:>9.1f}x")
    print(f"{'whole suite':<18}{per_edit['total']:>12.2f}{batched['total']:>12.2f}{per_edit['total'] / batched['total']:>9.1f}x")
    # CPU time is less sensitive than wall time to other jobs on a shared machine
    print(f"{'suite CPU time':<18}{per_edit['cpu']:>12.2f}{batched['cpu']:>12.2f}{per_edit['cpu'] / batched['cpu']:>9.1f}x")
    differences = compare(json.loads(json.dumps(dump(per_edit["results"]))), json.loads(json.dumps(dump(batched["results"]))))
    print(f"result differences (accuracies exact, losses within 1e-4): {len(differences)}")
    for line in differences[:10]:
        print("  ", line)
    return {"speedup": per_edit["total"] / batched["total"], "differences": len(differences)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="TinyCLIP,ViT-B-32")
    parser.add_argument("--threads", default="1,2", help="comma list of thread counts")
    parser.add_argument("--n", type=int, default=None, help="examples per split (default: per model, see SIZES)")
    parser.add_argument("--alphas", type=int, default=None, help="points of the alpha grid 0..1 (default: per model)")
    parser.add_argument("--grid-points", type=int, default=None)
    parser.add_argument("--busy", action="store_true", help="run a busy-looping process beside it (another job on a core)")
    args = parser.parse_args()
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy else None
    try:
        _run_all(args)
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()


def _run_all(args: argparse.Namespace) -> None:
    if args.busy:
        print("with one busy-looping process beside the benchmark")
    root = Path(tempfile.mkdtemp(prefix="bench_eval_standard_"))
    registry._BENCHMARK_LOADERS.clear()  # only the toy tasks: no dataset downloads or generation
    for index, model in enumerate(args.models.split(",")):
        n_tasks, n, alpha_points, grid, batch = SIZES.get(model, SIZES["ViT-B-32"])
        sizes = (n_tasks, args.n or n, args.alphas or alpha_points, args.grid_points or grid, batch)
        world = build_toy_world(root / model, n_tasks=sizes[0], n_val=sizes[1], n_test=sizes[1],
                                recipes=(("standard", "none"),), model=model, prefix=f"Toy{index}_")
        for threads in (int(t) for t in args.threads.split(",")):
            bound(model, sizes[4], threads)
            run(model, world, threads, sizes)
    shutil.rmtree(root)  # ViT-B-32's fake runs take a few GB


if __name__ == "__main__":
    main()
