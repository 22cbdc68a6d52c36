"""Model pools: named models, loaded only when asked for, FusionBench-style.

'_pretrained_' names theta_0; every other name is a fine-tuned model. `load_state(name)` may
return a lazy mapping (reading one tensor per access) so merging can stream from disk.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ...errors import UserError

PRETRAINED = "_pretrained_"


class BaseModelPool(ABC):
    # True when load_model returns a module nobody else holds (loaded from disk), so a merge may
    # write into it instead of copying it.
    fresh_models: bool = True

    @property
    @abstractmethod
    def all_model_names(self) -> list[str]:
        """Every name in the pool, '_pretrained_' included."""

    @abstractmethod
    def load_model(self, name: str) -> nn.Module:
        """The module called `name`."""

    @property
    def model_names(self) -> list[str]:
        """The fine-tuned models (every name but '_pretrained_'), in pool order."""
        return [n for n in self.all_model_names if n != PRETRAINED]

    @property
    def has_pretrained(self) -> bool:
        return PRETRAINED in self.all_model_names

    def load_pretrained_model(self) -> nn.Module:
        return self.load_model(PRETRAINED)

    def load_state(self, name: str) -> Mapping[str, torch.Tensor]:
        """The state dict of `name`; file-backed pools override this to read lazily."""
        return self.load_model(name).state_dict()

    def check_available(self) -> None:
        """Raise one UserError naming every model that cannot be loaded (before any work starts)."""

    def evaluation_model(self, merged: nn.Module) -> nn.Module:
        """The module to evaluate for merged weights (linearised runs wrap them around theta_0)."""
        return merged

    def describe(self) -> dict[str, Any]:
        return {"type": type(self).__name__, "models": self.all_model_names}

    def check_name(self, name: str) -> None:
        if name not in self.all_model_names:
            raise UserError(f"no model '{name}' in the pool; valid names: {', '.join(self.all_model_names)}")

    def __len__(self) -> int:
        return len(self.all_model_names)

    def __contains__(self, name: object) -> bool:
        return name in self.all_model_names


class DictModelPool(BaseModelPool):
    """A plain dict of modules already in memory; they belong to the caller and are never modified."""

    fresh_models = False

    def __init__(self, models: Mapping[str, nn.Module]):
        bad = [k for k, v in models.items() if not isinstance(v, nn.Module)]
        if bad:
            raise UserError(f"model '{bad[0]}' is a {type(models[bad[0]]).__name__}, not an nn.Module; pass modules (or a model pool)")
        self.models = dict(models)

    @property
    def all_model_names(self) -> list[str]:
        return list(self.models)

    def load_model(self, name: str) -> nn.Module:
        self.check_name(name)
        return self.models[name]


def as_model_pool(models: BaseModelPool | Mapping[str, nn.Module]) -> BaseModelPool:
    if isinstance(models, BaseModelPool):
        return models
    if isinstance(models, Mapping):
        return DictModelPool(models)
    raise UserError(f"cannot merge a {type(models).__name__}; pass a dict of nn.Module with '{PRETRAINED}' or a model pool")
