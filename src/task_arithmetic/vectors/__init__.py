"""Task vectors: arithmetic on weight differences, streaming sums from disk, run lookup."""

import importlib

# Resolved on first use: run lookup imports open_clip (seconds), which arithmetic and streaming
# sums never need.
_EXPORTS = {
    "TaskVector": "task_vector",
    "combine": "task_vector",
    "stack_checkpoints": "streaming",
    "sum_checkpoints": "streaming",
    "finetune_command": "runs",
    "finetuned_checkpoint": "runs",
    "locate_runs": "runs",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
