"""Rendering styles: how the pretraining corpus and the downstream tasks look, side by side.

The gap between the two columns is the embedded world's counterpart of the gap between CLIP's
web pretraining and the eight benchmark datasets: the same concepts, shown differently. Pretraining
images are cleaner, larger, more upright and more frontal; the tasks add clutter, blur, noise,
poor light, haze, rotation, warping and perspective.
"""

from __future__ import annotations

import numpy as np

from .families.aerial import AerialStyle
from .families.digits import DigitStyle
from .families.scenes import SceneStyle
from .families.shapes import ShapeStyle
from .families.signs import SignStyle
from .families.textures import TextureStyle

# Background probabilities over (plain, gradient, noisy, cluttered). Pretraining images are
# "iconic" (large, centred, mostly plain): a tiny ViT trained from scratch for about a minute
# learns shapes from those, but hardly from cluttered, off-centre ones.
_ICONIC_BG = (0.6, 0.25, 0.15, 0.0)
_BUSY_BG = (0.2, 0.3, 0.3, 0.2)

PRETRAIN_DIGITS = DigitStyle(
    font_probs=(0.5, 0.5), scale=(0.65, 0.85), max_rotation=0.1, max_offset=0.06, background_probs=_ICONIC_BG,
    neighbours=0.0, clutter=0, noise=0.01, blur=0.3, wobble=0.06,
)
STREET_DIGITS = DigitStyle(
    font_probs=(0.8, 0.2), scale=(0.55, 0.75), max_rotation=0.2, max_offset=0.08, background_probs=(0.3, 0.3, 0.25, 0.15),
    neighbours=0.5, clutter=2, noise=0.03, blur=0.6, wobble=0.05,
)

PRETRAIN_SHAPES = ShapeStyle(
    scale=(0.65, 0.9), max_rotation=0.15, max_offset=0.06, outline_prob=0.15, background_probs=_ICONIC_BG,
    clutter=0, noise=0.01, blur=0.3,
)
CONTROL_SHAPES = ShapeStyle(
    scale=(0.55, 0.85), max_rotation=0.2, max_offset=0.1, outline_prob=0.2, background_probs=(0.4, 0.3, 0.2, 0.1),
    clutter=2, noise=0.03, blur=0.5,
)

PRETRAIN_SIGNS = SignStyle(
    scale=(0.75, 0.95), max_rotation=0.05, max_squash=0.05, max_offset=0.04, background_probs=_ICONIC_BG,
    clutter=0, light=(0.9, 1.1), noise=0.01, blur=0.2,
)
STREET_SIGNS = SignStyle(
    scale=(0.55, 0.85), max_rotation=0.2, max_squash=0.35, max_offset=0.12, background_probs=_BUSY_BG,
    clutter=3, light=(0.45, 1.1), noise=0.04, blur=0.7,
)

PRETRAIN_TEXTURES = TextureStyle(frequency=(1.5, 3.0), max_rotation=np.pi, warp=(0.0, 0.05), contrast=(0.85, 1.0), noise=0.01, blur=0.2)
TASK_TEXTURES = TextureStyle(frequency=(1.2, 2.8), max_rotation=np.pi, warp=(0.05, 0.2), contrast=(0.65, 1.0), noise=0.03, blur=0.4)

PRETRAIN_AERIAL = AerialStyle(zoom=(0.85, 1.15), haze=(0.0, 0.1), colour_drift=0.05, noise=0.01, blur=0.2)
TASK_AERIAL = AerialStyle(zoom=(0.5, 1.6), haze=(0.15, 0.5), colour_drift=0.25, noise=0.05, blur=0.8, desaturate=(0.0, 0.6))

PRETRAIN_SCENES = SceneStyle(horizon=(-0.1, 0.2), colour_drift=0.05, clutter=0.1, noise=0.01, blur=0.2)
TASK_SCENES = SceneStyle(horizon=(-0.35, 0.4), colour_drift=0.3, clutter=0.5, noise=0.05, blur=0.8, desaturate=(0.3, 0.9))


# Variants for the 12-task benchmark ("embedded12"): the same six families shown another way, as
# the 20-task benchmark adds FashionMNIST, KMNIST and EMNIST beside MNIST. Each differs from its
# sibling task in one or two nameable ways.
PRINTED_DIGITS = DigitStyle(
    font_probs=(1.0, 0.0), scale=(0.6, 0.8), max_rotation=0.35, max_offset=0.12, background_probs=(0.1, 0.3, 0.4, 0.2),
    neighbours=0.0, clutter=3, noise=0.05, blur=0.5, wobble=0.0,
)
SKETCHED_DIGITS = DigitStyle(
    font_probs=(0.0, 1.0), scale=(0.55, 0.8), max_rotation=0.25, max_offset=0.1, background_probs=(0.5, 0.3, 0.2, 0.0),
    neighbours=0.0, clutter=0, noise=0.03, blur=0.4, wobble=0.12,
)
NIGHT_SIGNS = SignStyle(
    scale=(0.6, 0.9), max_rotation=0.15, max_squash=0.2, max_offset=0.1, background_probs=(0.4, 0.3, 0.3, 0.0),
    clutter=1, light=(0.3, 0.6), noise=0.06, blur=0.9,
)
FINE_TEXTURES = TextureStyle(frequency=(3.0, 5.0), max_rotation=np.pi, warp=(0.0, 0.1), contrast=(0.5, 0.9), noise=0.04, blur=0.3)
HAZY_AERIAL = AerialStyle(zoom=(0.4, 0.9), haze=(0.3, 0.55), colour_drift=0.15, noise=0.04, blur=0.6, desaturate=(0.2, 0.5))
DUSK_SCENES = SceneStyle(horizon=(0.1, 0.5), colour_drift=0.5, clutter=0.3, noise=0.06, blur=0.6, desaturate=(0.5, 1.0))
