"""Model pools: where the models to merge come from."""

from .._lazy import lazy_exports

_EXPORTS = {
    "PRETRAINED": "base",
    "BaseModelPool": "base",
    "DictModelPool": "base",
    "as_model_pool": "base",
    "RunModelPool": "runs",
    "OpenCLIPVisionModelPool": "open_clip_files",
    "CLIPVisionModelPool": "hf_clip",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
