"""Public checkpoints in and out: HF CLIP and open_clip files to the suite's format, and back."""

# A fine-tuned model this far from theta_0 (relative L2 distance of the image tower) was not
# fine-tuned from it: two independent weight sets of similar norm are ~1.4 apart, a fine-tuning
# run at CLIP's learning rates a small fraction of that. (Here, not in importing.py: the import
# script's --help shows it without importing torch.)
DEFAULT_MAX_DISTANCE = 0.5
