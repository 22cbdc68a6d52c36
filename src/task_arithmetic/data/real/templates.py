"""Prompt templates of each task: the ones OpenAI published with CLIP and the field reuses
(counts per protocol.md). Format strings with one "{}" for the class name."""

CARS = (
    "a photo of a {}.",
    "a photo of the {}.",
    "a photo of my {}.",
    "i love my {}!",
    "a photo of my dirty {}.",
    "a photo of my clean {}.",
    "a photo of my new {}.",
    "a photo of my old {}.",
)

DTD = (
    "a photo of a {} texture.",
    "a photo of a {} pattern.",
    "a photo of a {} thing.",
    "a photo of a {} object.",
    "a photo of the {} texture.",
    "a photo of the {} pattern.",
    "a photo of the {} thing.",
    "a photo of the {} object.",
)

EUROSAT = (
    "a centered satellite photo of {}.",
    "a centered satellite photo of a {}.",
    "a centered satellite photo of the {}.",
)

GTSRB = (
    'a zoomed in photo of a "{}" traffic sign.',
    'a centered photo of a "{}" traffic sign.',
    'a close up photo of a "{}" traffic sign.',
)

DIGITS = ('a photo of the number: "{}".',)  # MNIST and SVHN

RESISC45 = tuple(
    f"{source} {kind} of {article}{{}}."
    for article in ("", "a ", "the ")
    for kind in ("imagery", "photo", "view")
    for source in ("satellite", "aerial")
)

SUN397 = (
    "a photo of a {}.",
    "a photo of the {}.",
)

IMAGENET = (
    "a bad photo of a {}.",
    "a photo of many {}.",
    "a sculpture of a {}.",
    "a photo of the hard to see {}.",
    "a low resolution photo of the {}.",
    "a rendering of a {}.",
    "graffiti of a {}.",
    "a bad photo of the {}.",
    "a cropped photo of the {}.",
    "a tattoo of a {}.",
    "the embroidered {}.",
    "a photo of a hard to see {}.",
    "a bright photo of a {}.",
    "a photo of a clean {}.",
    "a photo of a dirty {}.",
    "a dark photo of the {}.",
    "a drawing of a {}.",
    "a photo of my {}.",
    "the plastic {}.",
    "a photo of the cool {}.",
    "a close-up photo of a {}.",
    "a black and white photo of the {}.",
    "a painting of the {}.",
    "a painting of a {}.",
    "a pixelated photo of the {}.",
    "a sculpture of the {}.",
    "a bright photo of the {}.",
    "a cropped photo of a {}.",
    "a plastic {}.",
    "a photo of the dirty {}.",
    "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.",
    "a photo of the {}.",
    "a good photo of the {}.",
    "a rendering of the {}.",
    "a {} in a video game.",
    "a photo of one {}.",
    "a doodle of a {}.",
    "a close-up photo of the {}.",
    "a photo of a {}.",
    "the origami {}.",
    "the {} in a video game.",
    "a sketch of a {}.",
    "a doodle of the {}.",
    "a origami {}.",
    "a low resolution photo of a {}.",
    "the toy {}.",
    "a rendition of the {}.",
    "a photo of the clean {}.",
    "a photo of a large {}.",
    "a rendition of a {}.",
    "a photo of a nice {}.",
    "a photo of a weird {}.",
    "a blurry photo of a {}.",
    "a cartoon {}.",
    "art of a {}.",
    "a sketch of the {}.",
    "a embroidered {}.",
    "a pixelated photo of a {}.",
    "itap of the {}.",
    "a jpeg corrupted photo of the {}.",
    "a good photo of a {}.",
    "a plushie {}.",
    "a photo of the nice {}.",
    "a photo of the small {}.",
    "a photo of the weird {}.",
    "the cartoon {}.",
    "art of the {}.",
    "a drawing of the {}.",
    "a photo of the large {}.",
    "a black and white photo of a {}.",
    "the plushie {}.",
    "a dark photo of a {}.",
    "itap of a {}.",
    "graffiti of the {}.",
    "a toy {}.",
    "itap of my {}.",
    "a photo of a cool {}.",
    "a photo of a small {}.",
    "a tattoo of the {}.",
)

# --- the twelve extra tasks of the 14- and 20-task benchmarks (TALL masks, FusionBench). These
# are the prompts the field's 14/20-task numbers were computed with; most come from OpenAI's CLIP
# prompt list. Where the CLIP benchmark package disagrees (PCAM) we follow the field.

CIFAR = tuple(
    f"a {quality}photo of {article} {size}{{}}."
    for article in ("a", "the")
    for quality, size in (
        ("", ""),
        ("blurry ", ""),
        ("black and white ", ""),
        ("low contrast ", ""),
        ("high contrast ", ""),
        ("bad ", ""),
        ("good ", ""),
        ("", "small "),
        ("", "big "),
    )
)  # CIFAR10 and CIFAR100

STL10 = ("a photo of a {}.", "a photo of the {}.")

FLOWERS102 = ("a photo of a {}, a type of flower.",)

OXFORD_PETS = ("a photo of a {}, a type of pet.",)

PCAM = ("this is a photo of {}",)

FER2013 = (
    "a photo of a {} looking face.",
    "a photo of a face showing the emotion: {}.",
    "a photo of a face looking {}.",
    "a face that looks {}.",
    "they look {}.",
    "look at how {} they are.",
)

EMNIST = ('a photo of the digit character: "{}".',)

FOOD101 = ("a photo of {}, a type of food.",)

FASHION_MNIST = ("a photo of a {}.", "a photo of the {}.")

RENDERED_SST2 = ("a {} review of a movie.",)

KMNIST = ("a photo of the character {}.",)
