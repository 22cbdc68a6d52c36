"""AdaMerging (Yang et al., ICLR 2024): task arithmetic whose coefficients are learned at test time.

    task-wise:  theta   = theta_0   + sum_t lambda_t   tau_t
    layer-wise: theta_l = theta_0,l + sum_t lambda_t,l tau_t,l   (one lambda per parameter tensor,
                                                                   as FusionBench counts "layers")

lambda starts at `init_values` and is trained with Adam, without labels, to minimise the Shannon
entropy of the merged model's predictions on unlabeled test inputs of every task, each through
its task's frozen zero-shot head (the suite's heads, from the task pool). Only lambda has a
gradient: the merged weights are a function of lambda passed to the model by
torch.func.functional_call, so memory is theta_0 + the T task vectors + one merged copy.

Only parameters are merged this way; buffers keep theta_0's values. Names and defaults are
FusionBench's (adamerging/clip.yaml: lr 1e-3, init_values 0.3, max_steps 1000, batch_size 16).
"""

from __future__ import annotations

import copy
import io
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, cast

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from ..io import atomic_write_bytes
from .base import MergeAlgorithm, TaskVectorStream, finite_number, integer, write_back
from .modelpool.base import PRETRAINED, BaseModelPool, as_model_pool

# (call the model with these arguments, images) -> features fed to a task's head.
FeatureFn = Callable[[Callable[..., Any], torch.Tensor], torch.Tensor]
# merged parameters -> a function calling the (merged) model.
ModelCall = Callable[[dict[str, torch.Tensor]], Callable[..., Any]]

GRANULARITIES = {
    "clip_task_wise_adamerging": "task_wise",
    "clip_layer_wise_adamerging": "layer_wise",
    "task_wise_adamerging": "task_wise",
    "layer_wise_adamerging": "layer_wise",
    "task_wise": "task_wise",
    "layer_wise": "layer_wise",
}


@dataclass
class TestTimeTask:
    """One task's frozen head and an endless iterator of unlabeled input batches."""

    head: nn.Module
    batches: Iterator[torch.Tensor]

    __test__ = False  # not a pytest class despite the name


