"""Task arithmetic on CLIP image encoders: fine-tuning, task vectors, merging, evaluation.

The library's entry points are importable from here (docs/api.md): `finetune`, `open_runs` (a
model's runs: theta_0, task vectors, accuracy, a merging pool, the evaluations), `TaskVector`,
`combine`, `ModelSpec`, `Layout`, `RunId`, `load_encoder`; merging algorithms live in
`task_arithmetic.merging`. Each name is imported on first use, so `import task_arithmetic` is instant.
"""

import importlib as _importlib
import os as _os

# Weights and datasets are never fetched implicitly: offline, a missing download must fail at
# once with our message instead of retrying for a minute. TA_ALLOW_DOWNLOAD=1 opts in.
if _os.environ.get("TA_ALLOW_DOWNLOAD") != "1":
    _os.environ.setdefault("HF_HUB_OFFLINE", "1")

__version__ = "0.1.0"

_EXPORTS = {
    "finetune": "api", "open_runs": "api", "Runs": "api",
    "TaskVector": "vectors.task_vector", "combine": "vectors.task_vector",
    "ModelSpec": "models.factory", "load_encoder": "models.encoder", "Layout": "paths",
    "RunId": "recipes", "EvaluatedRun": "recipes", "UserError": "errors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(_importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
