"""Task arithmetic on CLIP image encoders: fine-tuning, task vectors, merging, evaluation."""

import os as _os

# Weights and datasets are never fetched implicitly: offline, a missing download must fail at
# once with our message instead of retrying for a minute. TA_ALLOW_DOWNLOAD=1 opts in.
if _os.environ.get("TA_ALLOW_DOWNLOAD") != "1":
    _os.environ.setdefault("HF_HUB_OFFLINE", "1")

__version__ = "0.1.0"
