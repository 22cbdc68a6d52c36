"""CLIP model factory, the image-encoder wrapper, zero-shot heads and linearisation."""
