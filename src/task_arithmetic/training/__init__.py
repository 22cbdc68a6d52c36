"""Fine-tuning engine: standard, linearised and tau-Jp-regularised training of the image encoder.

Entry point: `run_finetune(FinetuneConfig(...))` (what `python src/finetune.py` calls).
The loop (and with it open_clip) is imported on first use, so validating a config stays light.
"""

from __future__ import annotations

from typing import Any

from .config import FinetuneConfig, resolve_config

__all__ = ["FinetuneConfig", "FinetuneResult", "resolve_config", "run_finetune"]


def __getattr__(name: str) -> Any:
    if name in ("run_finetune", "FinetuneResult"):
        from . import loop

        return getattr(loop, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
