"""Peak memory and time of merging 8 ViT-B-32 checkpoints from disk, in multiples of one model's size.

    .venv/bin/python benchmarks/bench_merge_memory.py [--models 8] [--keep DIR]
    .venv/bin/python benchmarks/bench_merge_memory.py --methods all --fusionbench-python /tmp/venv-fb/bin/python

Writes a pre-trained ViT-B-32 image encoder (random init) and N "fine-tuned" copies (plus noise)
in the suite's weight format to a temporary folder, then merges them in fresh subprocesses, one
per strategy, each measuring (peak RSS - peak RSS after its imports) / model size:

  streamed      TaskArithmeticAlgorithm over a file pool: theta_0 + accumulator + one tensor
  ties          TiesMergingAlgorithm over the same pool (three passes, a few accumulators)
  all-at-once   every state dict loaded first, then the same formula (what a naive merge holds)

and the largest difference between the streamed and the all-at-once results. Target: streamed
task arithmetic <= 3.5 (pre-trained + accumulator + one model = 3).

`--methods` adds the second round (comma list, or `all`): magmax, wudi, consensus, tall_mask,
lines, cart (data-free) and regmean, regmean_plusplus, fisher (fed `--examples` random 224 px
images per task in batches of 32, random zero-shot heads). With `--fusionbench-python` (a Python
with fusion-bench 0.2.33, e.g. tests/fixtures/merging_fusionbench/make_fixtures.py's venv) the same
methods run through FusionBench's own classes in the same way, on HF CLIPVisionModels holding the
same weights (converted with checkpoints/hf_convert.py, loaded lazily one model per load_model as
FusionBench's config-instantiated pools do). WUDI runs `--wudi-steps` Adam steps (FusionBench's 400
take hours on a CPU); its time per step is printed beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

SCALING = 0.3


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def start_measuring() -> int:
    """Reset the peak-RSS mark to the current RSS and return it (bytes).

    getrusage's ru_maxrss survives exec (a child starts with its parent's peak), so the peak of
    this process's own memory map (VmHWM) is used, reset through clear_refs where allowed.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return _status_kib("VmHWM") * 1024
    return _status_kib("VmRSS") * 1024


def peak_rss_bytes() -> int:
    return _status_kib("VmHWM") * 1024


def make_checkpoints(folder: Path, n: int) -> dict[str, str]:
    import torch

    from task_arithmetic.io import save_weights
    from task_arithmetic.models.encoder import ENCODER_FORMAT, build_encoder
    from task_arithmetic.models.factory import ModelSpec

    torch.manual_seed(0)
    encoder = build_encoder(ModelSpec("ViT-B-32"))
    paths = {"_pretrained_": str(encoder.save(folder / "pretrained.safetensors"))}
    base = encoder.weights()
    meta = {**encoder.metadata, "format": ENCODER_FORMAT}
    for i in range(n):
        gen = torch.Generator().manual_seed(i + 1)
        noisy = {k: v + 1e-3 * torch.randn(v.shape, generator=gen) if v.is_floating_point() else v for k, v in base.items()}
        paths[f"task{i}"] = str(save_weights(folder / f"task{i}.safetensors", noisy, meta))
        del noisy
    return paths


BATCH = 32
CLASSES = 10
NEW_METHODS = ("magmax", "wudi", "consensus", "tall_mask", "lines", "cart", "regmean", "regmean_plusplus", "fisher")
DATA_BASED = ("regmean", "regmean_plusplus", "fisher")
FUSIONBENCH_HAS = ("magmax", "wudi", "tall_mask", "regmean", "regmean_plusplus", "fisher")


def task_data(name: str, examples: int):
    """Random 224 px images and a random zero-shot head (CLASSES x 512) of one task, the same on both sides."""
    import hashlib

    import torch

    seed = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)
    gen = torch.Generator().manual_seed(seed)
    images = torch.randn(examples, 3, 224, 224, generator=gen)
    head = torch.nn.functional.normalize(torch.randn(CLASSES, 512, generator=gen), dim=-1)
    return images, head


def our_algorithm(strategy: str, wudi_steps: int):
    from task_arithmetic import merging as m

    return {
        "magmax": lambda: m.MagMaxAlgorithm(SCALING),
        "wudi": lambda: m.WUDIMerging(iter_num=wudi_steps),
        "consensus": lambda: m.ConsensusTaskArithmeticAlgorithm(SCALING),
        "tall_mask": lambda: m.TallMaskTaskArithmeticAlgorithm(0.6),
        "lines": lambda: m.LiNeSAlgorithm(beta=0.5),
        "cart": lambda: m.CARTMerging(1.0, rank_ratio=0.08),
        "regmean": lambda: m.RegMeanAlgorithmForCLIP(num_regmean_examples=10**9, dataloader_kwargs={"batch_size": BATCH}),
        "regmean_plusplus": lambda: m.RegMeanAlgorithmForCLIPPlusPlus(num_regmean_examples=10**9, dataloader_kwargs={"batch_size": BATCH}),
        "fisher": lambda: m.FisherMergingForCLIPVisionModel(num_fisher_examples=10**9, dataloader_kwargs={"batch_size": BATCH}),
    }[strategy]()


