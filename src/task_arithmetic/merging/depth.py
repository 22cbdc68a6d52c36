"""Which transformer block a state-dict entry belongs to, read from its key: the first `.<n>.`
component (open_clip's `transformer.resblocks.<n>.`, HF CLIP's `encoder.layers.<n>.`). LiNeS scales
by that depth; CART low-ranks the 2-D weights inside blocks."""

from __future__ import annotations

import re
from collections.abc import Iterable

_BLOCK = re.compile(r"\.(\d+)\.")


def block_index(key: str) -> int | None:
    """The block number in `key`, or None for entries outside the blocks (embeddings, final norm)."""
    match = _BLOCK.search(key)
    return int(match.group(1)) if match else None


def block_count(keys: Iterable[str]) -> int:
    """Number of blocks: one more than the largest block number (0 when no key is in a block)."""
    indices = [i for i in map(block_index, keys) if i is not None]
    return max(indices) + 1 if indices else 0
