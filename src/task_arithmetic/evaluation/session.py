"""Everything an evaluation needs for one (model, fine-tuning recipe, task list).

Finds the runs, loads theta_0 once, builds heads and datasets lazily, and answers accuracy
queries for edits through the fastest valid evaluator: the tangent cache for linear and post-hoc
runs, batched in-memory weight edits for standard runs (many edits per data pass; `batched=False`
keeps one pass per edit and dataset). Answers are memoised per (edit, dataset, split), so
evaluations that share points (alpha = 0, single-task models, grid axes) compute them once.
Protocols announce the points they will read with `prefetch`, which is what lets the batched
evaluator group them; a point asked for without it is evaluated alone, by the same evaluator.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import torch
from torch import nn

from ..data.fingerprints import fingerprints_or_reason
from ..data.loaders import make_loader
from ..data.registry import control_for
from ..errors import UserError
from ..io import metadata_path, read_json
from ..models.factory import ModelSpec
from ..models.heads import ClassificationHead
from ..models.pretrained import task_head, zeroshot_encoder
from ..paths import Layout
from ..precision import autocast, resolve_precision, set_matmul_precision
from ..recipes import EvaluatedRun, Readout
from ..runtime import code_revision, pick_device
from ..vectors.runs import locate_runs
from ..vectors.task_vector import TaskVector, float_keys
from .accuracy import Metrics, accuracy_from_logits, collect_logits
from .batched import DEFAULT_MEMORY_MB, BatchedEvaluator, EditRequest
from .cached import CachedEvaluator
from .data import DataBank
from .direct import DirectEvaluator
from .edits import Edit
from .tangent_cache import TangentCacheStore, TangentComputer, file_signature

if TYPE_CHECKING:  # the merging package is only needed by the merging evaluation
    from ..merging.adamerging import TestTimeData
    from ..merging.modelpool.runs import RunModelPool

__all__ = ["EvalOptions", "EvalSession", "Metrics", "RunSelection", "default_control"]


@dataclass(frozen=True)
class EvalOptions:
    device: str = "auto"
    batch_size: int = 128
    num_workers: int = 0
    max_eval_samples: int | None = None
    use_cache: bool = True  # the linearity shortcut (linear / post-hoc; tau-Jp entries in every mode)
    disk_cache: bool = True
    vectors_per_pass: int | None = None
    batched: bool = True  # standard runs: many edits per data pass (False: one pass per edit, for comparison)
    batch_memory_mb: int = DEFAULT_MEMORY_MB  # budget for the edited weights and activations of one pass
    precision: str = "auto"  # fp32 | tf32 | bf16 | auto (bf16 on CUDA, fp32 on CPU): every forward pass and JVP
    decode_cache: bool = True  # images decoded once (data/decoded.py); the tensors are bit-identical either way


@dataclass(frozen=True)
class RunSelection:
    spec: ModelSpec
    layout: Layout
    data_location: Path
    evaluated: EvaluatedRun  # which runs, read out how
    tasks: tuple[str, ...]

    @property
    def linearized(self) -> bool:
        return self.evaluated.readout is Readout.LINEARIZED


class HeadBank(dict):
    """Heads built (or read from cache) the first time a dataset is evaluated."""

    def __init__(self, spec: ModelSpec, layout: Layout, data_location: Path, device: torch.device):
        super().__init__()
        self._args = (spec, layout, data_location, device)

    def __missing__(self, task: str) -> ClassificationHead:
        spec, layout, data_location, device = self._args
        head = task_head(spec, task, layout, data_location, device).eval()
        self[task] = head
        return head


class EvalSession:
    def __init__(self, selection: RunSelection, options: EvalOptions = EvalOptions()):
        if not selection.tasks:
            raise UserError("no tasks to evaluate; pass --tasks with a comma list or a benchmark name")
        self.selection = selection
        self.options = options
        spec, layout, run = selection.spec, selection.layout, selection.evaluated.run
        linearized = selection.linearized
        self.tasks = list(selection.tasks)
        self.device = pick_device(options.device)
        self.precision = resolve_precision(options.precision, self.device)
        set_matmul_precision(self.precision)
        self.checkpoints = locate_runs(spec, self.tasks, run, layout, selection.data_location)
        self.theta0_path = layout.zeroshot(spec.model_id)
        self.theta0 = zeroshot_encoder(spec, layout, self.device).eval()
        for p in self.theta0.parameters():
            p.requires_grad_(False)
        self.heads = HeadBank(spec, layout, selection.data_location, self.device)
        self.bank = DataBank(selection.data_location, self.theta0.val_preprocess, options.batch_size, options.num_workers, options.max_eval_samples,
                             options.decode_cache)
        self.direct = DirectEvaluator(self.theta0.visual, self.theta0_path, self.checkpoints, self.heads, self.bank, linearized, self.device)
        self.cached: CachedEvaluator | None = None
        if options.use_cache:
            computer = TangentComputer(self.theta0.visual, self.theta0_path, self.device, options.vectors_per_pass)
            folder = layout.results(spec.model_id, run.name, "tangent_cache").with_suffix("") if options.disk_cache else None
            base_key = {"model_id": spec.model_id, "theta0": file_signature(self.theta0_path), "max_samples": options.max_eval_samples}
            base_key["precision"] = self.precision.value
            self.cached = CachedEvaluator(TangentCacheStore(computer, self.checkpoints, folder, base_key), self.heads, self.bank)
        self.evaluator = self.cached if (self.cached is not None and linearized) else self.direct
        self.batched = BatchedEvaluator(self.direct, options.batch_memory_mb) if options.batched and not linearized else None
        # tau-Jp entries are JVPs at theta_0 in every mode, so the cache serves standard runs too.
        self.tangent_source = self.cached if self.cached is not None else self.direct
        self._metrics: dict[tuple, Metrics] = {}
        self._predictions: dict[tuple, torch.Tensor] = {}

    def autocast(self):
        """The session's precision around a whole evaluation (merging's own forward passes too)."""
        return autocast(self.precision, self.device)

    # queries --------------------------------------------------------------------------------
    def prefetch(self, queries: Iterable[tuple[Edit, str, str]]) -> None:
        """Evaluate these (edit, dataset, split) points together; later queries read the memo.

        The batched evaluator groups the edits; the tangent cache builds every tangent they read on
        a dataset in one pass; the direct evaluator has nothing to gain."""
        if self.batched is None:
            if self.evaluator is self.cached and self.cached is not None:
                with autocast(self.precision, self.device):
                    self.cached.prefetch(queries)
            return
        pending: dict[tuple, EditRequest] = {}
        for edit, dataset, split in queries:
            if (edit.key(), dataset, split) in self._metrics:
                continue
            pending.setdefault(edit.key(), EditRequest(edit, set())).needs.add((dataset, split))
        if not pending:
            return
        with autocast(self.precision, self.device):
            evaluated = self.batched.evaluate(pending.values())
        for key, (logits, labels) in evaluated.items():
            self._metrics[key] = accuracy_from_logits(logits, labels)
            self._predictions[key] = logits.argmax(dim=-1)

    def logits(self, edit: Edit, dataset: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        with autocast(self.precision, self.device):
            return self.evaluator.logits(edit, dataset, split)

    def predictions(self, edit: Edit, dataset: str, split: str) -> torch.Tensor:
        if self.batched is None:
            return self.logits(edit, dataset, split)[0].argmax(dim=-1)
        key = (edit.key(), dataset, split)
        self.prefetch([(edit, dataset, split)])
        return self._predictions[key]

    def metrics(self, edit: Edit, dataset: str, split: str) -> Metrics:
        key = (edit.key(), dataset, split)
        if key not in self._metrics:
            if self.batched is not None:
                self.prefetch([(edit, dataset, split)])
            else:
                self._metrics[key] = accuracy_from_logits(*self.logits(edit, dataset, split))
        return self._metrics[key]

    def accuracy(self, edit: Edit, dataset: str, split: str) -> float:
        return self.metrics(edit, dataset, split).accuracy

    def finetuned_accuracy(self, task: str, split: str) -> float:
        return self.accuracy(Edit.scaled([task], 1.0), task, split)

    def tangent_norm_mean(self, task: str, dataset: str, split: str) -> float:
        with autocast(self.precision, self.device):
            return self.tangent_source.tangent_norm_mean(task, dataset, split)

    def relative_norms(self) -> dict[str, float]:
        """||tau_t|| / ||theta_0|| per task: how far each fine-tuning moved the encoder (a linear
        run: its trainable copy), the scale CLIP's task vectors are compared on."""
        theta0 = self.theta0.weights()  # in memory: the file at theta0_path, loaded once
        base = {k: theta0[k].cpu() for k in float_keys(theta0)}
        size = TaskVector(base).norm()
        return {t: TaskVector.from_checkpoints(pretrained=base, finetuned=self.checkpoints[t]).norm() / size for t in self.tasks}

    # whole models (merges) --------------------------------------------------------------------
    def model_accuracy(self, model: nn.Module, dataset: str, split: str) -> float:
        """Accuracy of any weights of this encoder (a merged model), read out as this session's
        runs are (linearised around theta_0 for linear and post-hoc runs), on the session's data."""
        visual = getattr(model, "visual", model)
        embed = self.direct.embed_weights(visual.state_dict())
        return accuracy_from_logits(*collect_logits(embed, self.heads[dataset], self.bank.loader(dataset, split), self.device)).accuracy

    def model_pool(self) -> "RunModelPool":
        """This session's runs as a merging model pool, read out the session's way."""
        from ..merging.modelpool.runs import RunModelPool

        sel = self.selection
        return RunModelPool.of(sel.spec, sel.layout, sel.evaluated, self.tasks)

    def test_time_data(
        self, model: nn.Module, batch_size: int, num_workers: int = 0, seed: int = 0, split: str = "test", epochs: int | None = None
    ) -> "TestTimeData":
        """Unlabeled inputs for the merges that read data: shuffled batches of each task's `split`
        (AdaMerging the test part, endless; the data-based merges Val, `epochs` passes), with the
        session's sample cap, and its frozen head."""
        from ..merging.adamerging import TestTimeData, TestTimeTask
        from ..merging.taskpool.base import endless_inputs

        sel = self.selection
        tasks = {}
        for task in self.tasks:
            loader = make_loader(self.bank.dataset(task, split), batch_size, shuffle=True, seed=seed, num_workers=num_workers)
            # a head of its own: the session's were made under inference mode, which autograd refuses
            head = task_head(sel.spec, task, sel.layout, sel.data_location, self.device).float().requires_grad_(False)
            tasks[task] = TestTimeTask(head, endless_inputs(loader, epochs))
        return TestTimeData(features=lambda call, images: call(images).float(), tasks=tasks, device=self.device)

    # provenance -----------------------------------------------------------------------------
    def settings(self, **extra: Any) -> dict[str, Any]:
        sel, opt = self.selection, self.options
        vectors = {}
        for task, path in self.checkpoints.items():
            meta = read_json(metadata_path(path))
            vectors[task] = {
                "path": str(path),
                **{k: meta.get(k) for k in ("run", "mode", "reg", "variant", "seed", "steps", "code_revision", "data_fingerprints")},
                "precision": training_precision(meta),
                "config": meta.get("config"),
            }
        return {
            "model": sel.spec.name,
            "pretrained": sel.spec.pretrained,
            "model_id": sel.spec.model_id,
            "mode": sel.evaluated.run.mode.name,
            "reg": sel.evaluated.run.reg.name,
            "variant": sel.evaluated.run.variant,
            "tag": sel.evaluated.run.tag,
            "readout": sel.evaluated.readout.value,
            "run": sel.evaluated.name,
            "source_run": sel.evaluated.run.name,
            "tasks": self.tasks,
            "data_location": str(sel.data_location),
            "checkpoint_root": str(sel.layout.checkpoint_root),
            "theta0": str(self.theta0_path),
            "device": str(self.device),
            "precision": self.precision.value,
            "batch_size": opt.batch_size,
            "max_eval_samples": opt.max_eval_samples,
            "evaluator": "tangent_cache" if self.evaluator is self.cached else ("batched" if self.batched is not None else "direct"),
            "tau_jp_source": "tangent_cache" if self.tangent_source is self.cached else "direct",
            "code_revision": code_revision(),
            "vectors": vectors,
            # the examples each task's train/Val/test parts held here (data/fingerprints.py)
            "data_fingerprints": fingerprints_or_reason([*self.tasks, *filter(None, [default_control(self.tasks)])], sel.data_location),
            **extra,
        }


def training_precision(metadata: dict[str, Any]) -> str:
    """The precision a fine-tuned model was trained in; runs saved before the setting existed were fp32
    (and a model this suite did not train, an imported one, is taken as it was published: "unknown")."""
    if "precision" in metadata:
        return str(metadata["precision"])
    return "fp32" if isinstance(metadata.get("config"), dict) else "unknown"


def default_control(tasks: Sequence[str]) -> str | None:
    """The control task of the tasks' benchmark (negation, extra tau-Jp column); for tasks from
    several home benchmarks, that of the smallest suite holding them all (e.g. real14)."""
    return control_for(tasks)