def child(strategy: str, paths: dict[str, str], out: Path, examples: int = 64, wudi_steps: int = 1) -> None:
    import torch

    from task_arithmetic.io import save_weights
    from task_arithmetic.merging import OpenCLIPVisionModelPool, TaskArithmeticAlgorithm, TiesMergingAlgorithm
    from task_arithmetic.merging.adamerging import TestTimeData, TestTimeTask
    from task_arithmetic.merging.streaming import SafetensorsReader
    from task_arithmetic.models.heads import ClassificationHead

    torch.set_num_threads(2)
    data = None
    if strategy in DATA_BASED:  # made before the baseline: the images are the input, not the method's memory
        tasks = {}
        for name in (n for n in paths if n != "_pretrained_"):
            images, head = task_data(name, examples)
            tasks[name] = TestTimeTask(ClassificationHead(head * 100.0), iter(images.split(BATCH)))
        data = TestTimeData(features=lambda call, x: call(x), tasks=tasks, device=torch.device("cpu"))
    baseline = start_measuring()
    start = time.perf_counter()
    if strategy in ("streamed", "ties"):
        pool = OpenCLIPVisionModelPool(model="ViT-B-32", models=paths)
        algorithm = TaskArithmeticAlgorithm(SCALING) if strategy == "streamed" else TiesMergingAlgorithm(SCALING, threshold=20)
        merged = algorithm.run(pool).visual.state_dict()
    elif strategy in NEW_METHODS:
        pool = OpenCLIPVisionModelPool(model="ViT-B-32", models=paths)
        algorithm = our_algorithm(strategy, wudi_steps)
        result = algorithm.run(pool, merge_data=data) if data is not None else algorithm.run(pool)
        merged = None
        del result
    else:
        states = {name: {k: v.clone() for k, v in SafetensorsReader(Path(p)).items()} for name, p in paths.items()}
        base = states.pop("_pretrained_")
        merged = {}
        for key, value in base.items():
            if value.is_floating_point():
                total = sum(s[key] - value for s in states.values())
                merged[key] = value + SCALING * total
            else:
                merged[key] = value
    seconds = time.perf_counter() - start
    peak = peak_rss_bytes()
    if strategy in ("streamed", "all-at-once"):
        save_weights(out / f"{strategy}.safetensors", merged, {})
    print(json.dumps({"baseline": baseline, "peak": peak, "seconds": seconds}))


# ---- FusionBench's side (run by --fusionbench-python; imports only torch, transformers, fusion_bench)


