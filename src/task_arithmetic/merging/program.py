"""The merge program behind src/merge.py: build method and pools from a config, merge, save the
merged model, evaluate it on the task pool, write a JSON report.

Its outputs never replace what they did not write: merged_model_save_path may replace a model a
merge saved (its metadata says so), never a fine-tuned run or a downloaded model; report_save_path
may replace a merge report, never an evaluation's results. Both are checked before the merge.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path
from typing import Any

import yaml
from torch import nn

from ..errors import UserError
from ..flags import check_seed
from ..io import atomic_folder, atomic_write_json, metadata_path, read_json_object, save_weights
from ..models.encoder import ImageEncoder
from ..paths import check_name
from ..storage.write_errors import check_output_path
from .targets import instantiate

MERGE_MARKER = "merge.json"  # in a merged HF folder: what made it (and that a merge may replace it)
SWITCHES = ("print_config", "dry_run", "fast_dev_run")  # true/false keys of config/merge.yaml


# Program keys that do not change a merge's numbers (where it goes, how it is shown, the device).
OUTPUT_KEYS = ("merged_model_save_path", "report_save_path", "print_config", "dry_run", "device", "results_root")


def _clean(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text.replace("/", "__"))


def result_identity(config: dict[str, Any], method_config: dict[str, Any], modelpool: dict[str, Any]) -> dict[str, Any]:
    """Everything that decides a merge's numbers: the models the pool resolved to (model id, run,
    readout, checkpoint root; or its sources), the method's settings, the task pool's resolved
    config (tasks, split, data, sample cap) and the program switches that change results."""
    program = {k: v for k, v in config.items() if k not in (*OUTPUT_KEYS, "method", "modelpool", "taskpool")}
    taskpool = config.get("taskpool")
    if isinstance(taskpool, dict):  # how fast it is read does not change what it measures
        taskpool = {k: v for k, v in taskpool.items() if k not in ("device", "batch_size", "num_workers")}
    return {"modelpool": modelpool, "method": method_config, "taskpool": taskpool, "program": program}


def pool_folder(modelpool: dict[str, Any]) -> str:
    """The pool's models as one folder name: `<model_id>__<run>` for the suite's own runs (so a
    standard and a linear pool, or the embedded and embedded-smoke worlds, never share a folder),
    else the pool's type."""
    if modelpool.get("model_id") and modelpool.get("run"):
        return _clean(f"{modelpool['model_id']}__{modelpool['run']}")
    return _clean(str(modelpool.get("type", "models")))


def default_report_path(config: dict[str, Any], choices: dict[str, str | None], method_config: dict[str, Any],
                        modelpool: dict[str, Any] | None = None) -> Path:
    """results/merge/<models>/<modelpool>/<taskpool>/<method>[__k=v...]__<identity>.json.

    <models> names the pool's resolved models (pool_folder), and <identity> is a digest of
    everything that decides the numbers (result_identity): a merge of other models, another world,
    another split or sample cap writes its own file, and only the same merge re-run replaces one."""
    clean = _clean
    identity = hashlib.sha256(json.dumps(result_identity(config, method_config, modelpool or {}), sort_keys=True, default=str).encode()).hexdigest()[:8]

    settings = ",".join(f"{k}={v}" for k, v in sorted(method_config.items()) if k != "inplace" and not isinstance(v, (dict, list)))
    if any(isinstance(v, (dict, list)) and v for v in method_config.values()):
        # Per-task coefficients do not fit a file name; a digest keeps settings apart.
        settings += ("," if settings else "") + "cfg-" + hashlib.sha256(json.dumps(method_config, sort_keys=True).encode()).hexdigest()[:8]
    if len(settings) > 120:
        # Methods with many settings (AdaMerging) would exceed file-name limits; the report holds them all.
        settings = "cfg-" + hashlib.sha256(json.dumps(method_config, sort_keys=True, default=str).encode()).hexdigest()[:8]
    method = clean(str(choices["method"])) + (f"__{clean(settings)}" if settings else "") + f"__{identity}"
    names = (check_name("merged models", pool_folder(modelpool or {})), check_name("modelpool", clean(str(choices["modelpool"]))),
             check_name("taskpool", clean(str(choices["taskpool"] or "no_taskpool"))), check_name("method", method))
    return Path(config["results_root"]).joinpath("merge", *names[:3], f"{names[3]}.json")


