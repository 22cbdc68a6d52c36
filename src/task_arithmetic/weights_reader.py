"""The suite's one safetensors reader: a lazy mapping that reads one tensor per access.

Files are read with plain positioned reads instead of a memory map: mapped pages of a whole
checkpoint would count as resident memory while a merge or a streamed sum walks through it,
which is exactly the cost reading tensor by tensor is meant to avoid.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch

from .errors import UserError
from .state_dicts import shape_of

_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


class SafetensorsReader(Mapping):
    """A read-only mapping key -> tensor over a .safetensors file; each access reads that tensor only."""

    def __init__(self, path: Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"weights file {self.path} does not exist")
        try:
            with open(self.path, "rb") as handle:
                header_len = int.from_bytes(handle.read(8), "little")
                header = json.loads(handle.read(header_len))
        except (OSError, ValueError, MemoryError) as err:
            raise UserError(f"cannot read weights file {self.path} ({err}); it must be a .safetensors file") from err
        self.file_metadata: dict[str, str] = header.pop("__metadata__", None) or {}
        self._data_start = 8 + header_len
        self._entries: dict[str, tuple[torch.dtype, tuple[int, ...], int, int]] = {}
        for key, entry in header.items():
            if entry.get("dtype") not in _DTYPES:
                raise UserError(f"{self.path}: tensor {key} has unsupported dtype {entry.get('dtype')}")
            start, end = entry["data_offsets"]
            self._entries[key] = (_DTYPES[entry["dtype"]], tuple(entry["shape"]), start, end)

    def shape_of(self, key: str) -> tuple[int, ...]:
        return self._entries[key][1]

    def dtype_of(self, key: str) -> torch.dtype:
        return self._entries[key][0]

    def float_keys(self) -> list[str]:
        """Keys of floating tensors (integer buffers have no direction in weight space)."""
        return [k for k, (dtype, *_) in self._entries.items() if dtype.is_floating_point]

    def __getitem__(self, key: str) -> torch.Tensor:
        dtype, shape, start, end = self._entries[key]
        if end == start:
            return torch.empty(shape, dtype=dtype)
        buffer = bytearray(end - start)
        with open(self.path, "rb") as handle:
            handle.seek(self._data_start + start)
            if handle.readinto(buffer) != len(buffer):
                raise UserError(f"weights file {self.path} is truncated; re-create it")
        return torch.frombuffer(buffer, dtype=dtype).reshape(shape)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


class KeyView(Mapping):
    """The entries of a mapping whose keys start with `strip`, renamed to `add` + the rest.

    KeyView(clip_file, strip="visual.") is a CLIP file's visual tower; KeyView(tower, add="visual.")
    is the same tower under ImageEncoder's key names.
    """

    def __init__(self, inner: Mapping, strip: str = "", add: str = ""):
        self.inner = inner
        self._names = {add + k[len(strip) :]: k for k in inner if k.startswith(strip)}

    def shape_of(self, key: str) -> tuple[int, ...]:
        return shape_of(self.inner, self._names[key])

    def __getitem__(self, key: str) -> torch.Tensor:
        return self.inner[self._names[key]]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)
