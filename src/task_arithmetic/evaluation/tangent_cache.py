"""The linearity shortcut: f(x; theta_0) and J(x) v, computed once per example and direction.

For a linear or post-hoc model the embedding of any edit is f0(x) + sum_k c_k J(x) v_k, so every
coefficient, combination, negation, pair, tau-Jp entry and disentanglement point follows from
cached vectors without another pass through the network.

What is cached is decided per (dataset, direction) on demand, so the cost follows what the
evaluations ask for: a direction is one task's vector tau_t, or the sum of a group of at least
GROUP_MIN tasks (task addition's sum of all tasks: one JVP per dataset instead of one per task).
Single-task accuracy needs J(x_t) tau_t, addition J(x_t) sum(tau), negation J(x_t) tau_t and
J(x_control) tau_t: O(T) tangents in all. The tau-Jp matrix (every tau_i on every dataset) and the
pairs (tau_j on task i's data) build the O(T^2) rest only when they run. The JVPs a query needs
on one dataset run together (vmap over the directions; the primal pass is shared).

Caches live in memory and, optionally, on disk beside the results: one folder per (dataset,
split), holding f0 and the labels in `features0.safetensors` and each direction's tangent in its
own file, each verified by its sha256 when read (a damaged file is rebuilt, saying so). A
fingerprint of theta_0, the precision and the data subset, and each direction's checkpoints,
decide which stored files are still valid; a changed checkpoint recomputes only its directions.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import torch
from torch import nn
from torch.func import vmap
from torch.utils.data import DataLoader

from ..io import load_cached_weights, metadata_path, save_weights
from ..models.linearize import select_jvp
from ..storage.locks import FileLock
from ..vectors.streaming import stack_checkpoints, sum_checkpoints
from .edits import Edit

LOG = logging.getLogger(__name__)
CACHE_FORMAT = "tangent_cache"
CACHE_VERSION = 3  # 1: one file per (dataset, split) holding every task's tangent; 2: tangents in any grouping
FEATURES = "features0"
# A group of this many tasks or more is cached as one summed direction. Smaller groups (a pair)
# split into their tasks: the pairs, the disentanglement grid and the tau-Jp matrix share those.
GROUP_MIN = 3


@dataclass(frozen=True, order=True)
class Direction:
    """A direction in weight space whose tangent the cache holds: the sum of `tasks`' vectors."""

    tasks: tuple[str, ...]  # sorted

    @classmethod
    def of(cls, tasks: Iterable[str]) -> "Direction":
        return cls(tuple(sorted(tasks)))

    @property
    def name(self) -> str:
        """The tangent's key and file name: the task for one, a digest of the group for a sum."""
        if len(self.tasks) == 1:
            return self.tasks[0]
        return "sum-" + hashlib.sha256(",".join(self.tasks).encode()).hexdigest()[:16]


def directions_of(edit: Edit) -> dict[Direction, float]:
    """The cached directions an edit's embedding is assembled from, with their coefficients."""
    out: dict[Direction, float] = {}
    for group, coef in edit.terms:
        parts = [Direction.of(group)] if len(group) >= GROUP_MIN else [Direction((t,)) for t in group]
        for part in parts:
            out[part] = out.get(part, 0.0) + coef
    return {d: c for d, c in sorted(out.items()) if c != 0}


@dataclass
class FeatureCache:
    """Embeddings of one (dataset, split): f0 [N, D], labels [N], tangents {direction name: [N, D]}."""

    features0: torch.Tensor
    labels: torch.Tensor
    tangents: dict[str, torch.Tensor] = field(default_factory=dict)

    def embed(self, coefs: Mapping[str, float]) -> torch.Tensor:
        out = self.features0.clone()
        for name, coef in coefs.items():
            out.add_(self.tangents[name], alpha=coef)
        return out


def file_signature(path: Path) -> str:
    """Cheap identity of a checkpoint: size, mtime and its metadata (seed, steps, config...)."""
    path = Path(path)
    stat = path.stat()
    meta = metadata_path(path)
    meta_digest = hashlib.sha256(meta.read_bytes()).hexdigest()[:16] if meta.is_file() else "none"
    return f"{stat.st_size}:{stat.st_mtime_ns}:{meta_digest}"