def fusionbench_child(strategy: str, paths: dict[str, str], examples: int, wudi_steps: int) -> None:
    import copy

    import lightning as L
    import torch
    from fusion_bench.modelpool import BaseModelPool
    from safetensors.torch import load_file
    from torch.utils.data import TensorDataset
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.set_num_threads(2)
    config = CLIPVisionConfig(**json.loads(Path(paths["_hf_config"]).read_text()))

    def build(path: str) -> torch.nn.Module:
        model = CLIPVisionModel(config)
        state = load_file(path)
        own = model.state_dict()
        model.load_state_dict({(k if k in own else f"vision_model.{k}"): v for k, v in state.items()})
        return model.eval()

    class LazyPool(BaseModelPool):
        """FusionBench's pools instantiate a model on each load_model (from config); so does this one."""

        def __init__(self, files, data):
            super().__init__({name: {} for name in files})
            self.files, self.data = files, data

        def load_model(self, name, *args, **kwargs):
            return build(self.files[name])

        def load_train_dataset(self, name, *args, **kwargs):
            images, _head = self.data[name]
            return TensorDataset(images, torch.zeros(len(images), dtype=torch.long))

    files = {name: p for name, p in paths.items() if name.startswith("hf:")}
    files = {name[3:]: p for name, p in files.items()}
    names = [n for n in files if n != "_pretrained_"]
    data = {n: task_data(n, examples) for n in names} if strategy in DATA_BASED else {}
    projection = torch.nn.Linear(config.hidden_size, config.projection_dim, bias=False)
    heads = {n: head for n, (_images, head) in data.items()}

    import fusion_bench.method as fb

    def clip_ready(algorithm):
        algorithm.fabric = L.Fabric(accelerator="cpu", devices=1)
        algorithm._clip_processor = lambda image: image

        def setup(*_args, **_kwargs):
            algorithm.whether_setup_zero_shot_classification_head = True
            algorithm.visual_projection = copy.deepcopy(projection)
            algorithm.logit_scale_exp = torch.tensor(100.0)
            algorithm.zeroshot_weights = dict(heads)

        algorithm.setup_zero_shot_classification_head = setup
        return algorithm

    def regmean_plusplus():
        from bidict import bidict

        # 0.2.33's class cannot be constructed as shipped (its _config_mapping is a dict, not a bidict).
        mapping = bidict(fb.RegMeanAlgorithmPlusPlus._config_mapping)
        mapping["_dataloader_kwargs"] = "dataloader_kwargs"
        fb.RegMeanAlgorithmForCLIPPlusPlus._config_mapping = mapping
        return fb.RegMeanAlgorithmForCLIPPlusPlus(**common, dataloader_kwargs=loader)

    loader = {"batch_size": BATCH, "num_workers": 0}
    common = {"exclude_param_names_regex": [], "num_regmean_examples": examples, "reduce_non_diagonal_ratio": 0.95, "weight_transpose": True}
    builders = {
        "magmax": lambda: fb.MagMaxAlgorithm(scaling_factor=SCALING, inplace=True),
        "wudi": lambda: fb.WUDIMerging(iter_num=wudi_steps),
        "tall_mask": lambda: fb.TallMaskTaskArithmeticAlgorithm(tall_mask_lambda=0.6),
        "regmean": lambda: clip_ready(fb.RegMeanAlgorithmForCLIP(**common, dataloader_kwargs=loader)),
        "regmean_plusplus": lambda: clip_ready(regmean_plusplus()),
        "fisher": lambda: clip_ready(fb.FisherMergingForCLIPVisionModel(exclude_param_names_regex=[], normalize_fisher_weight=True,
                                                                         minimal_fisher_weight=1e-6, num_fisher_examples=examples, dataloader_kwargs=loader)),
    }
    algorithm = builders[strategy]()
    if strategy == "wudi":
        algorithm.fabric = L.Fabric(accelerator="cpu", devices=1)
    pool = LazyPool(files, data)
    baseline = start_measuring()
    start = time.perf_counter()
    error = None
    try:
        algorithm.run(pool)
    except Exception as err:  # noqa: BLE001 - a failure of FusionBench's code is a result to report
        error = f"{type(err).__name__}: {str(err).splitlines()[0][:120]}"
    print(json.dumps({"baseline": baseline, "peak": peak_rss_bytes(), "seconds": time.perf_counter() - start, "error": error}))


def make_hf_copies(paths: dict[str, str], folder: Path) -> dict[str, str]:
    """HF CLIPVisionModel state dicts of the same weights (FusionBench's side) and their config."""
    import open_clip
    from safetensors.torch import save_file

    from task_arithmetic.checkpoints.hf_convert import hf_vision_config, vision_to_hf
    from task_arithmetic.merging.streaming import SafetensorsReader

    out = {}
    for name, path in paths.items():
        reader = SafetensorsReader(Path(path))
        visual = {k.removeprefix("visual."): reader[k] for k in reader}
        state, _projection = vision_to_hf(visual, 12)
        target = folder / f"hf_{name}.safetensors"
        save_file({k: v.contiguous() for k, v in state.items()}, str(target))
        out[f"hf:{name}"] = str(target)
    config = hf_vision_config(open_clip.get_model_config("ViT-B-32"), quick_gelu=False)
    (folder / "hf_config.json").write_text(json.dumps(config))
    out["_hf_config"] = str(folder / "hf_config.json")
    return out


