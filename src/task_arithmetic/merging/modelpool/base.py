"""Model pools: named models, loaded only when asked for, FusionBench-style.

'_pretrained_' names theta_0; names of the form `_x_` (FusionBench's special models, e.g.
'_merged_') are never merged as tasks; every other name is a fine-tuned model. `load_state(name)`
may return a lazy mapping (reading one tensor per access) so merging can stream from disk.

`BaseModelPool(models)` holds modules already in memory (a dict, or a list named "0", "1", ...);
file-backed pools subclass it and override `all_model_names` and `load_model`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ...errors import UserError

PRETRAINED = "_pretrained_"
MERGED = "_merged_"


def is_special_model(name: str) -> bool:
    """FusionBench's rule: `_name_` entries (pre-trained, merged, ...) are not task models."""
    return len(name) > 1 and name.startswith("_") and name.endswith("_")


class BaseModelPool:
    # True when load_model returns a module nobody else holds (loaded from disk), so a merge may
    # write into it instead of copying it.
    fresh_models: bool = True

    def __init__(self, models: Mapping[str, nn.Module] | Sequence[nn.Module]):
        if isinstance(models, Sequence) and not isinstance(models, str):
            models = {str(i): model for i, model in enumerate(models)}
        if not isinstance(models, Mapping):
            raise UserError(f"a model pool needs a dict or list of nn.Module, got {type(models).__name__}")
        bad = [k for k, v in models.items() if not isinstance(v, nn.Module)]
        if bad:
            raise UserError(f"model '{bad[0]}' is a {type(models[bad[0]]).__name__}, not an nn.Module; pass modules (or a model pool)")
        # Modules here; the file-backed pools keep their sources (paths, hub ids) under this name, as FusionBench's do.
        self.models: dict[str, Any] = {str(k): v for k, v in models.items()}
        # The caller's modules: never written into unless asked (inplace=True).
        self.fresh_models = False

    @property
    def all_model_names(self) -> list[str]:
        """Every name in the pool, '_pretrained_' and other special names included."""
        return list(self.models)

    def load_model(self, name: str) -> nn.Module:
        """The module called `name`."""
        self.check_name(name)
        return self.models[name]

    @property
    def model_names(self) -> list[str]:
        """The fine-tuned models (every name but the special `_x_` ones), in pool order."""
        return [n for n in self.all_model_names if not is_special_model(n)]

    @property
    def has_pretrained(self) -> bool:
        return PRETRAINED in self.all_model_names

    @property
    def has_merged(self) -> bool:
        return MERGED in self.all_model_names

    def load_pretrained_model(self) -> nn.Module:
        return self.load_model(PRETRAINED)

    def load_state(self, name: str) -> Mapping[str, torch.Tensor]:
        """The state dict of `name`; file-backed pools override this to read lazily."""
        return self.load_model(name).state_dict()

    def check_available(self) -> None:
        """Raise one UserError naming every model that cannot be loaded (before any work starts)."""

    @property
    def linearized(self) -> bool:
        """True when merges are evaluated as the linearised model around theta_0 (the data-based
        merges then read theta_0's activations)."""
        return False

    def evaluation_model(self, merged: nn.Module) -> nn.Module:
        """The module to evaluate for merged weights (linearised runs wrap them around theta_0)."""
        return merged

    def functional_model(self, model: nn.Module, tie_weights: bool = True, strict: bool = False):
        """params -> a function calling `model` with those parameters, as evaluation_model would run
        merged weights (AdaMerging differentiates through it); the plain model by default."""
        from torch.func import functional_call

        def bind(params: dict[str, torch.Tensor]):
            return lambda *args, **kwargs: functional_call(model, params, args, kwargs, tie_weights=tie_weights, strict=strict)

        return bind

    def describe(self) -> dict[str, Any]:
        return {"type": type(self).__name__, "models": self.all_model_names}

    def check_name(self, name: str) -> None:
        if name not in self.all_model_names:
            raise UserError(f"no model '{name}' in the pool; valid names: {', '.join(self.all_model_names)}")

    def __len__(self) -> int:
        """FusionBench's count: the task models only, without '_pretrained_' or '_merged_'."""
        return len(self.model_names)

    def __contains__(self, name: object) -> bool:
        return name in self.all_model_names


class DictModelPool(BaseModelPool):
    """A plain dict of modules already in memory (the suite's earlier name for BaseModelPool(models))."""


def as_model_pool(models: BaseModelPool | Mapping[str, nn.Module] | Sequence[nn.Module]) -> BaseModelPool:
    if isinstance(models, BaseModelPool):
        return models
    if isinstance(models, (Mapping, list, tuple)):
        return BaseModelPool(models)
    raise UserError(
        f"cannot merge a {type(models).__name__}; pass a dict of nn.Module (with '{PRETRAINED}'), a list of modules or a model pool"
    )
