"""Fine-tuning engine: standard, linearised and regularised training of the image encoder.

Entry point: `run_finetune(FinetuneConfig(...))` (what `python src/finetune.py` calls). Every name
is imported on first use: the recipes (recipes/) import training.data, and the loop imports
open_clip, so importing this package stays light and cycle-free.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "FinetuneConfig": "config",
    "TrainingPlan": "config",
    "resolve_config": "config",
    "run_finetune": "loop",
    "FinetuneResult": "loop",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