@dataclass
class TestTimeData:
    """What entropy minimisation sees: how features come out of the model, and the tasks."""

    features: FeatureFn
    tasks: dict[str, TestTimeTask]
    device: torch.device

    __test__ = False  # not a pytest class despite the name


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean Shannon entropy (nats) of softmax(logits) over the batch."""
    log_p = torch.log_softmax(logits.float(), dim=-1)
    return -(log_p.exp() * log_p).sum(-1).mean()


class AdaMergingAlgorithm(MergeAlgorithm):
    """FusionBench's `method=adamerging`: `name` chooses task-wise or layer-wise coefficients.

    `weights` (a list, nested list, or a .pt/.npy file of lambda) skips the test-time training.
    The unlabeled inputs and heads come from the task pool (`attach_taskpool`, done by
    src/merge.py) or from `run(models, test_time_data=...)`.
    """

    # The subclasses fix the granularity: FusionBench's class names.
    default_name: ClassVar[str] = "clip_layer_wise_adamerging"
    fixed_granularity: ClassVar[str | None] = None

    def __init__(
        self,
        name: str | None = None,
        weights: Any = None,
        optimizer: str = "adam",
        lr: float = 1e-3,
        init_values: float = 0.3,
        clamp_weights: bool = False,
        tie_weights: bool = True,
        strict: bool = False,
        devices: int = 1,
        batch_size: int = 16,
        num_workers: int = 0,
        max_steps: int = 1000,
        fast_dev_run: bool = False,
        save_merging_weights: str | None = None,
        cache_dir: str | None = None,
        seed: int = 0,
        inplace: bool = False,
        **options: Any,
    ):
        super().__init__(inplace, **options)
        name = self.default_name if name is None else str(name)
        if name not in GRANULARITIES:
            raise UserError(f"unknown AdaMerging name '{name}'; valid: {', '.join(GRANULARITIES)}")
        if self.fixed_granularity and GRANULARITIES[name] != self.fixed_granularity:
            raise UserError(f"{type(self).__name__} is {self.fixed_granularity.replace('_', '-')}; name '{name}' asks for the other granularity")
        if str(optimizer).lower() != "adam":
            raise UserError(f"optimizer '{optimizer}' is not supported; AdaMerging uses optimizer=adam")
        if integer("devices", devices) != 1:
            raise UserError(f"devices={devices}: AdaMerging here runs on one device; set method.devices=1 (the device comes from the task pool)")
        self.name = str(name)
        self.granularity = GRANULARITIES[self.name]
        self.weights = weights
        self.optimizer = "adam"
        self.lr = finite_number("lr", lr)
        self.init_values = finite_number("init_values", init_values)
        self.clamp_weights = bool(clamp_weights)
        self.tie_weights = bool(tie_weights)
        self.strict = bool(strict)
        self.batch_size = integer("batch_size", batch_size)
        self.num_workers = integer("num_workers", num_workers)
        self.max_steps = integer("max_steps", max_steps)
        if self.lr <= 0 or self.batch_size < 1 or self.max_steps < 0:
            raise UserError(f"AdaMerging needs lr > 0, batch_size >= 1 and max_steps >= 0; got lr={lr}, batch_size={batch_size}, max_steps={max_steps}")
        self.fast_dev_run = bool(fast_dev_run)
        self.save_merging_weights = str(save_merging_weights) if save_merging_weights else None
        # FusionBench caches its heads there; the suite's task pools cache their own heads.
        self.cache_dir = cache_dir
        self.seed = integer("seed", seed)
        self._taskpool: Any = None
        self.merging_weights: list | None = None  # the learned lambda, after run()

    def settings(self) -> dict[str, Any]:
        return {k: v for k, v in super().settings().items() if k != "merging_weights"}

    def attach_taskpool(self, taskpool: Any) -> None:
        self._taskpool = taskpool

    def merge(self, stream: TaskVectorStream) -> dict[str, torch.Tensor]:  # pragma: no cover - run() is overridden
        raise NotImplementedError

    # -- the merge -------------------------------------------------------------------------

    def run(self, modelpool: BaseModelPool | Mapping[str, nn.Module] | Sequence[nn.Module], inplace: bool | None = None, test_time_data: TestTimeData | None = None) -> nn.Module:
        pool = as_model_pool(modelpool)
        if not pool.has_pretrained:
            raise UserError(f"AdaMerging needs the pre-trained model under '{PRETRAINED}' (task vectors are differences from it)")
        names = list(pool.model_names)
        if not names:
            raise UserError("nothing to merge: add at least one fine-tuned model")
        anchor = pool.load_model(PRETRAINED)
        learned = self.weights is None
        data = None
        if learned:
            data = test_time_data or self._test_time_data(anchor)
            device = data.device
        else:
            device = next(anchor.parameters()).device
        model = anchor if pool.fresh_models else copy.deepcopy(anchor)
        model.to(device).requires_grad_(False)
        base = {k: p.detach() for k, p in model.named_parameters()}
        taus = self._task_vectors(pool, names, model, list(base))
        lam = self._initial_weights(len(names), len(base), device)
        if learned:
            assert data is not None  # set above when learned
            bind = pool.functional_model(model, self.tie_weights, self.strict)
            lam = self.train(lam, base, taus, bind, data)
        self.merging_weights = lam.detach().cpu().tolist()
        if self.save_merging_weights:
            self._save(lam)
        with torch.no_grad():
            merged = merged_parameters(self._effective(lam), base, taus)
        in_place = self.inplace if inplace is None else bool(inplace)
        target = anchor if in_place else model
        write_back(target, {k: v.detach() for k, v in merged.items()})
        return target

    def _test_time_data(self, anchor: nn.Module) -> TestTimeData:
        if self._taskpool is None or not hasattr(self._taskpool, "test_time_data"):
            raise UserError(
                "AdaMerging learns its coefficients on the task pool's unlabeled test inputs: give a taskpool "
                "(e.g. taskpool=embedded/all), or fixed coefficients with method.weights=[...]"
            )
        return self._taskpool.test_time_data(anchor, self.batch_size, self.num_workers, self.seed)

    def _task_vectors(self, pool: BaseModelPool, names: list[str], model: nn.Module, keys: list[str]) -> dict[str, torch.Tensor]:
        """{key: (T, *shape)} built one fine-tuned model at a time."""
        stream = TaskVectorStream(pool, model.state_dict())
        params = dict(model.named_parameters())
        taus = {k: torch.empty((len(names), *params[k].shape), dtype=params[k].dtype, device=params[k].device) for k in keys}
        for row, name in enumerate(names):
            for key, tau in stream.task_vector(name, keys):
                taus[key][row].copy_(tau)
        return taus

    def _initial_weights(self, n_tasks: int, n_layers: int, device: torch.device) -> torch.Tensor:
        shape = (n_tasks,) if self.granularity == "task_wise" else (n_tasks, n_layers)
        if self.weights is None:
            return torch.full(shape, self.init_values, device=device)
        values = self.weights
        if isinstance(values, (str, Path)):
            values = _read_weights_file(Path(values))
        lam = torch.as_tensor(np.asarray(values, dtype=np.float64), dtype=torch.float32)
        if tuple(lam.shape) != shape or not torch.isfinite(lam).all():
            raise UserError(f"method.weights must be finite with shape {list(shape)} ({self.granularity}, {n_tasks} models), got shape {list(lam.shape)}")
        return lam.to(device)

    def _effective(self, lam: torch.Tensor) -> torch.Tensor:
        return lam.clamp(0, 1) if self.clamp_weights else lam

    def train(self, lam: torch.Tensor, base: dict[str, torch.Tensor], taus: dict[str, torch.Tensor], bind: ModelCall, data: TestTimeData) -> torch.Tensor:
        lam = lam.clone().requires_grad_(True)
        optimizer = torch.optim.Adam([lam], lr=self.lr)
        steps = min(self.max_steps, 1) if self.fast_dev_run else self.max_steps
        for _ in range(steps):
            call = bind(merged_parameters(self._effective(lam), base, taus))
            loss = cast(torch.Tensor, sum(entropy(task.head(data.features(call, next(task.batches).to(data.device)))) for task in data.tasks.values()))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return lam.detach()

    def _save(self, lam: torch.Tensor) -> None:
        assert self.save_merging_weights is not None  # run() saves only when a path is set
        path = Path(self.save_merging_weights)
        buffer = io.BytesIO()  # serialised first, then written through the suite's one writer (atomic, one-line failures)
        if path.suffix == ".npy":
            np.save(buffer, lam.detach().cpu().numpy())
        else:
            torch.save(lam.detach().cpu(), buffer)
        atomic_write_bytes(path, buffer.getvalue())


def merged_parameters(lam: torch.Tensor, base: dict[str, torch.Tensor], taus: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """theta_0 + sum_t lambda_t tau_t per key; lam is (T,) or (T, n_keys) in `base`'s key order."""
    merged = {}
    for index, (key, theta0) in enumerate(base.items()):
        coefficients = lam if lam.ndim == 1 else lam[:, index]
        merged[key] = theta0 + torch.tensordot(coefficients.to(taus[key].dtype), taus[key], dims=1)
    return merged


def _read_weights_file(path: Path) -> Any:
    if not path.is_file():
        raise UserError(f"merging weights file {path} does not exist; fix method.weights")
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    try:
        return torch.load(path, map_location="cpu", weights_only=True).numpy()
    except Exception as err:
        raise UserError(f"cannot read merging weights from {path} ({err}); give a .pt tensor or .npy array") from err


class TaskWiseAdaMergingAlgorithm(AdaMergingAlgorithm):
    default_name = "clip_task_wise_adamerging"
    fixed_granularity = "task_wise"


class LayerWiseAdaMergingAlgorithm(AdaMergingAlgorithm):
    default_name = "clip_layer_wise_adamerging"
    fixed_granularity = "layer_wise"


# FusionBench's CLIP classes: the CLIP part (heads, test inputs) is the task pool's job here.
class CLIPTaskWiseAdaMergingAlgorithm(TaskWiseAdaMergingAlgorithm):
    pass


class CLIPLayerWiseAdaMergingAlgorithm(LayerWiseAdaMergingAlgorithm):
    pass
