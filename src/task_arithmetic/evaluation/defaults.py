"""The evaluators' operational defaults, importable without torch: src/evaluate.py's --help shows them."""

from __future__ import annotations

DEFAULT_MEMORY_MB = 1024  # memory for the edits the batched evaluator runs in one pass over the data
