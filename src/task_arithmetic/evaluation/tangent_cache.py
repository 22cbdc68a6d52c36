"""The linearity shortcut: f(x; theta_0) and every J(x) tau_t, computed once per example.

For a linear or post-hoc model the embedding of any edit is f0(x) + sum_t c_t J(x) tau_t, so
every coefficient, combination, negation, pair, tau-Jp entry and disentanglement point follows
from these cached vectors without another pass through the network. The JVPs for all task
vectors of a batch run together (vmap over the tangents; the primal pass is shared).

Caches live in memory and, optionally, on disk beside the results; a fingerprint of theta_0,
each checkpoint and the data subset decides which stored tangents are still valid.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import torch
from torch import nn
from torch.func import vmap
from torch.utils.data import DataLoader

from ..io import load_cached_weights, metadata_path, save_weights
from ..models.linearize import select_jvp
from ..storage.locks import FileLock
from ..vectors.streaming import stack_checkpoints

LOG = logging.getLogger(__name__)
CACHE_FORMAT = "tangent_cache"
CACHE_VERSION = 1


@dataclass
class FeatureCache:
    """Embeddings of one (dataset, split): f0 [N, D], tangents {task: [N, D]}, labels [N]."""

    features0: torch.Tensor
    labels: torch.Tensor
    tangents: dict[str, torch.Tensor] = field(default_factory=dict)

    def embed(self, coefs: Mapping[str, float]) -> torch.Tensor:
        out = self.features0.clone()
        for task, coef in coefs.items():
            out.add_(self.tangents[task], alpha=coef)
        return out


def file_signature(path: Path) -> str:
    """Cheap identity of a checkpoint: size, mtime and its metadata (seed, steps, config...)."""
    path = Path(path)
    stat = path.stat()
    meta = metadata_path(path)
    meta_digest = hashlib.sha256(meta.read_bytes()).hexdigest()[:16] if meta.is_file() else "none"
    return f"{stat.st_size}:{stat.st_mtime_ns}:{meta_digest}"


class TangentComputer:
    """Runs f(x; theta_0) and J(x) tau_t for a group of task vectors over a loader."""

    def __init__(self, module: nn.Module, theta0_path: Path, device: torch.device, vectors_per_pass: int | None = None):
        self.module = module.eval()
        self.theta0_path = Path(theta0_path)
        self.device = device
        self.vectors_per_pass = vectors_per_pass
        self.params0 = {k: v.detach() for k, v in module.named_parameters()}
        self.jvp_fn = select_jvp(module)
        self._vmap_ok = True

    def _batched(self, stacked: dict[str, torch.Tensor], images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        count = next(iter(stacked.values())).shape[0]
        if self._vmap_ok:
            try:
                out0, tangents = vmap(lambda d: self.jvp_fn(self.module, self.params0, d, images), out_dims=(0, 0))(stacked)
                return out0[0], tangents
            except torch.OutOfMemoryError:
                raise
            except (RuntimeError, NotImplementedError) as err:
                # A hand-written JVP may use ops without batching rules: fall back to one JVP per vector.
                LOG.warning("vmap over task vectors failed (%s); computing one JVP per vector", str(err).splitlines()[0])
                self._vmap_ok = False
        results = [self.jvp_fn(self.module, self.params0, {k: v[i] for k, v in stacked.items()}, images) for i in range(count)]
        return results[0][0], torch.stack([t for _, t in results])

    @torch.inference_mode()
    def compute(self, checkpoints: Mapping[str, Path], loader: DataLoader) -> FeatureCache:
        tasks = list(checkpoints)
        step = self.vectors_per_pass or max(len(tasks), 1)
        cache: FeatureCache | None = None
        for start in range(0, max(len(tasks), 1), step):
            chunk = tasks[start : start + step]
            stacked = stack_checkpoints([checkpoints[t] for t in chunk], self.theta0_path, list(self.params0), self.device) if chunk else {}
            feats, labels, tangents = [], [], []
            for images, batch_labels in loader:
                images = images.to(self.device)
                if chunk:
                    out0, tan = self._batched(stacked, images)
                    tangents.append(tan.float())
                else:
                    out0 = self.module(images)
                feats.append(out0.float())
                labels.append(torch.as_tensor(batch_labels))
            if cache is None:
                cache = FeatureCache(torch.cat(feats), torch.cat(labels).to(self.device))
            if chunk:
                stacked_tangents = torch.cat(tangents, dim=1)
                cache.tangents.update({t: stacked_tangents[i] for i, t in enumerate(chunk)})
            del stacked
        assert cache is not None
        return cache


class TangentCacheStore:
    """Feature caches of one (model, fine-tuning recipe), in memory and optionally on disk."""

    def __init__(self, computer: TangentComputer, checkpoints: Mapping[str, Path], folder: Path | None, base_key: Mapping):
        self.computer = computer
        self.checkpoints = dict(checkpoints)
        self.folder = Path(folder) if folder is not None else None
        self.base_key = dict(base_key)
        self.signatures = {t: file_signature(p) for t, p in self.checkpoints.items()}
        self._memory: dict[tuple[str, str], FeatureCache] = {}

    def _file(self, dataset: str, split: str, suffix: str) -> Path:
        assert self.folder is not None
        return self.folder / f"{dataset}-{split}{suffix}.safetensors"

    def get(self, dataset: str, split: str, loader_factory, size: int, suffix: str = "") -> FeatureCache:
        key = (dataset, split)
        if key in self._memory:
            return self._memory[key]
        base = {**self.base_key, "dataset": dataset, "split": split, "n": size, "version": CACHE_VERSION}
        base_digest = hashlib.sha256(json.dumps(base, sort_keys=True, default=str).encode()).hexdigest()
        stored, stored_sigs = self._read(dataset, split, suffix, base_digest)
        missing = self._missing(stored, stored_sigs)
        if stored is None or missing:
            with self._building(dataset, split, suffix) as lock:
                if getattr(lock, "waited", False):  # another evaluation built it while we waited
                    stored, stored_sigs = self._read(dataset, split, suffix, base_digest)
                    missing = self._missing(stored, stored_sigs)
                if stored is None or missing:
                    stored, stored_sigs = self._compute(dataset, split, suffix, base_digest, loader_factory, stored, stored_sigs, missing)
        self._memory[key] = stored
        return stored

    def _missing(self, stored: FeatureCache | None, stored_sigs: dict[str, str]) -> dict[str, Path]:
        return {t: p for t, p in self.checkpoints.items() if stored is None or stored_sigs.get(t) != self.signatures[t]}

    def _building(self, dataset: str, split: str, suffix: str) -> contextlib.AbstractContextManager:
        """One process builds a cache file at a time; the others wait for it and then read it."""
        if self.folder is None:
            return contextlib.nullcontext()
        path = self._file(dataset, split, suffix)
        return FileLock(path.with_name(path.name + ".lock"), what=f"tangent cache {path}", wait_s=None)

    def _compute(self, dataset: str, split: str, suffix: str, base_digest: str, loader_factory, stored: FeatureCache | None,
                 stored_sigs: dict[str, str], missing: dict[str, Path]) -> tuple[FeatureCache, dict[str, str]]:
        fresh = self.computer.compute(missing, loader_factory())
        if stored is None:
            stored, stored_sigs = fresh, {}
        stored.tangents.update(fresh.tangents)
        stored_sigs.update({t: self.signatures[t] for t in missing})
        self._write(dataset, split, suffix, base_digest, stored, stored_sigs)
        return stored, stored_sigs

    def _read(self, dataset: str, split: str, suffix: str, base_digest: str) -> tuple[FeatureCache | None, dict[str, str]]:
        if self.folder is None:
            return None, {}
        path = self._file(dataset, split, suffix)
        if not metadata_path(path).is_file() or not path.is_file():
            return None, {}
        loaded = load_cached_weights(path, self.computer.device)
        if loaded is None:
            return None, {}
        tensors, meta = loaded
        if meta.get("format") != CACHE_FORMAT or meta.get("base") != base_digest:
            return None, {}
        tangents = {k.removeprefix("tangent."): v for k, v in tensors.items() if k.startswith("tangent.")}
        cache = FeatureCache(tensors["features0"], tensors["labels"], tangents)
        return cache, {t: s for t, s in meta.get("vectors", {}).items() if t in tangents}

    def _write(self, dataset: str, split: str, suffix: str, base_digest: str, cache: FeatureCache, sigs: dict[str, str]) -> None:
        if self.folder is None:
            return
        tensors = {"features0": cache.features0, "labels": cache.labels, **{f"tangent.{t}": v for t, v in cache.tangents.items()}}
        save_weights(
            self._file(dataset, split, suffix),
            tensors,
            {"format": CACHE_FORMAT, "base": base_digest, "base_key": {**self.base_key, "dataset": dataset, "split": split}, "vectors": sigs},
        )
