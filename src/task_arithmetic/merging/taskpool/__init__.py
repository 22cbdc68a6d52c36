"""Task pools: how a merged model is evaluated."""

from .._lazy import lazy_exports

_EXPORTS = {
    "BaseTaskPool": "base",
    "ClassificationTaskPool": "classification",
    "CLIPVisionModelTaskPool": "hf_clip",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