def save_merged(model: nn.Module, path: Path, metadata: dict[str, Any]) -> Path:
    """ImageEncoders and plain modules: our safetensors + JSON. HF models: the same, or an HF folder
    (save_pretrained) when the path does not end in .safetensors."""
    path = Path(path)
    if isinstance(model, ImageEncoder):
        if path.suffix != ".safetensors":
            raise UserError(f"merged_model_save_path must end in .safetensors for an image encoder, got {path}")
        return model.save(path, {"merge": metadata})
    config = getattr(model, "config", None)
    if path.suffix != ".safetensors":
        save_pretrained = getattr(model, "save_pretrained", None)  # an HF model
        if save_pretrained is None:
            raise UserError(f"merged_model_save_path must end in .safetensors, got {path}")
        from .modelpool.hf_clip import quiet_transformers

        needed = sum(t.numel() * t.element_size() for t in model.state_dict().values())
        with atomic_folder(path, needed) as partial:  # whole or not at all, the previous merge kept until then
            with quiet_transformers():
                save_pretrained(partial)
            atomic_write_json(partial / MERGE_MARKER, {"merge": metadata})
        return path
    extra = {"hf_class": type(model).__name__, "hf_config": config.to_dict()} if config is not None else {}
    return save_weights(path, model.state_dict(), {"format": "merged_state_dict", "merge": metadata, **extra})


def _describe_model(meta: dict[str, Any]) -> str:
    if meta.get("run") and meta.get("task"):
        return f"the fine-tuned run {meta['run']} of {meta['task']}"
    return f"a {meta.get('format', 'model')} file" if meta else "a model this suite did not write"


def check_outputs(config: dict[str, Any]) -> None:
    """Refuse, before any work, output paths that cannot be written or would replace what a merge
    did not write (a fine-tuned run, a downloaded model, an evaluation's results)."""
    model_path = config.get("merged_model_save_path")
    if model_path:
        path = Path(model_path)
        is_file = path.suffix == ".safetensors"
        check_output_path(path, "file" if is_file else "folder", what="merged model (merged_model_save_path)")
        if is_file and path.exists():
            meta = read_json_object(metadata_path(path)) if metadata_path(path).is_file() else {}
            if "merge" not in meta:
                raise UserError(f"merged_model_save_path={path} holds {_describe_model(meta)}, which a merge must not replace; choose another path")
        if not is_file and path.is_dir() and any(path.iterdir()) and not (path / MERGE_MARKER).is_file():
            raise UserError(f"merged_model_save_path={path} is a folder holding files no merge wrote; choose a new or empty folder")
    report = config.get("report_save_path")
    if report:
        path = Path(report)
        check_output_path(path, "file", what="merge report (report_save_path)")
        if model_path and Path(model_path).suffix == ".safetensors" and path.resolve() == metadata_path(Path(model_path)).resolve():
            raise UserError(f"report_save_path={path} is the merged model's own metadata file; choose another path")
        if path.exists():
            try:
                previous = read_json_object(path)
            except UserError:
                previous = {}
            if not {"choices", "method", "merged_model_save_path"} <= set(previous):
                raise UserError(f"report_save_path={path} holds a file that is not a merge report, which a merge must not replace; choose another path")


def check_switches(config: dict[str, Any]) -> None:
    for key in SWITCHES:
        if config.get(key) is not None and not isinstance(config[key], bool):
            raise UserError(f"{key} must be true or false, got {config[key]!r}; pass e.g. {key}=true")


def print_results(results: dict[str, Any], indent: str = "  ") -> None:
    for name, row in results.items():
        if isinstance(row, dict) and "accuracy" in row:
            print(f"{indent}{name:24s} accuracy {row['accuracy']:.4f}  loss {row['loss']:.4f}")
        elif isinstance(row, dict):  # one model of several (TALL masks, TSV-M's single-task models)
            print(f"{indent}{name}:")
            print_results(row, indent + "  ")


