"""Resumable training state in the suite's format: tensors in safetensors, the rest in JSON.

Folder layout (layout.train_state(...)):
    tensors-<step>.safetensors   weights theta, AdamW moments, RNG states
    state.json                   step, fingerprint of the settings, RNG scalars, tensors file name
state.json is written last and atomically: it is the commit point. A kill before it leaves the
previous state.json pointing at the previous (still present) tensors file; older files are
removed only after the new state.json is in place. Loading never unpickles anything.
The tensors file records its own step and the run's identity (a digest of the settings), so a
state.json that names another run's tensors, or another step's, is refused instead of resumed.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from ..io import atomic_write_json, load_weights, metadata_path, read_json_object, save_weights
from ..storage.checksums import DamagedFile

STATE_FILE = "state.json"
STATE_FORMAT = "train_state/1"
_TENSORS_NAME = re.compile(r"tensors-\d{9}\.safetensors")


def run_identity(fingerprint: dict[str, Any]) -> str:
    """A digest of the settings that determine the trained weights: what makes a state this run's."""
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ResumePoint:
    step: int  # optimiser steps already taken
    extra: dict[str, Any]  # scalars the recipe keeps between steps (e.g. an adapted coefficient)


def _capture_rng() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = state
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    tensors["rng.numpy"] = torch.from_numpy(np.asarray(np_keys, dtype=np.int64))
    py_version, py_internal, py_gauss = random.getstate()
    scalars = {
        "numpy": {"kind": np_kind, "pos": int(np_pos), "has_gauss": int(np_has_gauss), "gauss": float(np_gauss)},
        "python": {"version": py_version, "internal": list(py_internal), "gauss": py_gauss},
    }
    return tensors, scalars


def _restore_rng(tensors: dict[str, torch.Tensor], scalars: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda_states = [tensors[k] for k in sorted((k for k in tensors if k.startswith("rng.cuda.")), key=lambda k: int(k.rsplit(".", 1)[1]))]
    if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_states)
    n = scalars["numpy"]
    np.random.set_state((n["kind"], tensors["rng.numpy"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = scalars["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for index, entries in optimizer.state_dict()["state"].items():
        for name, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{name}"] = value
            else:
                scalars[f"{index}.{name}"] = value
    return tensors, scalars


def _restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], scalars: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    for key, value in scalars.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    # Hyper-parameters come from the (identical, fingerprint-checked) config, the lr from the
    # schedule: only the per-parameter moments are state.
    optimizer.load_state_dict({"state": state, "param_groups": optimizer.state_dict()["param_groups"]})


def save_train_state(
    folder: Path, step: int, model: nn.Module, optimizer: torch.optim.Optimizer, fingerprint: dict[str, Any], extra: dict[str, Any] | None = None
) -> None:
    folder = Path(folder)
    rng_tensors, rng_scalars = _capture_rng()
    optim_tensors, optim_scalars = _optimizer_tensors(optimizer)
    tensors = {**{f"model.{k}": v for k, v in model.state_dict().items()}, **optim_tensors, **rng_tensors}
    name = f"tensors-{step:09d}.safetensors"
    save_weights(folder / name, tensors, {"format": STATE_FORMAT, "step": step, "run_identity": run_identity(fingerprint)})
    atomic_write_json(
        folder / STATE_FILE,
        {"format": STATE_FORMAT, "step": step, "tensors": name, "fingerprint": fingerprint, "rng": rng_scalars, "optimizer": optim_scalars,
         "extra": extra or {}},
    )
    for old in folder.glob("tensors-*.safetensors"):
        if old.name != name:
            old.unlink(missing_ok=True)
            metadata_path(old).unlink(missing_ok=True)


def load_train_state(folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer, fingerprint: dict[str, Any]) -> ResumePoint | None:
    """Restore model, optimiser and RNGs from `folder`; None when there is nothing to resume."""
    folder = Path(folder)
    state_file = folder / STATE_FILE
    if not state_file.is_file():
        return None
    meta = read_json_object(state_file)
    if meta.get("format") != STATE_FORMAT:
        raise UserError(f"{state_file} is not a training state of this suite (format {meta.get('format')!r}); delete {folder} or re-run with --force")
    saved = meta.get("fingerprint", {})
    if saved != fingerprint:
        changed = sorted(k for k in set(saved) | set(fingerprint) if saved.get(k) != fingerprint.get(k))
        detail = ", ".join(f"{k}: {saved.get(k)!r} -> {fingerprint.get(k)!r}" for k in changed[:3])
        raise UserError(f"the saved training state in {folder} was made with other settings ({detail}); re-run with the same settings, or --force to start over")
    name = meta.get("tensors")
    start_over = f"re-run with --force to start this run over, or delete {folder} and re-run the same command"
    if not isinstance(name, str) or not _TENSORS_NAME.fullmatch(name):
        raise UserError(f"{state_file} names {name!r} as its tensors, not a tensors-<step>.safetensors file of its own folder; {start_over}")
    try:
        tensors, tensors_meta = load_weights(folder / name)
    except DamagedFile as err:
        raise UserError(f"the saved training state {err.path} is damaged ({err.detail}); {start_over}") from err
    recorded = tensors_meta.get("run_identity")  # absent from states saved before it was recorded
    if tensors_meta.get("step") != meta.get("step") or (recorded is not None and recorded != run_identity(fingerprint)):
        raise UserError(
            f"{state_file} does not match its tensors {folder / name} (they were saved by another run or at another step: "
            f"step {tensors_meta.get('step')!r} vs {meta.get('step')!r}); {start_over}"
        )
    model_state = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    model.load_state_dict(model_state)
    _restore_optimizer(optimizer, tensors, meta.get("optimizer", {}))
    _restore_rng(tensors, meta["rng"])
    return ResumePoint(step=int(meta["step"]), extra=dict(meta.get("extra", {})))


def saved_step(folder: Path) -> int | None:
    state_file = Path(folder) / STATE_FILE
    return int(read_json_object(state_file).get("step", 0)) if state_file.is_file() else None
