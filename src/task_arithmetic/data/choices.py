"""The decode cache's flag values (data/decoded.py), importable without torch: every script's
parser shows them, and --help never imports torch (lazy.py)."""

DECODE_CACHE_CHOICES = ("on", "off")  # --decode-cache: images decoded once into <data-location>/decoded/, or every pass
TRAIN_CROPS = ("pil", "cache")  # --train-crop: RandomResizedCrop on decoded images, or on cached records