def run_child(strategy: str, paths: object, out: Path, extra: list[str] | None = None, python: str | None = None) -> dict:
    result = subprocess.run(
        [python or sys.executable, __file__, "--child", strategy, "--paths", json.dumps(paths), "--out", str(out), *(extra or [])],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONPATH": str(REPO / "src")} if python is None else {**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    lines = [line for line in result.stdout.strip().splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        tail = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"error": f"exit {result.returncode}: {tail[:160]}"}
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=8, help="number of fine-tuned checkpoints")
    parser.add_argument("--keep", type=Path, help="keep the checkpoints in this folder (reused when already there)")
    parser.add_argument("--methods", default="", help=f"second-round methods too: a comma list of {', '.join(NEW_METHODS)}, or all")
    parser.add_argument("--examples", type=int, default=64, help="inputs per task of the data-based methods (default 64)")
    parser.add_argument("--wudi-steps", type=int, default=1, help="WUDI's Adam steps in this benchmark (default 1; the method's 400)")
    parser.add_argument("--fusionbench-python", help="a Python with fusion-bench 0.2.33: run its classes beside ours")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--paths", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "make":
        print(json.dumps(make_checkpoints(args.out, int(args.paths))))
        return
    if args.child == "make_hf":
        print(json.dumps(make_hf_copies(json.loads(args.paths), args.out)))
        return
    if args.child and args.child.startswith("fb:"):
        fusionbench_child(args.child[3:], json.loads(args.paths), args.examples, args.wudi_steps)
        return
    if args.child:
        child(args.child, json.loads(args.paths), args.out, args.examples, args.wudi_steps)
        return
    methods = list(NEW_METHODS) if args.methods == "all" else [m for m in args.methods.split(",") if m]
    unknown = [m for m in methods if m not in NEW_METHODS]
    if unknown:
        parser.error(f"unknown method(s) {', '.join(unknown)}; valid: {', '.join(NEW_METHODS)}")

    with tempfile.TemporaryDirectory(prefix="bench_merge_") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        # The checkpoints are made in a child too: this process stays small, so nothing of a large
        # parent can leak into the children's measurements.
        paths = {"_pretrained_": str(folder / "pretrained.safetensors"), **{f"task{i}": str(folder / f"task{i}.safetensors") for i in range(args.models)}}
        if not all(Path(p).with_suffix(".json").is_file() for p in paths.values()):
            paths = run_child("make", args.models, folder)
        model_bytes = Path(paths["_pretrained_"]).stat().st_size
        print(f"{args.models} ViT-B-32 fine-tuned checkpoints + pre-trained ready in {time.perf_counter() - start:.1f} s; "
              f"model size {model_bytes / 2**20:.1f} MiB (float32 image encoder)")
        rows = {}
        for strategy in ("streamed", "ties", "all-at-once"):
            rows[strategy] = run_child(strategy, paths, Path(tmp))
        print(f"{'strategy':14s} {'peak-baseline MiB':>18s} {'x model size':>13s} {'seconds':>8s}")
        for strategy, row in rows.items():
            extra = row["peak"] - row["baseline"]
            print(f"{strategy:14s} {extra / 2**20:18.1f} {extra / model_bytes:13.2f} {row['seconds']:8.1f}")

        from safetensors.torch import load_file

        streamed, naive = load_file(str(Path(tmp) / "streamed.safetensors")), load_file(str(Path(tmp) / "all-at-once.safetensors"))
        diff = max(float((streamed[k].double() - naive[k].double()).abs().max()) for k in naive if naive[k].numel())
        ratio = (rows["streamed"]["peak"] - rows["streamed"]["baseline"]) / model_bytes
        print(f"max |streamed - all-at-once| = {diff:.3g}")
        print(f"streamed task arithmetic: {ratio:.2f} x model size (target <= 3.5): {'OK' if ratio <= 3.5 else 'ABOVE TARGET'}")
        if methods:
            second_round(methods, paths, Path(tmp), model_bytes, args)


def second_round(methods: list[str], paths: dict[str, str], tmp: Path, model_bytes: int, args: argparse.Namespace) -> None:
    extra = ["--examples", str(args.examples), "--wudi-steps", str(args.wudi_steps)]
    hf_paths = run_child("make_hf", paths, tmp) if args.fusionbench_python else {}
    print(f"\nsecond round: {args.models} models, data-based methods on {args.examples} random 224 px images per task (batch {BATCH}), "
          f"WUDI {args.wudi_steps} Adam step(s); peak RSS above the process's own after imports")

    def cells(row: dict) -> str:
        if not row:
            return f"{'-':>10s} {'-':>7s} {'-':>8s}"
        if row.get("error"):
            return f"fails: {row['error']}"
        extra_bytes = row["peak"] - row["baseline"]
        return f"{extra_bytes / 2**20:10.0f} {extra_bytes / model_bytes:7.2f} {row['seconds']:8.1f}"

    print(f"{'method':17s} {'ours MiB':>10s} {'x model':>7s} {'seconds':>8s} | {'FusionBench MiB':>10s} {'x model':>7s} {'seconds':>8s}")
    for method in methods:
        ours = run_child(method, paths, tmp, extra)
        theirs = run_child(f"fb:{method}", hf_paths, tmp, extra, python=args.fusionbench_python) if hf_paths and method in FUSIONBENCH_HAS else {}
        print(f"{method:17s} {cells(ours)} | {cells(theirs)}", flush=True)


if __name__ == "__main__":
    main()