def stack_directions(groups: Sequence[Sequence[Path]], theta0_path: Path, keys: Sequence[str], device: torch.device) -> dict[str, torch.Tensor]:
    """{key: [N, *shape]}: row i is the sum of group i's task vectors."""
    if all(len(g) == 1 for g in groups):
        return stack_checkpoints([g[0] for g in groups], theta0_path, keys, device)
    rows = [sum_checkpoints(list(g), theta0_path, device=device).tensors for g in groups]
    return {key: torch.stack([row[key] for row in rows]) for key in keys}


class TangentComputer:
    """Runs f(x; theta_0) and J(x) v for a group of directions over a loader."""

    def __init__(self, module: nn.Module, theta0_path: Path, device: torch.device, vectors_per_pass: int | None = None):
        self.module = module.eval()
        self.theta0_path = Path(theta0_path)
        self.device = device
        self.vectors_per_pass = vectors_per_pass
        self.params0 = {k: v.detach() for k, v in module.named_parameters()}
        self.jvp_fn = select_jvp(module)
        self._vmap_ok = True
        # The last stacked directions: successive datasets ask for the same ones (the sum of all
        # tasks for addition, every task for the matrix), which are then read from disk once.
        self._stacked: tuple[tuple, dict[str, torch.Tensor]] | None = None

    def _stack(self, groups: dict[str, list[Path]], chunk: list[str]) -> dict[str, torch.Tensor]:
        key = tuple((name, tuple(str(p) for p in groups[name])) for name in chunk)
        if self._stacked is None or self._stacked[0] != key:
            self._stacked = None  # free the previous directions before reading the next
            self._stacked = (key, stack_directions([groups[n] for n in chunk], self.theta0_path, list(self.params0), self.device))
        return self._stacked[1]

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
    def compute(self, vectors: Mapping[str, Path | Sequence[Path]], loader: DataLoader) -> FeatureCache:
        """f0 and the tangent of each named direction (a checkpoint, or several summed) over the loader."""
        groups = {name: [paths] if isinstance(paths, (str, Path)) else list(paths) for name, paths in vectors.items()}
        names = list(groups)
        step = self.vectors_per_pass or max(len(names), 1)
        cache: FeatureCache | None = None
        for start in range(0, max(len(names), 1), step):
            chunk = names[start : start + step]
            stacked = self._stack(groups, chunk) if chunk else {}
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
                cache.tangents.update({n: stacked_tangents[i] for i, n in enumerate(chunk)})
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
        self._memory: dict[tuple[str, str, str], FeatureCache] = {}

    def _signature(self, direction: Direction) -> str:
        return json.dumps([[t, self.signatures[t]] for t in direction.tasks])

    def _base_digest(self, dataset: str, split: str, size: int) -> str:
        base = {**self.base_key, "dataset": dataset, "split": split, "n": size, "version": CACHE_VERSION}
        return hashlib.sha256(json.dumps(base, sort_keys=True, default=str).encode()).hexdigest()

    def _dir(self, dataset: str, split: str, suffix: str) -> Path:
        assert self.folder is not None
        return self.folder / f"{dataset}-{split}{suffix}"

    def get(self, dataset: str, split: str, loader_factory: Callable[[], DataLoader], size: int, suffix: str = "",
            directions: Iterable[Direction] = ()) -> FeatureCache:
        """The cache of (dataset, split) holding f0 and at least the tangents of `directions`."""
        key = (dataset, split, suffix)
        wanted = list(dict.fromkeys(directions))
        cache = self._memory.get(key)
        if cache is not None and all(d.name in cache.tangents for d in wanted):
            return cache
        digest = self._base_digest(dataset, split, size)
        cache = self._read(dataset, split, suffix, digest, wanted, cache)
        if cache is None or any(d.name not in cache.tangents for d in wanted):
            with self._building(dataset, split, suffix):
                # another evaluation may have built some while we waited: read again under the lock
                cache = self._read(dataset, split, suffix, digest, wanted, cache)
                missing = [d for d in wanted if cache is None or d.name not in cache.tangents]
                if cache is None or missing:
                    cache = self._compute(dataset, split, suffix, digest, loader_factory, cache, missing)
        self._memory[key] = cache
        return cache

    def _building(self, dataset: str, split: str, suffix: str) -> contextlib.AbstractContextManager:
        """One process builds a (dataset, split) at a time; the others wait for it and then read it."""
        if self.folder is None:
            return contextlib.nullcontext()
        folder = self._dir(dataset, split, suffix)
        return FileLock(folder.with_name(folder.name + ".lock"), what=f"tangent cache {folder}", wait_s=None)

    def groups(self, missing: Sequence[Direction], dataset: str) -> list[list[Direction]]:
        """The passes that compute `missing` on `dataset`, independent of what is cached already.
        Which directions share a batched JVP moves the last bits of float32 tangents (the kernels
        block by the batch), so a tangent must not depend on the order in which evaluations asked
        for them: a task's own tangent on its own data is computed alone, the other tasks' single
        tangents on a dataset in one fixed set (every other task, in order), every sum alone."""
        own = Direction.of([dataset])
        others = [Direction.of([t]) for t in sorted(self.checkpoints) if t != dataset]
        out: list[list[Direction]] = [[own]] if own in missing else []
        if any(d in others for d in missing):
            out.append(others)
        out += [[d] for d in missing if len(d.tasks) > 1]
        return out

    def _compute(self, dataset: str, split: str, suffix: str, digest: str, loader_factory: Callable[[], DataLoader],
                 cache: FeatureCache | None, missing: list[Direction]) -> FeatureCache:
        if cache is None:  # f0 from a plain forward pass, whichever tangents come first
            plain = self.computer.compute({}, loader_factory())
            cache = FeatureCache(plain.features0, plain.labels)
            self._write(dataset, split, suffix, FEATURES, {"features0": cache.features0, "labels": cache.labels}, {"base": digest})
        wanted = set(missing)
        for group in self.groups(missing, dataset):
            fresh = self.computer.compute({d.name: [self.checkpoints[t] for t in d.tasks] for d in group}, loader_factory())
            for d in group:
                if d not in wanted:  # computed for the fixed set only; the cached copy is the same
                    continue
                cache.tangents[d.name] = fresh.tangents[d.name]
                self._write(dataset, split, suffix, d.name, {"tangent": fresh.tangents[d.name]},
                            {"base": digest, "tasks": list(d.tasks), "signature": self._signature(d)})
        return cache

    def _load(self, path: Path, expected: Mapping[str, object]) -> dict[str, torch.Tensor] | None:
        """A stored file's tensors when it is intact and its metadata matches `expected`."""
        if not metadata_path(path).is_file() or not path.is_file():
            return None
        loaded = load_cached_weights(path, self.computer.device)
        if loaded is None:
            return None
        tensors, meta = loaded
        if meta.get("format") != CACHE_FORMAT or any(meta.get(k) != v for k, v in expected.items()):
            return None
        return tensors

    def _read(self, dataset: str, split: str, suffix: str, digest: str, wanted: list[Direction],
              cache: FeatureCache | None) -> FeatureCache | None:
        if self.folder is None:
            return cache
        folder = self._dir(dataset, split, suffix)
        if cache is None:
            stored = self._load(folder / f"{FEATURES}.safetensors", {"base": digest})
            if stored is None:
                return None
            cache = FeatureCache(stored["features0"], stored["labels"])
        for d in wanted:
            if d.name in cache.tangents:
                continue
            stored = self._load(folder / f"{d.name}.safetensors", {"base": digest, "signature": self._signature(d)})
            if stored is not None:
                cache.tangents[d.name] = stored["tangent"]
        return cache

    def _write(self, dataset: str, split: str, suffix: str, name: str, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        if self.folder is None:
            return
        path = self._dir(dataset, split, suffix) / f"{name}.safetensors"
        save_weights(path, tensors, {"format": CACHE_FORMAT, "version": CACHE_VERSION, "base_key": {**self.base_key, "dataset": dataset, "split": split}, **meta})