def named_modules(result: Any, prefix: str = "") -> dict[str, nn.Module]:
    """The modules a method returned: one merged module, or FusionBench's dicts of several
    ({name: module, ...} or {"models": {...}, "metadata": ...}), flattened to dotted names."""
    if isinstance(result, nn.Module):
        return {prefix or "merged": result}
    out: dict[str, nn.Module] = {}
    for key, value in (result or {}).items():
        name = key if key != "models" else ""
        inner = f"{prefix}.{name}".strip(".") if name else prefix
        if isinstance(value, (nn.Module, dict)):
            out |= named_modules(value, inner)
    return out


def evaluate_result(taskpool: Any, modelpool: Any, result: Any, max_batches: int | None) -> Any:
    """FusionBench's rule for several models: each is evaluated on the whole task pool; other
    entries (metadata) are copied into the report."""
    if isinstance(result, nn.Module):
        return taskpool.evaluate(modelpool.evaluation_model(result), max_batches=max_batches)
    if isinstance(result, dict):
        return {k: evaluate_result(taskpool, modelpool, v, max_batches) if isinstance(v, (nn.Module, dict)) else v for k, v in result.items()}
    return result


def seed_everything(seed: Any) -> None:
    """FusionBench's `seed`: Python's, NumPy's and torch's generators (DARE's masks have their own)."""
    import random

    import numpy as np
    import torch

    from .base import integer

    value = check_seed("seed", integer("seed", seed))
    random.seed(value)
    np.random.seed(value % 2**32)
    torch.manual_seed(value)


def run_program(config: dict[str, Any], choices: dict[str, str | None]) -> dict[str, Any]:
    check_switches(config)
    check_outputs(config)
    if config.get("seed") is not None:
        seed_everything(config["seed"])
    if config.get("print_config", True):
        print(yaml.safe_dump({"choices": choices, **config}, sort_keys=False).rstrip())
    method = instantiate("method", config["method"])
    modelpool = instantiate("modelpool", config["modelpool"])
    if not config.get("dry_run"):
        # Before the task pool: a missing checkpoint is the likeliest problem and the cheapest to report.
        modelpool.check_available()
    taskpool = instantiate("taskpool", config["taskpool"]) if config.get("taskpool") else None
    pool = modelpool.describe()
    path = Path(config["report_save_path"]) if config.get("report_save_path") else default_report_path(config, choices, method.settings(), pool)
    check_output_path(path, "file", what="merge report")  # a report that cannot be written fails before the merge
    if config.get("dry_run"):
        return {}

    start = time.perf_counter()
    method.attach_taskpool(taskpool)  # AdaMerging learns on its unlabeled test inputs
    merged = method.run(modelpool)
    seconds = {"merge": time.perf_counter() - start}
    merge_info = {"method": choices["method"], "method_config": method.settings(), "modelpool": pool}

    saved: str | dict[str, str] | None = None
    if config.get("merged_model_save_path"):
        model_path = Path(config["merged_model_save_path"])
        if isinstance(merged, nn.Module):
            saved = str(save_merged(merged, model_path, merge_info))
        else:  # several models: <stem>.<name><suffix> each
            saved = {name: str(save_merged(module, model_path.with_name(f"{model_path.stem}.{name}{model_path.suffix}"), merge_info))
                     for name, module in named_modules(merged).items()}
        print(f"merged model saved to {saved}")

    results = None
    if taskpool is not None:
        start = time.perf_counter()
        results = evaluate_result(taskpool, modelpool, merged, 1 if config.get("fast_dev_run") else None)
        seconds["evaluate"] = time.perf_counter() - start
        print_results(results)

    report = {
        "results": results,
        **merge_info,
        "merging_weights": getattr(method, "merging_weights", None),  # AdaMerging's learned coefficients
        "taskpool": taskpool.describe() if taskpool is not None else None,
        "choices": choices,
        "config": config,
        "merged_model_save_path": saved,
        "seconds": seconds,
        "identity": result_identity(config, method.settings(), pool),  # what the default file name's digest covers
    }
    atomic_write_json(path, report)
    print(f"report written to {path}")
    return report
