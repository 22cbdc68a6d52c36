"""One calibration experiment of the embedded world, on the baselines only (issue 14).

    OMP_NUM_THREADS=1 python benchmarks/calibrate_embedded.py --name lr5e-4 --ft-lr 5e-4

Pretrains TinyCLIP with the given recipe (cached per recipe under --root), fine-tunes every
default task in standard and linear mode, evaluates single-task (standard, post-hoc, linear) and
addition (standard, linear), and appends one JSON line of baseline figures to --log. tau-Jp is
deliberately not run: the world is chosen from the baselines alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

from task_arithmetic.data.registry import benchmark_tasks
from task_arithmetic.embedded import presets as preset_module
from task_arithmetic.embedded.presets import PRESETS, get_preset
from task_arithmetic.embedded.weights import register_weight_sources
from task_arithmetic.evaluation.addition import evaluate_addition
from task_arithmetic.evaluation.session import EvalOptions, EvalSession, RunSelection
from task_arithmetic.evaluation.single_task import evaluate_single_task
from task_arithmetic.models.factory import ModelSpec
from task_arithmetic.models.pretrained import zeroshot_encoder
from task_arithmetic.paths import DEFAULT_DATA_LOCATION, Layout
from task_arithmetic.plugins import register_builtin_plugins
from task_arithmetic.recipes import EvaluatedRun
from task_arithmetic.training.config import FinetuneConfig
from task_arithmetic.training.loop import run_finetune
from task_arithmetic.typed_json import dump
from task_arithmetic.vectors.task_vector import TaskVector


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True)
    parser.add_argument("--root", type=Path, default=Path("calibration"))
    parser.add_argument("--log", type=Path, default=Path("benchmarks/results/embedded-calibration.jsonl"))
    parser.add_argument("--corpus-size", type=int)
    parser.add_argument("--pretrain-steps", type=int)
    parser.add_argument("--pretrain-lr", type=float)
    parser.add_argument("--pretrain-batch", type=int)
    parser.add_argument("--ft-lr", type=float, help="fine-tuning lr for every task (default: the catalog's)")
    parser.add_argument("--epoch-scale", type=float, default=1.0, help="multiply every task's default epochs")
    parser.add_argument("--task-epochs", default="", help="per-task epochs before scaling, e.g. HouseNumbers=7,Textures=8")
    parser.add_argument("--seed", type=int, default=0, help="fine-tuning seed")
    parser.add_argument("--modes", default="standard,linear", help="fine-tuning modes to run (standard alone also evaluates post-hoc)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    register_builtin_plugins()

    base = get_preset("default")
    overrides = {
        k: v
        for k, v in (("corpus_size", args.corpus_size), ("steps", args.pretrain_steps), ("lr", args.pretrain_lr), ("batch_size", args.pretrain_batch))
        if v is not None
    }
    pretrain = dataclasses.replace(base.pretrain, **overrides)
    preset = base if pretrain == base.pretrain else dataclasses.replace(base, name=f"cal-{pretrain.digest()}", weight_tag=f"cal-{pretrain.digest()}", pretrain=pretrain)
    PRESETS[preset.name] = preset
    register_weight_sources()
    assert preset_module.preset_for_tag(preset.weight_tag) is preset

    root = args.root
    ckpt, results = root / "checkpoints", root / "results" / args.name
    spec = ModelSpec("TinyCLIP", preset.weight_tag, cache_dir=str(ckpt / "pretrained"))
    layout = Layout(ckpt, results)
    tasks = list(benchmark_tasks("embedded"))
    seconds: dict[str, float] = {}

    start = time.perf_counter()
    zeroshot_encoder(spec, layout, "cpu")
    seconds["pretrain"] = time.perf_counter() - start

    from task_arithmetic.data.registry import get_task

    tag = args.name.replace("-", "_")
    task_epochs = {k: int(v) for k, v in (item.split("=") for item in args.task_epochs.split(",") if item)}
    start = time.perf_counter()
    modes = args.modes.split(",")
    for mode in modes:
        for task in tasks:
            epochs = max(1, round(task_epochs.get(task, get_task(task).defaults["epochs"]) * args.epoch_scale))
            cfg = FinetuneConfig(
                task=task, model="TinyCLIP", pretrained=preset.weight_tag, cache_dir=spec.cache_dir, mode=mode, lr=args.ft_lr,
                epochs=epochs, seed=args.seed, device="cpu", data_location=str(DEFAULT_DATA_LOCATION),
                checkpoint_root=str(ckpt), results_root=str(results), progress=False, tag=tag,
            )
            run_finetune(cfg)
    seconds["finetune"] = time.perf_counter() - start

    start = time.perf_counter()
    out: dict[str, object] = {"name": args.name, "pretrain": dataclasses.asdict(pretrain), "ft_lr": args.ft_lr, "epoch_scale": args.epoch_scale, "task_epochs": task_epochs, "seed": args.seed}
    zs_path = layout.zeroshot(spec.model_id)
    for mode in [m for m in ("standard", "posthoc", "linear") if m in modes or (m == "posthoc" and "standard" in modes)]:
        recipe = EvaluatedRun.parse(f"{mode}-{tag}" if tag else mode)
        session = EvalSession(RunSelection(spec, layout, DEFAULT_DATA_LOCATION, recipe, tuple(tasks)), EvalOptions(device="cpu"))
        single = dump(evaluate_single_task(session))
        fig: dict[str, object] = {
            "single_test": {t: single["finetuned"][t]["test"]["accuracy"] for t in tasks},
            "single_avg": single["summary"]["finetuned_test_avg"],
            "zeroshot_avg": single["summary"]["zeroshot_test_avg"],
        }
        if mode != "posthoc":
            add = dump(evaluate_addition(session))
            fig.update(
                alpha=add["chosen_alpha"],
                tuned_abs=add["tuned"]["test"]["avg_accuracy"], tuned_norm=add["tuned"]["test"]["avg_normalized"],
                oneshot_abs=add["one_shot"]["test"]["avg_accuracy"], oneshot_norm=add["one_shot"]["test"]["avg_normalized"],
            )
            fig["rel_norm"] = {
                t: TaskVector.from_checkpoints(pretrained=zs_path, finetuned=layout.finetuned(spec.model_id, t, recipe.source_run)).norm() / _norm(zs_path)
                for t in tasks
            }
        out[mode] = fig
    seconds["evaluate"] = time.perf_counter() - start
    out["seconds"] = {k: round(v, 1) for k, v in seconds.items()}
    args.log.parent.mkdir(parents=True, exist_ok=True)
    with args.log.open("a") as f:
        f.write(json.dumps(out) + "\n")
    print(summary_line(out))


def _norm(path: Path) -> float:
    from task_arithmetic.io import load_weights

    weights, _ = load_weights(path, "cpu")
    return float(torch.sqrt(sum((v.float() ** 2).sum() for v in weights.values() if v.is_floating_point())))


def summary_line(r: dict) -> str:
    pct = lambda x: f"{100 * x:.1f}"  # noqa: E731
    norms = lambda f: f"{pct(min(f['rel_norm'].values()))}-{pct(max(f['rel_norm'].values()))}"  # noqa: E731
    parts = [r["name"]]
    for mode in ("standard", "linear"):
        if mode in r:
            f = r[mode]
            parts.append(
                f"{mode}: zs {pct(f['zeroshot_avg'])} single {pct(f['single_avg'])} (min {pct(min(f['single_test'].values()))}) "
                f"tuned abs/norm {pct(f['tuned_abs'])}/{pct(f['tuned_norm'])} (a {f['alpha']}) one-shot {pct(f['oneshot_abs'])}/{pct(f['oneshot_norm'])} |τ|/|θ0| {norms(f)}"
            )
    if "posthoc" in r:
        parts.append(f"posthoc single {pct(r['posthoc']['single_avg'])}")
    return " | ".join(parts + [str(r["seconds"])])


if __name__ == "__main__":
    main()
