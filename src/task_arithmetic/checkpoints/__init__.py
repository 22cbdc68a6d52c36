"""Public checkpoints in and out: HF CLIP and open_clip files to the suite's format, and back."""
